package sched

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/strata-run/strata/spec"
)

// The dynamic port range, inclusive, as in Nomad.
const (
	MinDynamicPort = 20000
	MaxDynamicPort = 32000

	dynamicPortCount = MaxDynamicPort - MinDynamicPort + 1
)

// reasonID names why a node was rejected. The fixed reasons come first;
// driver reasons are interned per Schedule call (see reasonTable).
type reasonID uint16

const (
	feasible reasonID = iota
	rNodeUnknown
	rNodeDown
	rNodeNotReady
	rNodeIneligible
	rDatacenter
	rDistinctHosts
	rCPU
	rMemory
	rStaticPort
	rDynamicPorts
	numFixedReasons
)

// fixedReasons are the stable keys of Explanation.Reasons.
var fixedReasons = [numFixedReasons]string{
	feasible:        "",
	rNodeUnknown:    "node unknown",
	rNodeDown:       "node down",
	rNodeNotReady:   "node not ready",
	rNodeIneligible: "node ineligible",
	rDatacenter:     "datacenter mismatch",
	rDistinctHosts:  reasonDistinctHosts,
	rCPU:            "cpu exhausted",
	rMemory:         "memory exhausted",
	rStaticPort:     "static port collision",
	rDynamicPorts:   "dynamic ports exhausted",
}

// reasonTable interns reason strings (drivers, constraints) so that
// rejections are counted in a slice and the per-node feasibility cache
// holds small integers.
type reasonTable struct {
	names []string
	ids   map[string]reasonID
}

func newReasonTable() reasonTable {
	// Full slice expression: the first intern copies instead of writing
	// into the shared array.
	return reasonTable{names: fixedReasons[:numFixedReasons:numFixedReasons]}
}

func (t *reasonTable) intern(s string) reasonID {
	if id, ok := t.ids[s]; ok {
		return id
	}
	if t.ids == nil {
		t.ids = make(map[string]reasonID)
	}
	id := reasonID(len(t.names))
	t.names = append(t.names, s)
	t.ids[s] = id
	return id
}

// FitError says why an allocation cannot be added to a node.
type FitError struct {
	NodeID string
	Reason string // e.g. "memory exhausted", "port 20001 in use"
}

func (e *FitError) Error() string {
	return "sched: node " + e.NodeID + ": " + e.Reason
}

// ErrInvalidJob is wrapped by errors about a job the scheduler cannot
// interpret (duplicate port labels, negative counts or resources).
var ErrInvalidJob = errors.New("sched: invalid job")

// ErrInvalidRequest is wrapped by errors about a malformed Request or Checker call.
var ErrInvalidRequest = errors.New("sched: invalid request")

// nodeStatusReason checks what depends on the node alone.
func nodeStatusReason(n *Node) reasonID {
	switch {
	case n.Status == NodeDown:
		return rNodeDown
	case n.Status != NodeReady:
		return rNodeNotReady
	case !n.Eligible:
		return rNodeIneligible
	}
	return feasible
}

// datacenterAllowed reports whether dc is one of dcs; an empty list allows any.
func datacenterAllowed(dcs []string, dc string) bool {
	if len(dcs) == 0 {
		return true
	}
	for _, d := range dcs {
		if d == dc {
			return true
		}
	}
	return false
}

// driverReason checks that every driver of the group is present and
// healthy on n; the reasons were interned by newPlacer, so a rejection
// allocates nothing.
func driverReason(n *Node, g *groupAsk) reasonID {
	for k, d := range g.drivers {
		healthy, ok := n.Drivers[d]
		switch {
		case !ok:
			return g.driverReasons[2*k]
		case !healthy:
			return g.driverReasons[2*k+1]
		}
	}
	return feasible
}

// groupDrivers lists the drivers of g's tasks once each, in task order.
func groupDrivers(g *spec.Group) []string {
	var ds []string
	for _, t := range g.Tasks {
		if t != nil && !slices.Contains(ds, t.Driver) {
			ds = append(ds, t.Driver)
		}
	}
	return ds
}

// resourceReason checks that ask fits on top of used within capacity.
func resourceReason(capacity, used, ask Resources) reasonID {
	if used.CPU+ask.CPU > capacity.CPU {
		return rCPU
	}
	if used.MemoryMB+ask.MemoryMB > capacity.MemoryMB {
		return rMemory
	}
	return feasible
}

