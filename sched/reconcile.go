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
	descLost           = "alloc lost: its node is down"
)

// jobTypeBatch is the job type whose completed allocations are not rerun.
const jobTypeBatch = "batch"

func descJobUpdated(version uint64) string {
	return "job updated to version " + strconv.FormatUint(version, 10)
}

// groupPlan is what reconciliation leaves to placement for one group.
type groupPlan struct {
	ask    *groupAsk
	place  []int        // indexes to place, ascending
	canary map[int]bool // the indexes of place that are canaries
	// resched holds the indexes of place that replace a failed
	// allocation, with the one they replace.
	resched map[int]replacement
}

// groupAllocs sorts one group's allocations for reconciliation.
type groupAllocs struct {
	current  []*Allocation // non-terminal, current job version (or moving to it in place)
	outdated []*Allocation // non-terminal, an older job version the group's new one replaces
	done     []int         // batch: indexes completed at the current version
	failed   []*Allocation // failed, desired to run, not replaced: rescheduleFailed decides
}

// stopAll stops every allocation still desired to run, finished ones
// included (a failed or lost allocation of a stopped job is never
// rescheduled, and a re-run starts afresh): the job is stopped or gone.
func stopAll(existing []*Allocation) []*Allocation {
	var stops []*Allocation
	for _, a := range existing {
		if a != nil && a.DesiredStatus == DesiredRun {
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
		out = append(out, p.reconcileGroup(plan, g, &byGroup[i]))
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
			var g *groupAllocs
			if ok {
				g = &byGroup[gi]
			}
			p.sortFinished(plan, a, g, batch)
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
		case a.JobVersion != p.req.JobVersion && p.needsReplace(a, p.asks[gi].group):
			byGroup[gi].outdated = append(byGroup[gi].outdated, a)
		case a.JobVersion != p.req.JobVersion:
			if p.inPlace == nil {
				p.inPlace = map[string]bool{}
			}
			p.inPlace[a.ID] = true
			byGroup[gi].current = append(byGroup[gi].current, a)
		default:
			byGroup[gi].current = append(byGroup[gi].current, a)
		}
	}
	return byGroup
}

// sortFinished sorts a terminal allocation of the job: a batch copy that
// completed at the current version keeps its index; a failed one waits
// for rescheduleFailed (unless replaced already, or its group is gone or
// changed: then it is stopped); a lost one is stopped, as Nomad does, so
// its agent never runs it again if it comes back. g is nil when the
// allocation's group is gone.
func (p *placer) sortFinished(plan *Plan, a *Allocation, g *groupAllocs, batch bool) {
	if a.DesiredStatus != DesiredRun {
		return
	}
	switch a.ClientStatus {
	case ClientComplete:
		if g != nil && batch && a.JobVersion == p.req.JobVersion {
			g.done = append(g.done, a.Index)
		}
	case ClientLost:
		plan.Stop = append(plan.Stop, stopped(a, descLost))
	case ClientFailed:
		switch {
		case a.NextAllocation != "":
			// Replaced: the store stopped it with the placement.
		case g == nil:
			plan.Stop = append(plan.Stop, stopped(a, descGroupRemoved))
		case a.JobVersion != p.req.JobVersion && p.needsReplace(a, p.asks[p.groupIndex(a.Group)].group):
			// A new version of the group runs afresh, now.
			plan.Stop = append(plan.Stop, stopped(a, descJobUpdated(p.req.JobVersion)))
		default:
			g.failed = append(g.failed, a)
		}
	}
}

