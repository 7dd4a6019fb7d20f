package sched

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/strata-run/strata/spec"
)

// newNode is a ready, eligible node in dc1 with a healthy wasm driver,
// 4000 MHz and 8192 MB, nothing used; opts adjust it.
func newNode(id string, opts ...func(*NodeState)) *NodeState {
	ns := &NodeState{
		Node: &Node{
			ID:         id,
			Name:       "name-" + id,
			Datacenter: "dc1",
			Drivers:    map[string]bool{"wasm": true},
			Capacity:   Resources{CPU: 4000, MemoryMB: 8192},
			Status:     NodeReady,
			Eligible:   true,
		},
		UsedPorts: map[int]bool{},
	}
	for _, o := range opts {
		o(ns)
	}
	return ns
}

func withUsed(cpu, mem int) func(*NodeState) {
	return func(ns *NodeState) { ns.Used = Resources{CPU: cpu, MemoryMB: mem} }
}

func withCapacity(cpu, mem int) func(*NodeState) {
	return func(ns *NodeState) { ns.Node.Capacity = Resources{CPU: cpu, MemoryMB: mem} }
}

func withPorts(ports ...int) func(*NodeState) {
	return func(ns *NodeState) {
		for _, p := range ports {
			ns.UsedPorts[p] = true
		}
	}
}

// withDynamicRangeUsedExcept marks every dynamic port used except free.
func withDynamicRangeUsedExcept(free ...int) func(*NodeState) {
	return func(ns *NodeState) {
		for p := MinDynamicPort; p <= MaxDynamicPort; p++ {
			if !slices.Contains(free, p) {
				ns.UsedPorts[p] = true
			}
		}
	}
}

func withNode(f func(*Node)) func(*NodeState) {
	return func(ns *NodeState) { f(ns.Node) }
}

func newJob(id string, groups ...*spec.Group) *spec.Job {
	return &spec.Job{ID: id, Type: "service", Priority: 50, Groups: groups}
}

func newGroup(name string, count int, tasks ...*spec.Task) *spec.Group {
	return &spec.Group{Name: name, Count: count, Tasks: tasks}
}

func newTask(name, driver string, cpu, mem int, ports ...*spec.Port) *spec.Task {
	t := &spec.Task{Name: name, Driver: driver, Resources: spec.Resources{CPU: cpu, MemoryMB: mem}}
	if len(ports) > 0 {
		t.Resources.Networks = []*spec.Network{{Ports: ports}}
	}
	return t
}

func dynPort(label string) *spec.Port           { return &spec.Port{Label: label} }
func staticPort(label string, p int) *spec.Port { return &spec.Port{Label: label, Static: p} }

func mustSchedule(t testing.TB, req *Request) *Plan {
	t.Helper()
	plan, err := Schedule(req)
	if err != nil {
		t.Fatalf("Schedule: %v", err)
	}
	return plan
}

func nodes(n int, opts ...func(*NodeState)) []*NodeState {
	out := make([]*NodeState, n)
	for i := range out {
		out[i] = newNode(fmt.Sprintf("n%03d", i), opts...)
	}
	return out
}

// existing is a running allocation of job j, group g, at version v.
func existing(id string, j, g string, index int, v uint64, node string) *Allocation {
	return &Allocation{
		ID: id, JobID: j, Group: g, Index: index, JobVersion: v, NodeID: node,
		Name:          fmt.Sprintf("%s.%s[%d]", j, g, index),
		DesiredStatus: DesiredRun, ClientStatus: ClientRunning,
	}
}

// cloneNodes deep-copies node states so a test can compare before/after.
func cloneNodes(in []*NodeState) []*NodeState {
	out := make([]*NodeState, len(in))
	for i, ns := range in {
		if ns == nil {
			continue
		}
		n := *ns.Node
		n.Drivers = maps.Clone(n.Drivers)
		out[i] = &NodeState{Node: &n, Used: ns.Used, UsedPorts: maps.Clone(ns.UsedPorts)}
	}
	return out
}

func cloneAllocs(in []*Allocation) []*Allocation {
	if in == nil {
		return nil
	}
	out := make([]*Allocation, len(in))
	for i, a := range in {
		c := *a
		c.Ports = slices.Clone(a.Ports)
		out[i] = &c
	}
	return out
}

// applyPlan applies plan to a copy of nodes the way the coordinator does:
// stops first, then each placement after checking it with a Checker.
func applyPlan(t testing.TB, nodes []*NodeState, plan *Plan, job *spec.Job) map[string]*NodeState {
	t.Helper()
	byID := map[string]*NodeState{}
	for _, ns := range cloneNodes(nodes) {
		if ns != nil {
			byID[ns.Node.ID] = ns
		}
	}
	for _, a := range plan.Stop {
		ns := byID[a.NodeID]
		if ns == nil {
			continue
		}
		ns.Used = ns.Used.Add(Resources{CPU: -a.Resources.CPU, MemoryMB: -a.Resources.MemoryMB})
		for _, p := range a.Ports {
			delete(ns.UsedPorts, p.Value)
		}
	}
	for _, a := range plan.Place {
		ns := byID[a.NodeID]
		if ns == nil {
			t.Fatalf("placement %s on unknown node %s", a.Name, a.NodeID)
		}
		if err := fits(ns, a, job); err != nil {
			t.Fatalf("placement %s does not fit when applied: %v", a.Name, err)
		}
		ns.Used = ns.Used.Add(a.Resources)
		for _, p := range a.Ports {
			ns.UsedPorts[p.Value] = true
		}
	}
	return byID
}

// fmtSscanf reads the index of a node named by nodes() ("n007").
func fmtSscanf(id string, idx *int) (int, error) { return fmt.Sscanf(id, "n%03d", idx) }

// fits checks one placement with a Checker built for job, as the
// coordinator's plan applier does.
func fits(n *NodeState, a *Allocation, job *spec.Job) error {
	c, err := NewChecker(job)
	if err != nil {
		return err
	}
	return c.Fits(n, a)
}