// nodeStaticReason is the part of feasibility that depends only on the
// node and the group, cached per group for one Schedule call: the node's
// status, the job's datacenters, then the checks that depend only on the
// node's computed class (job constraints, drivers, group constraints),
// shared by the nodes of a class (Node.ComputedClass) unless the group
// reads unique values.
// It also records the node's affinity score for the ranking.
func (p *placer) nodeStaticReason(i int, g *groupAsk) reasonID {
	ns := p.nodes[i]
	if ns == nil || ns.Node == nil {
		return rNodeUnknown
	}
	if r := nodeStatusReason(ns.Node); r != feasible {
		return r
	}
	if !datacenterAllowed(p.job.Datacenters, ns.Node.Datacenter) {
		return rDatacenter
	}
	if !g.hasClassChecks() {
		return driverReason(ns.Node, g)
	}
	var res classResult
	if class := ns.Node.ComputedClass; g.perNode || class == "" {
		res = p.classChecks(ns.Node, g)
	} else {
		var ok bool
		if res, ok = g.byClass[class]; !ok {
			res = p.classChecks(ns.Node, g)
			if g.byClass == nil {
				g.byClass = make(map[string]classResult)
			}
			g.byClass[class] = res
		}
	}
	if len(g.affinities) > 0 {
		if g.affinity == nil {
			g.affinity = make([]float64, len(p.nodes))
		}
		g.affinity[i] = res.affinity
	}
	for k, b := range res.spread {
		g.spreads[k].setBucket(i, b)
	}
	return res.reason
}

// classChecks runs the group's checks that read the node's attributes, in
// Nomad's order (job constraints, drivers, group constraints), and scores
// the affinities of a node that passes them.
func (p *placer) classChecks(n *Node, g *groupAsk) classResult {
	for k := range g.constraints[:g.nJob] {
		if c := &g.constraints[k]; !c.matches(n, &p.compiled) {
			return classResult{reason: c.id}
		}
	}
	if r := driverReason(n, g); r != feasible {
		return classResult{reason: r}
	}
	for k := range g.constraints[g.nJob:] {
		if c := &g.constraints[g.nJob+k]; !c.matches(n, &p.compiled) {
			return classResult{reason: c.id}
		}
	}
	res := classResult{affinity: affinityScore(n, g, &p.compiled)}
	if len(g.spreads) > 0 && !g.perNode && n.ComputedClass != "" {
		// The spread values of a feasible node, shared by its class
		// unless the spread reads a unique value.
		res.spread = make([]int32, len(g.spreads))
		for k, s := range g.spreads {
			res.spread[k] = bucketUnknown
			if !s.attr.unique() {
				res.spread[k] = s.bucket(s.attr.resolve(n))
			}
		}
	}
	return res
}

// cachedStaticReason memoises nodeStaticReason per node for the group,
// then the group's host volumes (per node: they are not in the class).
func (p *placer) cachedStaticReason(i int, g *groupAsk) reasonID {
	if g.static == nil {
		g.static = make([]reasonID, len(p.nodes))
	}
	if c := g.static[i]; c != 0 {
		return c - 1
	}
	r := p.nodeStaticReason(i, g)
	if r == feasible && len(g.volumes) > 0 {
		r = volumeReason(p.nodes[i].Node, g.volumes)
	}
	g.static[i] = r + 1
	return r
}

// distinctHostsCollision reports whether the node already holds an
// allocation a distinct_hosts constraint forbids the group to share it
// with: any of the job's (job level) or one of the group's (group level),
// kept by reconciliation or placed by this plan.
func distinctHostsCollision(d *nodeDelta, g *groupAsk) bool {
	switch g.distinct {
	case distinctGroup:
		return d.collisionsOf(g.index) > 0
	case distinctJob:
		return d.jobCollisions() > 0
	}
	return false
}

// capacityReason is the part of feasibility that changes as the plan
// places allocations: resources (ask on top of what the node and the plan
// so far use), then static ports, then dynamic ports.
func capacityReason(ns *NodeState, d *nodeDelta, g *groupAsk, ask Resources) reasonID {
	if r := resourceReason(ns.Node.Capacity, ns.Used.Add(d.usedDelta()), ask); r != feasible {
		return r
	}
	for _, port := range g.staticPorts {
		if portInUse(ns, d, port) {
			return rStaticPort
		}
	}
	if g.dynamic > 0 && !dynamicPortsAvailable(ns, d, g.dynamic+g.staticInRange) {
		return rDynamicPorts
	}
	return feasible
}