// groupIndex is the index in p.asks of the group named name (present).
func (p *placer) groupIndex(name string) int {
	for i, g := range p.asks {
		if g.group.Name == name {
			return i
		}
	}
	return -1
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

// reconcileGroup keeps up to Count allocations of the current version,
// lowest index first, and stops the rest. Allocations of an older version
// are replaced: all at once, or by the deployment's rolling update
// (rollingUpdate). It returns what to place: the replacements the update
// starts and the lowest free indexes below Count.
func (p *placer) reconcileGroup(plan *Plan, g *groupAsk, allocs *groupAllocs) groupPlan {
	gp := groupPlan{ask: g}
	roll := p.rolling(g)
	if roll == nil {
		for _, a := range allocs.outdated {
			p.stop(plan, a, descJobUpdated(p.req.JobVersion))
		}
		allocs.outdated = nil
	}

	count := g.group.Count
	occupied := make(map[int]bool, len(allocs.current)+len(allocs.outdated)+len(allocs.done))
	for _, i := range allocs.done {
		if i >= 0 && i < count {
			occupied[i] = true
		}
	}
	current := p.keepCurrent(plan, g, allocs.current, occupied)
	if roll != nil {
		gp.place, gp.canary = p.rollingUpdate(plan, g, roll, allocs.outdated, current, occupied)
	}
	gp.resched = p.rescheduleFailed(g, allocs.failed, occupied)
	for i := 0; len(occupied)+len(gp.place) < count; i++ {
		if !occupied[i] {
			gp.place = append(gp.place, i)
		}
	}
	for i := range gp.resched {
		gp.place = append(gp.place, i)
	}
	slices.Sort(gp.place)
	return gp
}

// keepCurrent keeps one current allocation per index below Count and
// stops the others; it returns the kept ones by index.
func (p *placer) keepCurrent(plan *Plan, g *groupAsk, current []*Allocation, occupied map[int]bool) map[int]*Allocation {
	count := g.group.Count
	keep := slices.Clone(current)
	// Two copies of one index (an original back from a disconnect and its
	// replacement): the group's disconnect.reconcile says which stays, the
	// original (created first) unless it asks for the replacement.
	age := 1
	if keepReplacement(g.group) {
		age = -1
	}
	slices.SortStableFunc(keep, func(a, b *Allocation) int {
		return cmp.Or(
			cmp.Compare(a.Index, b.Index),
			age*cmp.Compare(a.CreateIndex, b.CreateIndex),
			cmp.Compare(a.ID, b.ID),
		)
	})
	kept := make(map[int]*Allocation, len(keep))
	for _, a := range keep {
		switch {
		case occupied[a.Index]:
			p.stop(plan, a, descDuplicateIndex)
		case len(occupied) >= count:
			p.stop(plan, a, descCountReduced)
		default:
			occupied[a.Index] = true
			kept[a.Index] = a
			p.hold(g, a)
			if p.inPlace[a.ID] {
				c := *a
				c.Ports = slices.Clone(a.Ports)
				c.JobVersion = p.req.JobVersion
				plan.InPlace = append(plan.InPlace, &c)
			}
		}
	}
	return kept
}

// hold records that a kept allocation holds its node for the plan.
func (p *placer) hold(g *groupAsk, a *Allocation) {
	if ref := p.refs[a.NodeID]; ref.index >= 0 {
		p.occupy(ref.index, g)
	}
}

// rolling returns the deployment state that drives g's replacements, or
// nil when they are all replaced at once (no deployment, batch jobs,
// update.max_parallel = 0).
func (p *placer) rolling(g *groupAsk) *DeploymentGroup {
	d := p.req.Deployment
	u := g.group.Update
	if d == nil || u == nil || u.MaxParallel <= 0 {
		return nil
	}
	if s := d.Groups[g.group.Name]; s != nil {
		return s
	}
	return &DeploymentGroup{}
}

// rollingUpdate replaces the group's outdated allocations create before
// destroy: a replacement is placed beside the allocation it replaces, at
// the same index, and the old one is stopped only once the replacement is
// healthy (a canary's, once promoted). While the group has canaries to
// place, only they are placed; afterwards at most update.max_parallel
// replacements run unhealthy at a time, and a batch starts only when the
// previous one is all healthy and the deployment does not hold it
// (stagger). An unhealthy replacement, or an inactive deployment, starts
// nothing new. It returns the indexes to place and which are canaries.
func (p *placer) rollingUpdate(plan *Plan, g *groupAsk, d *DeploymentGroup, outdated []*Allocation, current map[int]*Allocation, occupied map[int]bool) ([]int, map[int]bool) {
	u := g.group.Update
	dep := p.req.Deployment
	canaryPhase := u.Canary > 0 && !d.Promoted
	slices.SortStableFunc(outdated, func(a, b *Allocation) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.CreateIndex, b.CreateIndex), cmp.Compare(a.ID, b.ID))
	})
	var candidates []int
	seen := map[int]bool{}
	for _, o := range outdated {
		c := current[o.Index]
		switch {
		case o.Index >= g.group.Count:
			p.stop(plan, o, descCountReduced)
		case seen[o.Index]:
			p.stop(plan, o, descDuplicateIndex)
		case c != nil && p.healthy(c) && !(c.Canary && canaryPhase):
			seen[o.Index] = true
			p.stop(plan, o, descJobUpdated(p.req.JobVersion))
		default:
			// Running until its replacement is healthy, or until one is
			// placed (a candidate).
			seen[o.Index] = true
			p.hold(g, o)
			if c == nil {
				occupied[o.Index] = true
				candidates = append(candidates, o.Index)
			}
		}
	}

	var canaries, inflight, unhealthy int
	for _, c := range current {
		if c.DeploymentID != dep.ID {
			continue
		}
		if c.Canary {
			canaries++
		}
		switch c.Health {
		case HealthUnknown:
			inflight++
		case HealthUnhealthy:
			unhealthy++
		}
	}
	if !dep.Active || unhealthy > 0 || len(candidates) == 0 {
		return nil, nil
	}
	if canaryPhase {
		n := min(u.Canary-canaries, len(candidates))
		if n <= 0 {
			return nil, nil
		}
		isCanary := make(map[int]bool, n)
		for _, i := range candidates[:n] {
			isCanary[i] = true
		}
		return slices.Clone(candidates[:n]), isCanary
	}
	if inflight > 0 || d.Hold {
		return nil, nil
	}
	return slices.Clone(candidates[:min(u.MaxParallel, len(candidates))]), nil
}

