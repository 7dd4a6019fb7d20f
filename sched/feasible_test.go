package sched

import (
	"errors"
	"maps"
	"testing"

	"github.com/strata-run/strata/spec"
)

// TestFeasibilityReasons runs each check through Schedule on a one-node
// cluster and through Checker.Fits on an allocation of the same group:
// both give the same reason.
func TestFeasibilityReasons(t *testing.T) {
	web := func() *spec.Group {
		return newGroup("web", 1, newTask("api", "wasm", 500, 256, staticPort("http", 8080), dynPort("admin")))
	}
	tests := []struct {
		name   string
		node   func(*NodeState)
		job    func(*spec.Job)
		reason string // "" means feasible
	}{
		{name: "feasible"},
		{name: "node down", node: withNode(func(n *Node) { n.Status = NodeDown }), reason: "node down"},
		{name: "node initializing", node: withNode(func(n *Node) { n.Status = "initializing" }), reason: "node not ready"},
		{name: "node ineligible", node: withNode(func(n *Node) { n.Eligible = false }), reason: "node ineligible"},
		{name: "datacenter", job: func(j *spec.Job) { j.Datacenters = []string{"dc2", "dc3"} }, reason: "datacenter mismatch"},
		{name: "datacenter allowed", job: func(j *spec.Job) { j.Datacenters = []string{"dc2", "dc1"} }},
		{name: "missing driver", job: func(j *spec.Job) { j.Groups[0].Tasks[0].Driver = "docker" }, reason: "missing driver docker"},
		{name: "unhealthy driver", node: withNode(func(n *Node) { n.Drivers["wasm"] = false }), reason: "unhealthy driver wasm"},
		{name: "second task's driver", job: func(j *spec.Job) {
			j.Groups[0].Tasks = append(j.Groups[0].Tasks, newTask("side", "docker", 1, 1))
		}, reason: "missing driver docker"},
		{name: "cpu", node: withUsed(3600, 0), reason: "cpu exhausted"},
		{name: "cpu exact fit", node: withUsed(3500, 0)},
		{name: "memory", node: withUsed(0, 8000), reason: "memory exhausted"},
		{name: "group sum of tasks", job: func(j *spec.Job) {
			j.Groups[0].Tasks = append(j.Groups[0].Tasks, newTask("side", "wasm", 3600, 1))
		}, reason: "cpu exhausted"},
		{name: "static port", node: withPorts(8080), reason: "static port collision"},
		{name: "dynamic ports exhausted", node: withDynamicRangeUsedExcept(), reason: "dynamic ports exhausted"},
		{name: "one dynamic port left", node: withDynamicRangeUsedExcept(31999)},
		{name: "static port in range eats the last free one", node: withDynamicRangeUsedExcept(20500), job: func(j *spec.Job) {
			j.Groups[0].Tasks[0].Resources.Networks[0].Ports[0].Static = 20500
		}, reason: "dynamic ports exhausted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNode("n1")
			if tt.node != nil {
				tt.node(ns)
			}
			job := newJob("j", web())
			if tt.job != nil {
				tt.job(job)
			}
			plan := mustSchedule(t, &Request{EvalID: "e", Job: job, JobVersion: 1, Nodes: []*NodeState{ns}})
			if tt.reason == "" {
				if len(plan.Place) != 1 || plan.Failed != nil {
					t.Fatalf("want one placement, got %d, failed %v", len(plan.Place), plan.Failed)
				}
				if err := fits(ns, plan.Place[0], job); err != nil {
					t.Fatalf("Fits rejects the placement: %v", err)
				}
				return
			}
			if len(plan.Place) != 0 {
				t.Fatalf("placed on an infeasible node: %+v", plan.Place[0])
			}
			e := plan.Failed["web"]
			want := map[string]int{tt.reason: 1}
			if e == nil || !maps.Equal(e.Reasons, want) || e.Missing != 1 || e.NodesEvaluated != 1 || e.NodesFeasible != 0 {
				t.Fatalf("Failed[web] = %+v, want reasons %v", e, want)
			}
			// The applier's check gives the same reason, for an allocation
			// of the group with plausible ports.
			a := &Allocation{Group: "web", NodeID: "n1", Resources: groupResources(job.Groups[0]),
				Ports: []PortMapping{{Label: "http", Value: 8080}, {Label: "admin", Value: 20000}}}
			if job.Groups[0].Tasks[0].Resources.Networks[0].Ports[0].Static == 20500 {
				a.Ports[0].Value = 20500
				a.Ports[1].Value = 20500 // the only free port: taken by the static one
			}
			var fe *FitError
			if err := fits(ns, a, job); !errors.As(err, &fe) || fe.Reason != tt.reason {
				t.Fatalf("Fits = %v, want a *FitError %q", err, tt.reason)
			}
		})
	}
}

