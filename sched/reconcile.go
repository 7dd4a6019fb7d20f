package sched

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/strata-run/strata/spec"
)

// Reasons for stopping an allocation (Allocation.DesiredDesc).
const (
	descJobStopped     = "job stopped"
	descGroupRemoved   = "group removed"
	descNodeDown       = "node down"
	descCountReduced   = "count reduced"
	descDuplicateIndex = "duplicate index"
)

// jobTypeBatch is the job type whose completed allocations are not rerun.
const jobTypeBatch = "batch"

func descJobUpdated(version uint64) string {
	return "job updated to version " + strconv.FormatUint(version, 10)
}

// groupPlan is what reconciliation leaves to placement for one group.
type groupPlan struct {
	ask   *groupAsk
	place []int // missing indexes, ascending
}

// groupAllocs sorts one group's allocations for reconciliation.
type groupAllocs struct {
	current  []*Allocation // non-terminal, current job version
	outdated []*Allocation // non-terminal, older job version
	done     []int         // batch: indexes completed at the current version
}

// stopAll stops every non-terminal allocation: the job is stopped or gone.
func stopAll(existing []*Allocation) []*Allocation {
	var stops []*Allocation
	for _, a := range existing {
		if a != nil && !a.Terminal() {
			stops = append(stops, stopped(a, descJobStopped))
		}
	}
	return stops
}

// stopped returns a copy of a marked to stop, leaving the caller's alone.
func stopped(a *Allocation, why string) *Allocation {
	c := *a
	c.Ports = slices.Clone(a.Ports)
	c.DesiredStatus, c.DesiredDesc = DesiredStop, why
	return &c
}

// reconcile decides, group by group, which existing allocations stay and
// which stop, and returns the indexes left to place. Stops are appended to
// plan.Stop and credited to their node in the overlay; kept allocations
// are recorded there for job anti-affinity.
func (p *placer) reconcile(plan *Plan) []groupPlan {
	byGroup := p.sortExisting(plan)
	out := make([]groupPlan, 0, len(p.asks))
	for i, g := range p.asks {
		out = append(out, groupPlan{ask: g, place: p.reconcileGroup(plan, g, &byGroup[i])})
	}
	return out
}

// sortExisting stops the allocations that cannot stay whatever the group
// looks like (group removed, node down) and buckets the others by group.
func (p *placer) sortExisting(plan *Plan) []groupAllocs {
	byGroup := make([]groupAllocs, len(p.asks))
	index := make(map[string]int, len(p.asks))
	for i, g := range p.asks {
		index[g.group.Name] = i
	}
	p.refs = p.locateNodes()
	batch := p.job.Type == jobTypeBatch
	for _, a := range p.req.Existing {
		if a == nil {
			continue
		}
		gi, ok := index[a.Group]
		switch {
		case a.Terminal():
			if ok && batch && a.JobVersion == p.req.JobVersion &&
				a.DesiredStatus == DesiredRun && a.ClientStatus == ClientComplete {
				byGroup[gi].done = append(byGroup[gi].done, a.Index)
			}
		case !ok:
			p.stop(plan, a, descGroupRemoved)
		case p.refs[a.NodeID].down && a.ClientStatus == ClientUnknown:
			// The node is unreachable but may still run it (disconnect
			// block). With replace = false it keeps its index and is never
			// replaced; otherwise a replacement is placed and the original
			// waits, neither stopped nor counted, until it comes back or
			// is declared lost.
			if !replaceUnknown(p.asks[gi].group) {
				byGroup[gi].current = append(byGroup[gi].current, a)
			}
		case p.refs[a.NodeID].down:
			p.stop(plan, a, descNodeDown)
		case a.JobVersion != p.req.JobVersion:
			byGroup[gi].outdated = append(byGroup[gi].outdated, a)
		default:
			byGroup[gi].current = append(byGroup[gi].current, a)
		}
	}
	return byGroup
}