// healthy reports whether a current allocation counts as healthy for the
// deployment: as its agent reported for this deployment, or, for one it
// did not place (moved in place from an older version), running.
func (p *placer) healthy(a *Allocation) bool {
	if a.DeploymentID == p.req.Deployment.ID {
		return a.Health == HealthHealthy
	}
	return a.ClientStatus == ClientRunning
}

// needsReplace reports whether a, of an older job version, must be
// replaced to run group g of the current one. The answer is the same for
// every allocation of one version and group, so it is cached.
func (p *placer) needsReplace(a *Allocation, g *spec.Group) bool {
	key := versionGroup{a.JobVersion, g.Name}
	if r, ok := p.replace[key]; ok {
		return r
	}
	r := true
	if old := p.req.Versions[a.JobVersion]; old != nil {
		r = spec.GroupNeedsReplace(old.Lookup(g.Name), g)
	}
	if p.replace == nil {
		p.replace = map[versionGroup]bool{}
	}
	p.replace[key] = r
	return r
}

type versionGroup struct {
	version uint64
	group   string
}

// stop adds a stopped copy of a to the plan and releases what it holds
// for the plan's placements.
func (p *placer) stop(plan *Plan, a *Allocation, why string) {
	plan.Stop = append(plan.Stop, stopped(a, why))
	if ref, ok := p.refs[a.NodeID]; ok && ref.index >= 0 {
		p.overlay.release(ref.index, a)
	}
}

// keepReplacement reports whether a group keeps the replacement rather
// than the original when a disconnected allocation comes back. Job
// versions stored before best_score and longest_running were refused
// keep the original, as keep_original does.
func keepReplacement(g *spec.Group) bool {
	return g.Disconnect != nil && g.Disconnect.Reconcile == spec.ReconcileKeepReplacement
}

// replaceUnknown reports whether a group's unknown allocations are
// replaced while their node is away: Nomad's disconnect.replace, default true.
func replaceUnknown(g *spec.Group) bool {
	if g.Disconnect == nil || g.Disconnect.Replace == nil {
		return true
	}
	return *g.Disconnect.Replace
}
