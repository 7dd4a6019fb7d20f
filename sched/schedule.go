package sched

import (
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/strata-run/strata/spec"
)

// placer carries the state of one Schedule call.
type placer struct {
	req     *Request
	job     *spec.Job
	asks    []*groupAsk
	nodes   []*NodeState
	rng     *rand.Rand
	perm    lazyPerm // created on the first placement
	overlay overlay
	refs    map[string]nodeRef // nodes of the existing allocations, see locateNodes
	reasons reasonTable
	// rejected counts, per reason, the nodes the current selectNode rejected.
	rejected []int
	compiled compileCache
	// inPlace holds the IDs of older-version allocations that move to
	// the current version in place; replace caches needsReplace.
	inPlace map[string]bool
	replace map[versionGroup]bool
	// delayed holds the failed allocations to reschedule later.
	delayed []delayedAlloc
}

// newPlacer prepares one Schedule call: it interns the groups' constraint
// reasons and sets their limits. Their per-node caches are allocated on
// first use, so an evaluation with nothing to place allocates none.
func newPlacer(req *Request, asks []*groupAsk) *placer {
	p := &placer{
		req:     req,
		job:     req.Job,
		asks:    asks,
		nodes:   req.Nodes,
		rng:     newRNG(req.EvalID, req.Attempt),
		overlay: newOverlay(len(req.Nodes), len(asks)),
		reasons: newReasonTable(),
	}
	for _, g := range asks {
		g.limit = groupLimit(g, len(p.nodes))
		for k := range g.constraints {
			g.constraints[k].id = p.reasons.intern(g.constraints[k].reason)
		}
		g.driverReasons = make([]reasonID, 0, 2*len(g.drivers))
		for _, d := range g.drivers {
			g.driverReasons = append(g.driverReasons,
				p.reasons.intern("missing driver "+d), p.reasons.intern("unhealthy driver "+d))
		}
		for _, s := range g.spreads {
			s.nodes = len(p.nodes)
		}
		g.volumes = p.volumeAsks(g.group)
	}
	return p
}

// occupy records that node i holds one more allocation of group g, kept
// by reconciliation or placed by the plan: for anti-affinity,
// distinct_hosts and spread.
func (p *placer) occupy(i int, g *groupAsk) *nodeDelta {
	d := p.overlay.occupy(i, g.index)
	for _, s := range g.spreads {
		s.add(s.bucketOf(i, p.nodes[i].Node))
	}
	return d
}

// Schedule reconciles the job's desired state with its existing
// allocations and places what is missing.
//
// When req.Stopped is set or req.Job is nil, every non-terminal allocation
// is stopped. Otherwise each group keeps up to Count allocations of the
// current version, lowest index first; the others are stopped with
// DesiredDesc saying why, and the missing indexes below Count are placed
// (Plan.Place, DesiredStatus run, ClientStatus pending). A group whose
// copies found no node is explained in Plan.Failed and the other groups
// are still placed. The plan's stops release their resources for its
// placements, so an applier re-checking placements with a Checker must
// apply the stops first.
//
// Schedule does not modify req. The same Request yields the same Plan.
// Errors wrap ErrInvalidRequest or ErrInvalidJob.
func Schedule(req *Request) (*Plan, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrInvalidRequest)
	}
	plan := &Plan{EvalID: req.EvalID}
	if req.Stopped || req.Job == nil {
		plan.Stop = stopAll(req.Existing)
		return plan, nil
	}
	asks, err := newGroupAsks(req.Job)
	if err != nil {
		return nil, err
	}
	p := newPlacer(req, asks)
	for _, gp := range p.reconcile(plan) {
		if err := p.placeGroup(plan, gp); err != nil {
			return nil, err
		}
	}
	plan.FollowUps = p.followUps()
	return plan, nil
}

// placeGroup places the missing copies of one group. Once a copy finds no
// node, the remaining copies are counted as missing without searching
// again: within a plan nodes only fill up.
func (p *placer) placeGroup(plan *Plan, gp groupPlan) error {
	for k, index := range gp.place {
		if p.perm.idx == nil {
			p.perm = newLazyPerm(len(p.nodes), p.rng)
		}
		sel := p.selectNode(gp.ask)
		if !sel.found {
			if plan.Failed == nil {
				plan.Failed = make(map[string]*Explanation)
			}
			plan.Failed[gp.ask.group.Name] = p.explain(gp.ask, sel, len(gp.place)-k)
			return nil
		}
		a, err := p.place(gp.ask, index, sel.best)
		if err != nil {
			return err
		}
		if d := p.req.Deployment; d != nil {
			a.DeploymentID = d.ID
			a.Canary = gp.canary[index]
		}
		if r, ok := gp.resched[index]; ok {
			a.PreviousAllocation = r.prev.ID
			a.RescheduleTracker = nextTracker(gp.ask.group.Reschedule, r.prev, p.req.Now, r.delay)
		}
		plan.Place = append(plan.Place, a)
	}
	return nil
}

// place builds the allocation of copy index of g on the chosen node and
// records it in the overlay, so later placements see it.
func (p *placer) place(g *groupAsk, index int, c candidate) (*Allocation, error) {
	ns := p.nodes[c.node]
	ports, err := assignPorts(p.rng, ns, c.delta, g)
	if err != nil {
		return nil, fmt.Errorf("%w (node %s)", err, ns.Node.ID)
	}
	d := p.occupy(c.node, g)
	d.used = d.used.Add(g.res)
	for _, pm := range ports {
		d.added = append(d.added, pm.Value)
	}
	return &Allocation{
		ID:            newUUID(p.rng),
		EvalID:        p.req.EvalID,
		Name:          p.job.ID + "." + g.group.Name + "[" + strconv.Itoa(index) + "]",
		JobID:         p.job.ID,
		JobVersion:    p.req.JobVersion,
		Group:         g.group.Name,
		Index:         index,
		NodeID:        ns.Node.ID,
		NodeName:      ns.Node.Name,
		Resources:     g.res,
		Ports:         ports,
		DesiredStatus: DesiredRun,
		ClientStatus:  ClientPending,
	}, nil
}

// explain turns the rejections of a failed selectNode into an Explanation.
func (p *placer) explain(g *groupAsk, sel selection, missing int) *Explanation {
	e := &Explanation{
		Group:          g.group.Name,
		Missing:        missing,
		NodesEvaluated: sel.evaluated,
		NodesFeasible:  sel.feasible,
		Reasons:        make(map[string]int),
	}
	for r, n := range p.rejected {
		if n > 0 {
			e.Reasons[p.reasons.names[r]] = n
		}
	}
	return e
}
