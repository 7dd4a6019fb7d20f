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
	rCPU:            "cpu exhausted",
	rMemory:         "memory exhausted",
	rStaticPort:     "static port collision",
	rDynamicPorts:   "dynamic ports exhausted",
}

// reasonTable interns reason strings so that rejections are counted in a
// slice and the per-node feasibility cache holds small integers.
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

// ErrInvalidRequest is wrapped by errors about a malformed Request or Fits call.
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

// driverReason returns "" when every driver is present and healthy on n.
func driverReason(n *Node, drivers []string) string {
	for _, d := range drivers {
		if s := driverProblem(n, d); s != "" {
			return s
		}
	}
	return ""
}

func driverProblem(n *Node, driver string) string {
	healthy, ok := n.Drivers[driver]
	switch {
	case !ok:
		return "missing driver " + driver
	case !healthy:
		return "unhealthy driver " + driver
	}
	return ""
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
// node and the group, cached per group for one Schedule call.
func (p *placer) nodeStaticReason(ns *NodeState, g *groupAsk) reasonID {
	if ns == nil || ns.Node == nil {
		return rNodeUnknown
	}
	if r := nodeStatusReason(ns.Node); r != feasible {
		return r
	}
	if !datacenterAllowed(p.job.Datacenters, ns.Node.Datacenter) {
		return rDatacenter
	}
	if s := driverReason(ns.Node, g.drivers); s != "" {
		return p.reasons.intern(s)
	}
	return feasible
}

// cachedStaticReason memoises nodeStaticReason per node for the group.
func (p *placer) cachedStaticReason(i int, g *groupAsk) reasonID {
	if g.static == nil {
		g.static = make([]reasonID, len(p.nodes))
	}
	if c := g.static[i]; c != 0 {
		return c - 1
	}
	r := p.nodeStaticReason(p.nodes[i], g)
	g.static[i] = r + 1
	return r
}

// capacityReason is the part of feasibility that changes as the plan
// places allocations: resources, then static ports, then dynamic ports.
func capacityReason(ns *NodeState, d *nodeDelta, g *groupAsk) reasonID {
	if r := resourceReason(ns.Node.Capacity, ns.Used.Add(d.usedDelta()), g.res); r != feasible {
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

// Fits reports whether a can be added to node n as n is now: the node is
// ready, eligible and in one of the job's datacenters, every driver of the
// allocation's group is healthy there, the resources fit and none of the
// allocation's ports is in use. The coordinator's plan applier calls it to
// re-check a plan against current state. A *FitError says why not; other
// errors (wrapping ErrInvalidRequest) mean the arguments make no sense.
func Fits(n *NodeState, a *Allocation, job *spec.Job) error {
	if n == nil || n.Node == nil || a == nil || job == nil {
		return fmt.Errorf("%w: Fits needs a node, an allocation and a job", ErrInvalidRequest)
	}
	g := job.Lookup(a.Group)
	if g == nil {
		return fmt.Errorf("%w: group %q not in job %q", ErrInvalidRequest, a.Group, job.ID)
	}
	fail := func(reason string) error { return &FitError{NodeID: n.Node.ID, Reason: reason} }
	if a.NodeID != "" && a.NodeID != n.Node.ID {
		return fail("allocation is for node " + a.NodeID)
	}
	if r := nodeStatusReason(n.Node); r != feasible {
		return fail(fixedReasons[r])
	}
	if !datacenterAllowed(job.Datacenters, n.Node.Datacenter) {
		return fail(fixedReasons[rDatacenter])
	}
	for _, t := range g.Tasks {
		if t == nil {
			continue
		}
		if s := driverProblem(n.Node, t.Driver); s != "" {
			return fail(s)
		}
	}
	if r := resourceReason(n.Node.Capacity, n.Used, a.Resources); r != feasible {
		return fail(fixedReasons[r])
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
