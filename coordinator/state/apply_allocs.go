package state

import (
	"fmt"
	"strings"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
)

// apply commits a checked plan: the stops (the allocation stops holding
// resources and leaves the catalog), the placements, and the
// evaluation's new status. The applier re-checked the placements against
// this state (CheckPlan); apply itself trusts them. An allocation ID is
// placed once: a placement never overwrites an allocation.
func (c *PlanApply) apply(b *batch) (any, error) {
	if c.Eval != nil && c.Eval.ID == "" {
		return nil, refuse("state: plan with an evaluation without an ID")
	}
	if err := c.checkFollowUps(); err != nil {
		return nil, err
	}
	for _, s := range c.Stop {
		if err := b.stopAlloc(s); err != nil {
			return nil, err
		}
	}
	for _, m := range c.InPlace {
		if err := b.moveAlloc(m, c.Time); err != nil {
			return nil, err
		}
	}
	allocs := b.tx.Bucket(bucketAllocs)
	var placed []*sched.Allocation
	for i, p := range c.Place {
		if _, ok := b.pending[p.ID]; ok || allocs.Get([]byte(p.ID)) != nil {
			continue
		}
		a := c.record(i)
		a.CreateIndex, a.ModifyIndex = b.index, b.index
		if err := b.putNewAlloc(a); err != nil {
			return nil, err
		}
		b.wrote(a)
		b.allocChanged(nil, a)
		d := b.delta(a.NodeID)
		d.newAllocs = append(d.newAllocs, a.ID)
		placed = append(placed, p)
		if err := b.replaced(a); err != nil {
			return nil, err
		}
	}
	if err := b.placed(placed, c.Time); err != nil {
		return nil, err
	}
	if err := b.followUps(c); err != nil {
		return nil, err
	}
	if c.Eval != nil {
		return nil, b.eval(c.Eval)
	}
	return nil, nil
}

// record is placement i's allocation record: the decoded one itself
// when there is one, else a copy of the placement.
func (c *PlanApply) record(i int) *structs.Alloc {
	if i < len(c.records) && &c.records[i].Allocation == c.Place[i] {
		return &c.records[i]
	}
	return &structs.Alloc{Allocation: *c.Place[i]}
}

// moveAlloc moves a live allocation to a new job version in place; an
// unknown or terminal one is left alone.
func (b *batch) moveAlloc(m AllocMove, now int64) error {
	a, err := b.alloc(m.ID)
	if err != nil || a == nil || a.Terminal() {
		return err
	}
	a.JobVersion, a.ModifyIndex = m.JobVersion, b.index
	if err := b.putAlloc(a); err != nil {
		return err
	}
	b.wrote(a)
	return b.keptInPlace(a, now)
}

// stopAlloc sets an allocation's desired status to stop; an unknown ID
// is ignored.
func (b *batch) stopAlloc(s AllocStop) error {
	a, err := b.alloc(s.ID)
	if err != nil || a == nil {
		return err
	}
	if err := b.setEndpoints(a.ID, a.Endpoints, nil); err != nil {
		return err
	}
	before := *a
	a.DesiredStatus, a.DesiredDesc, a.ModifyIndex = sched.DesiredStop, s.Desc, b.index
	b.allocChanged(&before, a)
	a.Endpoints = nil
	if err := b.putAlloc(a); err != nil {
		return err
	}
	b.wrote(a)
	b.fx.Capacity = true // a stopped allocation frees capacity
	return nil
}

// apply records a node's reports about its allocations.
func (c *AllocUpdate) apply(b *batch) (any, error) {
	return nil, b.clientUpdates(c.NodeID, c.Time, c.Updates)
}

// clientUpdates applies client statuses reported for nodeID's
// allocations at time now. An update for an allocation that is unknown or
// on another node is ignored: a node never writes another's allocation.
// A final status (lost, failed, complete) is never revived by a late
// report, and an allocation that stops or finishes leaves the catalog.
func (b *batch) clientUpdates(nodeID string, now int64, updates []ClientUpdate) error {
	for _, u := range updates {
		a, err := b.alloc(u.AllocID)
		if err != nil {
			return err
		}
		if a == nil || a.NodeID != nodeID {
			continue
		}
		if clientTerminal(a.ClientStatus) && !clientTerminal(u.ClientStatus) {
			continue
		}
		if clientTerminal(u.ClientStatus) && !clientTerminal(a.ClientStatus) {
			a.FinishedAt = now // a reschedule delay counts from here
		}
		if u.ClientStatus == sched.ClientUnknown && a.ClientStatus != sched.ClientUnknown {
			a.UnknownSince = now
		} else if u.ClientStatus != sched.ClientUnknown {
			a.UnknownSince = 0
		}
		old := a.Endpoints
		before := *a
		wasTerminal := a.Terminal()
		a.ClientStatus, a.ClientDescription, a.ModifyIndex = u.ClientStatus, u.Description, b.index
		a.Endpoints = u.Endpoints
		if len(u.TaskStates) > 0 {
			a.TaskStates = u.TaskStates
		}
		reported := a.DeploymentID != "" && a.Health == sched.HealthUnknown && u.Health != sched.HealthUnknown
		if reported {
			a.Health, a.HealthTime = u.Health, u.HealthTime
		}
		if a.Terminal() {
			a.Endpoints = nil // a stopping or finished alloc is never discoverable
			if !wasTerminal {
				b.fx.Capacity = true
			}
		}
		if err := b.setEndpoints(a.ID, old, a.Endpoints); err != nil {
			return err
		}
		if err := b.putAlloc(a); err != nil {
			return err
		}
		b.wrote(a)
		b.allocChanged(&before, a)
		if reported {
			if err := b.reportHealth(a, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// setEndpoints replaces an allocation's entries in the services bucket,
// keyed service \x00 allocID \x00 n; old is what the alloc had before.
func (b *batch) setEndpoints(allocID string, old, eps []registry.Endpoint) error {
	b.catalogChanged(allocID, old, eps)
	bk := b.tx.Bucket(bucketServices)
	for i, e := range old {
		if err := bk.Delete(serviceKey(e.Service, allocID, i)); err != nil {
			return err
		}
	}
	for i, e := range eps {
		if err := putJSON(bk, serviceKey(e.Service, allocID, i), e); err != nil {
			return err
		}
	}
	return nil
}

// serviceKey lowercases the service name: DNS names are case-insensitive
// and the registry asks for lowercased names.
func serviceKey(service, allocID string, n int) []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%04d", strings.ToLower(service), allocID, n)
}

// clientTerminal reports whether a client status is final.
func clientTerminal(status string) bool {
	switch status {
	case sched.ClientComplete, sched.ClientFailed, sched.ClientLost:
		return true
	}
	return false
}