func groupResources(g *spec.Group) Resources {
	var r Resources
	for _, t := range g.Tasks {
		r = r.Add(Resources{CPU: t.Resources.CPU, MemoryMB: t.Resources.MemoryMB})
	}
	return r
}

func TestFits(t *testing.T) {
	job := newJob("j", newGroup("web", 1, newTask("api", "wasm", 500, 256, dynPort("http"))))
	alloc := func(f func(*Allocation)) *Allocation {
		a := &Allocation{Group: "web", NodeID: "n1", Resources: Resources{CPU: 500, MemoryMB: 256},
			Ports: []PortMapping{{Label: "http", Value: 20001}}}
		if f != nil {
			f(a)
		}
		return a
	}
	tests := []struct {
		name   string
		node   *NodeState
		alloc  *Allocation
		reason string // "" means it fits
	}{
		{name: "fits", node: newNode("n1"), alloc: alloc(nil)},
		{name: "fits exactly", node: newNode("n1", withUsed(3500, 7936)), alloc: alloc(nil)},
		{name: "memory", node: newNode("n1", withUsed(0, 8000)), alloc: alloc(nil), reason: "memory exhausted"},
		{name: "cpu", node: newNode("n1", withUsed(3501, 0)), alloc: alloc(nil), reason: "cpu exhausted"},
		{name: "port in use", node: newNode("n1", withPorts(20001)), alloc: alloc(nil), reason: "port 20001 in use"},
		{name: "port twice", node: newNode("n1"), alloc: alloc(func(a *Allocation) {
			a.Ports = append(a.Ports, PortMapping{Label: "x", Value: 20001})
		}), reason: "port 20001 assigned twice"},
		{name: "port out of range", node: newNode("n1"), alloc: alloc(func(a *Allocation) { a.Ports[0].Value = 70000 }), reason: "port 70000 out of range"},
		{name: "other node", node: newNode("n2"), alloc: alloc(nil), reason: "allocation is for node n1"},
		{name: "down", node: newNode("n1", withNode(func(n *Node) { n.Status = NodeDown })), alloc: alloc(nil), reason: "node down"},
		{name: "ineligible", node: newNode("n1", withNode(func(n *Node) { n.Eligible = false })), alloc: alloc(nil), reason: "node ineligible"},
		{name: "driver", node: newNode("n1", withNode(func(n *Node) { n.Drivers = map[string]bool{"docker": true} })), alloc: alloc(nil), reason: "missing driver wasm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fits(tt.node, tt.alloc, job)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Fits = %v, want nil", err)
				}
				return
			}
			var fe *FitError
			if !errors.As(err, &fe) || fe.Reason != tt.reason || fe.NodeID != tt.node.Node.ID {
				t.Fatalf("Fits = %#v, want FitError %q", err, tt.reason)
			}
		})
	}
}

func TestFitsInvalidArguments(t *testing.T) {
	job := newJob("j", newGroup("web", 1, newTask("api", "wasm", 1, 1)))
	a := &Allocation{Group: "web"}
	for name, err := range map[string]error{
		"nil node":      fits(nil, a, job),
		"nil alloc":     fits(newNode("n1"), nil, job),
		"nil job":       fits(newNode("n1"), a, nil),
		"unknown group": fits(newNode("n1"), &Allocation{Group: "db"}, job),
	} {
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest", name, err)
		}
	}
	// A job Schedule refuses cannot be checked against either.
	bad := newJob("j", newGroup("g", 1, newTask("a", "wasm", 1, 1, staticPort("x", 80)), newTask("b", "wasm", 1, 1, staticPort("y", 80))))
	if _, err := NewChecker(bad); !errors.Is(err, ErrInvalidJob) {
		t.Errorf("NewChecker(invalid job) = %v, want ErrInvalidJob", err)
	}
}

