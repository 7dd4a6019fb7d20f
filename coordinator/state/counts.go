package state

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/strata-run/strata/coordinator/structs"
)

// AllocStatus is an allocation's desired and client status, the key of
// AllocCounts.
type AllocStatus struct {
	Desired, Client string
}

func statusOf(a *structs.Alloc) AllocStatus {
	return AllocStatus{Desired: a.DesiredStatus, Client: a.ClientStatus}
}

// publishStatuses moves the allocation counts by status (usageIndex.statuses:
// counted at open and restore by rebuild, kept in memory so the metrics
// endpoint reads them without a scan) by a committed batch: every
// allocation it wrote moves from its status before the batch (none if
// new) to its status now; every one it deleted leaves its status before.
func (u *usageIndex) publishStatuses(before map[string]AllocStatus, pending map[string]pendingAlloc, dropped map[string]bool) {
	if len(pending) == 0 && len(dropped) == 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.statuses == nil {
		u.statuses = map[AllocStatus]int{}
	}
	move := func(s AllocStatus, d int) {
		if u.statuses[s] += d; u.statuses[s] == 0 {
			delete(u.statuses, s)
		}
	}
	for id, p := range pending {
		a := p.a
		if s, ok := before[id]; ok {
			move(s, -1)
		}
		move(statusOf(a), 1)
	}
	for id := range dropped {
		if s, ok := before[id]; ok {
			move(s, -1)
		}
	}
}

// AllocCounts returns how many allocations there are by desired and
// client status (statuses with none are absent). It reads memory only.
func (s *Store) AllocCounts() map[AllocStatus]int {
	s.usage.mu.RLock()
	defer s.usage.mu.RUnlock()
	return maps.Clone(s.usage.statuses)
}

// AllocStatuses returns the keys of counts sorted (desired, then client).
func AllocStatuses(counts map[AllocStatus]int) []AllocStatus {
	return slices.SortedFunc(maps.Keys(counts), func(a, b AllocStatus) int {
		if c := strings.Compare(a.Desired, b.Desired); c != 0 {
			return c
		}
		return strings.Compare(a.Client, b.Client)
	})
}

// CmdName is a command type's name for people and metrics ("JobRegister",
// "PlanApply"); an unknown type is "unknown".
func CmdName(t CmdType) string {
	if t == CmdPlanApply {
		return "PlanApply"
	}
	newCmd, ok := commandTypes[t]
	if !ok {
		return "unknown"
	}
	name := fmt.Sprintf("%T", newCmd())
	return name[strings.LastIndexByte(name, '.')+1:]
}

// CmdTypes lists every command type this state applies.
func CmdTypes() []CmdType {
	out := slices.Collect(maps.Keys(commandTypes))
	out = append(out, CmdPlanApply)
	slices.Sort(out)
	return out
}

// OnApply sets fn to be called after each command Apply applies or
// refuses, with its type, on Apply's goroutine before the batch commits
// (the coordinator times commands with it: this package reads no clock).
// Set it before the first Apply; fn must not call the Store.
func (s *Store) OnApply(fn func(CmdType)) { s.onApply = fn }