// feasibility is the scheduler's one feasibility check: whether node i
// can take one more copy of group g asking res, in Nomad's order. First
// what depends on the node alone (status and eligibility, datacenter,
// the job's constraints, drivers, the group's constraints; cached per
// node, and per computed class unless g.perNode), then distinct_hosts
// (against the plan's overlay), then capacity (cpu, memory, static
// ports, dynamic ports). Schedule's pipeline (evaluate) and the plan
// applier's re-check (Checker.Fits) both call it, so they reject a node
// for the same reason.
func (p *placer) feasibility(i int, g *groupAsk, res Resources) reasonID {
	if r := p.cachedStaticReason(i, g); r != feasible {
		return r
	}
	d := p.overlay.get(i)
	if g.distinct != distinctNone && distinctHostsCollision(d, g) {
		return rDistinctHosts
	}
	return capacityReason(p.nodes[i], d, g, res)
}

// Checker re-checks placements against nodes as they are when a plan is
// applied, with the scheduler's own feasibility check (the same function
// as Schedule's pipeline, so the same order and the same reasons). It is
// built once per job version and used for every placement of a plan.
//
// A Checker sees one node at a time, so it cannot re-check
// distinct_hosts (which depends on the job's other allocations); spread
// and affinity are preferences, not conditions, and are not re-checked.
// It never trusts a node's computed class: the constraints are evaluated
// on the node itself, so a stale ComputedClass cannot slip a placement
// past it. A Checker is not safe for concurrent use.
type Checker struct {
	p      *placer // over a one-node cluster: the node being checked
	groups map[string]*groupAsk
}

// NewChecker compiles job's groups for Fits. Errors wrap ErrInvalidJob
// (a job Schedule would refuse too) or ErrInvalidRequest (no job).
func NewChecker(job *spec.Job) (*Checker, error) {
	if job == nil {
		return nil, fmt.Errorf("%w: NewChecker needs a job", ErrInvalidRequest)
	}
	asks, err := newGroupAsks(job)
	if err != nil {
		return nil, err
	}
	c := &Checker{groups: make(map[string]*groupAsk, len(asks))}
	for _, g := range asks {
		// The checker ranks nothing, and checks each node on its own.
		g.affinities, g.affinitySum, g.spreads, g.perNode = nil, 0, nil, true
		c.groups[g.group.Name] = g
	}
	c.p = newPlacer(&Request{Job: job, Nodes: make([]*NodeState, 1)}, asks)
	return c, nil
}

// Fits reports whether a can be added to node n as n is now: the checks
// of feasibility for a's group with a's resources, then a's own ports
// (in range, not in use on the node, not assigned twice).
//
// A *FitError says why not, with the reason Schedule would give
// (constraint reasons included) or, for a's ports, "port N in use",
// "port N assigned twice" or "port N out of range"; other errors
// (wrapping ErrInvalidRequest) mean the arguments make no sense.
func (c *Checker) Fits(n *NodeState, a *Allocation) error {
	if n == nil || n.Node == nil || a == nil {
		return fmt.Errorf("%w: Fits needs a node and an allocation", ErrInvalidRequest)
	}
	g := c.groups[a.Group]
	if g == nil {
		return fmt.Errorf("%w: group %q not in job %q", ErrInvalidRequest, a.Group, c.p.job.ID)
	}
	fail := func(reason string) error { return &FitError{NodeID: n.Node.ID, Reason: reason} }
	if a.NodeID != "" && a.NodeID != n.Node.ID {
		return fail("allocation is for node " + a.NodeID)
	}
	c.p.nodes[0] = n
	if g.static != nil {
		g.static[0] = 0 // another node than last time: nothing cached
	}
	if r := c.p.feasibility(0, g, a.Resources); r != feasible {
		return fail(c.p.reasons.names[r])
	}
	return portsFit(n, a.Ports, fail)
}

// portsFit checks the allocation's ports against the node's and each other.
func portsFit(n *NodeState, ports []PortMapping, fail func(string) error) error {
	bad := func(v int, why string) error { return fail("port " + strconv.Itoa(v) + " " + why) }
	for i, pm := range ports {
		switch {
		case pm.Value < 1 || pm.Value > 65535:
			return bad(pm.Value, "out of range")
		case n.UsedPorts[pm.Value]:
			return bad(pm.Value, "in use")
		}
		for _, earlier := range ports[:i] {
			if earlier.Value == pm.Value {
				return bad(pm.Value, "assigned twice")
			}
		}
	}
	return nil
}