// nodeRef is where a node holding one of the job's allocations is.
type nodeRef struct {
	index int  // in Request.Nodes; -1 when the node is not in the snapshot
	down  bool // not ready, or not in the snapshot
}

// locateNodes finds the nodes holding non-terminal allocations of the job.
// It scans the node list once, and only when there is something to find.
func (p *placer) locateNodes() map[string]nodeRef {
	refs := map[string]nodeRef{}
	for _, a := range p.req.Existing {
		if a != nil && !a.Terminal() {
			refs[a.NodeID] = nodeRef{index: -1, down: true}
		}
	}
	left := len(refs)
	for i, ns := range p.nodes {
		if left == 0 {
			break
		}
		if ns == nil || ns.Node == nil {
			continue
		}
		if ref, ok := refs[ns.Node.ID]; ok && ref.index < 0 {
			refs[ns.Node.ID] = nodeRef{index: i, down: ns.Node.Status != NodeReady}
			left--
		}
	}
	return refs
}

// reconcileGroup keeps up to Count allocations, lowest index first, stops
// the rest and returns the lowest free indexes below Count to place.
func (p *placer) reconcileGroup(plan *Plan, g *groupAsk, allocs *groupAllocs) []int {
	replaceNow, replaceLater := destructiveUpdates(allocs.outdated)
	for _, a := range replaceNow {
		p.stop(plan, a, descJobUpdated(p.req.JobVersion))
	}

	count := g.group.Count
	occupied := make(map[int]bool, len(allocs.current)+len(replaceLater)+len(allocs.done))
	for _, i := range allocs.done {
		if i >= 0 && i < count {
			occupied[i] = true
		}
	}
	keep := append(slices.Clip(allocs.current), replaceLater...)
	slices.SortStableFunc(keep, func(a, b *Allocation) int {
		// Two copies of one index (an original back from a disconnect and
		// its replacement): the original, created first, is kept.
		return cmp.Or(
			cmp.Compare(a.Index, b.Index),
			cmp.Compare(p.versionRank(a), p.versionRank(b)),
			cmp.Compare(a.CreateIndex, b.CreateIndex),
			cmp.Compare(a.ID, b.ID),
		)
	})
	for _, a := range keep {
		switch {
		case occupied[a.Index]:
			p.stop(plan, a, descDuplicateIndex)
		case len(occupied) >= count:
			p.stop(plan, a, descCountReduced)
		default:
			occupied[a.Index] = true
			if ref := p.refs[a.NodeID]; ref.index >= 0 {
				p.occupy(ref.index, g)
			}
		}
	}

	var place []int
	for i := 0; len(occupied)+len(place) < count; i++ {
		if !occupied[i] {
			place = append(place, i)
		}
	}
	return place
}

// versionRank orders the current version before older ones.
func (p *placer) versionRank(a *Allocation) int {
	if a.JobVersion == p.req.JobVersion {
		return 0
	}
	return 1
}

// destructiveUpdates splits a group's allocations of older job versions
// into those replaced in this evaluation and those left running until a
// later one. Today every one is replaced at once; a rolling update
// (update.max_parallel) will return at most max_parallel minus the
// replacements still in flight as now, and the rest as later, which keep
// their index meanwhile.
func destructiveUpdates(outdated []*Allocation) (now, later []*Allocation) {
	return outdated, nil
}

// stop adds a stopped copy of a to the plan and releases what it holds
// for the plan's placements.
func (p *placer) stop(plan *Plan, a *Allocation, why string) {
	plan.Stop = append(plan.Stop, stopped(a, why))
	if ref, ok := p.refs[a.NodeID]; ok && ref.index >= 0 {
		p.overlay.release(ref.index, a)
	}
}

// replaceUnknown reports whether a group's unknown allocations are
// replaced while their node is away: Nomad's disconnect.replace, default true.
func replaceUnknown(g *spec.Group) bool {
	if g.Disconnect == nil || g.Disconnect.Replace == nil {
		return true
	}
	return *g.Disconnect.Replace
}