// One Checker serves every placement of a plan, on different nodes: what
// it found on one node never leaks into the next.
func TestCheckerReusedAcrossNodes(t *testing.T) {
	job := newJob("j", newGroup("web", 1, newTask("api", "wasm", 500, 256)))
	job.Constraints = []*spec.Constraint{{Attribute: "${attr.kernel.name}", Operator: "=", Value: "linux"}}
	c, err := NewChecker(job)
	if err != nil {
		t.Fatal(err)
	}
	linux, windows, full := attrNode("n1"), attrNode("n2"), attrNode("n3")
	windows.Node.Attributes["kernel.name"] = "windows"
	full.Used = Resources{CPU: 3600}
	for _, step := range []struct {
		ns     *NodeState
		reason string
	}{{linux, ""}, {windows, "constraint ${attr.kernel.name} = linux"}, {linux, ""}, {full, "cpu exhausted"}, {linux, ""}} {
		err := c.Fits(step.ns, &Allocation{Group: "web", Resources: Resources{CPU: 500, MemoryMB: 256}})
		var fe *FitError
		switch {
		case step.reason == "" && err != nil:
			t.Fatalf("%s: %v, want it to fit", step.ns.Node.ID, err)
		case step.reason != "" && (!errors.As(err, &fe) || fe.Reason != step.reason || fe.NodeID != step.ns.Node.ID):
			t.Fatalf("%s: %v, want %q", step.ns.Node.ID, err, step.reason)
		}
	}
}

func TestFeasibilityCachePerGroup(t *testing.T) {
	// A node missing docker is rejected for the docker group but still
	// takes the wasm group: the cache is per node and group.
	job := newJob("j",
		newGroup("d", 1, newTask("t", "docker", 1, 1)),
		newGroup("w", 2, newTask("t", "wasm", 1, 1)),
	)
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes(3)})
	if len(plan.Place) != 2 || plan.Failed["d"] == nil || plan.Failed["d"].Reasons["missing driver docker"] != 3 {
		t.Fatalf("placed %d, failed %v", len(plan.Place), plan.Failed)
	}
}

func TestInvalidJob(t *testing.T) {
	tests := map[string]*spec.Job{
		"duplicate label across tasks": newJob("j", newGroup("g", 1,
			newTask("a", "wasm", 1, 1, dynPort("http")),
			newTask("b", "wasm", 1, 1, dynPort("http")))),
		"duplicate label in task": newJob("j", newGroup("g", 1,
			newTask("a", "wasm", 1, 1, dynPort("http"), staticPort("http", 80)))),
		"duplicate static port": newJob("j", newGroup("g", 1,
			newTask("a", "wasm", 1, 1, staticPort("x", 80)),
			newTask("b", "wasm", 1, 1, staticPort("y", 80)))),
		"static port out of range": newJob("j", newGroup("g", 1, newTask("a", "wasm", 1, 1, staticPort("x", 65536)))),
		"negative count":           newJob("j", newGroup("g", -1, newTask("a", "wasm", 1, 1))),
		"negative memory":          newJob("j", newGroup("g", 1, newTask("a", "wasm", 1, -1))),
		"duplicate group":          newJob("j", newGroup("g", 1), newGroup("g", 1)),
		"nil task":                 newJob("j", newGroup("g", 1, nil)),
	}
	for name, job := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Schedule(&Request{EvalID: "e", Job: job, Nodes: nodes(2)})
			if !errors.Is(err, ErrInvalidJob) {
				t.Fatalf("err = %v, want ErrInvalidJob", err)
			}
		})
	}
	if _, err := Schedule(nil); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("Schedule(nil) = %v, want ErrInvalidRequest", err)
	}
}
