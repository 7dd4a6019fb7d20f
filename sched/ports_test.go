package sched

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-run/strata/spec"
)

func TestPortsNoCollisionWithinPlan(t *testing.T) {
	// 50 copies with two dynamic ports each on one node: 100 distinct
	// ports, none of them already in use.
	used := []int{20000, 20001, 25000, 31999, 32000}
	ns := newNode("n1", withCapacity(100000, 100000), withPorts(used...))
	job := newJob("j", newGroup("g", 50, newTask("t", "wasm", 10, 10, dynPort("a"), dynPort("b"))))
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: []*NodeState{ns}})
	if len(plan.Place) != 50 {
		t.Fatalf("placed %d, want 50 (failed %v)", len(plan.Place), plan.Failed)
	}
	seen := map[int]bool{}
	for _, u := range used {
		seen[u] = true
	}
	for _, a := range plan.Place {
		for _, p := range a.Ports {
			if p.Value < MinDynamicPort || p.Value > MaxDynamicPort || seen[p.Value] {
				t.Fatalf("%s: port %d out of range or used twice", a.Name, p.Value)
			}
			seen[p.Value] = true
		}
	}
}

func TestPortsNearlyFullRange(t *testing.T) {
	// Only three free ports in the range: random draws almost never hit
	// them, the linear scan does.
	free := []int{20017, 27777, 32000}
	ns := newNode("n1", withDynamicRangeUsedExcept(free...))
	job := newJob("j", newGroup("g", 4, newTask("t", "wasm", 10, 10, dynPort("http"))))
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: []*NodeState{ns}})
	var got []int
	for _, a := range plan.Place {
		got = append(got, a.Ports[0].Value)
	}
	if len(got) != 3 || !sameSet(got, free) {
		t.Fatalf("ports %v, want the free ones %v", got, free)
	}
	e := plan.Failed["g"]
	if e == nil || e.Missing != 1 || e.Reasons["dynamic ports exhausted"] != 1 {
		t.Fatalf("Failed[g] = %+v, want 1 missing for dynamic ports exhausted", e)
	}
}

func sameSet(a, b []int) bool {
	m := map[int]int{}
	for _, v := range a {
		m[v]++
	}
	for _, v := range b {
		m[v]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

func TestPortsStaticInDynamicRangeNotReused(t *testing.T) {
	// The static port 20005 is free but belongs to the allocation: the
	// dynamic port must take the other free one.
	ns := newNode("n1", withDynamicRangeUsedExcept(20005, 20006))
	job := newJob("j", newGroup("g", 1,
		newTask("a", "wasm", 10, 10, dynPort("dyn")),
		newTask("b", "wasm", 10, 10, staticPort("fixed", 20005))))
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: []*NodeState{ns}})
	if len(plan.Place) != 1 {
		t.Fatalf("failed: %v", plan.Failed["g"])
	}
	want := []PortMapping{{Label: "dyn", Value: 20006}, {Label: "fixed", Value: 20005}}
	if !reflect.DeepEqual(plan.Place[0].Ports, want) {
		t.Fatalf("ports %+v, want %+v", plan.Place[0].Ports, want)
	}
}

func TestPortsOrderLabelsAndTo(t *testing.T) {
	job := newJob("j", newGroup("g", 1,
		&spec.Task{Name: "a", Driver: "wasm", Resources: spec.Resources{CPU: 1, MemoryMB: 1, Networks: []*spec.Network{
			{Ports: []*spec.Port{{Label: "http", To: 8080}, {Label: "metrics", Static: 9100}}},
			{Ports: []*spec.Port{{Label: "grpc"}}},
		}}},
		newTask("b", "wasm", 1, 1, staticPort("admin", 7000))))
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes(1)})
	ports := plan.Place[0].Ports
	var labels []string
	for _, p := range ports {
		labels = append(labels, p.Label)
	}
	if !reflect.DeepEqual(labels, []string{"http", "metrics", "grpc", "admin"}) {
		t.Fatalf("labels %v", labels)
	}
	if ports[0].To != 8080 || ports[1].Value != 9100 || ports[3].Value != 7000 || ports[0].Value == ports[2].Value {
		t.Fatalf("ports %+v", ports)
	}
}

func TestPortsStaticCollisionAcrossPlan(t *testing.T) {
	// Two copies asking for static 8080 cannot share a node.
	job := newJob("j", newGroup("g", 3, newTask("t", "wasm", 1, 1, staticPort("http", 8080))))
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes(2)})
	if len(plan.Place) != 2 || plan.Place[0].NodeID == plan.Place[1].NodeID {
		t.Fatalf("placements %+v", plan.Place)
	}
	if e := plan.Failed["g"]; e == nil || e.Reasons["static port collision"] != 2 || e.Missing != 1 {
		t.Fatalf("Failed[g] = %+v", e)
	}
}

func TestPickDynamicPort(t *testing.T) {
	r := newRNG("e", 0)
	onlyFree := func(free int) func(int) bool { return func(v int) bool { return v != free } }
	for _, free := range []int{MinDynamicPort, 26000, MaxDynamicPort} {
		if v, ok := pickDynamicPort(r, onlyFree(free)); !ok || v != free {
			t.Fatalf("pickDynamicPort = %d, %v; want %d", v, ok, free)
		}
	}
	if _, ok := pickDynamicPort(r, func(int) bool { return true }); ok {
		t.Fatal("pickDynamicPort found a port in a full range")
	}
	ns := newNode("n1", withDynamicRangeUsedExcept())
	g := &groupAsk{ports: []portAsk{{label: "x"}}, dynamic: 1}
	if _, err := assignPorts(r, ns, nil, g); !errors.Is(err, errPortsExhausted) {
		t.Fatalf("assignPorts on a full range: %v", err)
	}
}

func TestPortsReleasedByStopAreReusable(t *testing.T) {
	// The node's only free static port is held by the old version's
	// allocation; the plan stops it and its replacement takes the port.
	ns := newNode("n1", withPorts(8080), withUsed(500, 256))
	job := newJob("j", newGroup("g", 1, newTask("t", "wasm", 500, 256, staticPort("http", 8080))))
	old := existing("old", "j", "g", 0, 1, "n1")
	old.Resources = Resources{CPU: 500, MemoryMB: 256}
	old.Ports = []PortMapping{{Label: "http", Value: 8080}}
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, JobVersion: 2, Nodes: []*NodeState{ns}, Existing: []*Allocation{old}})
	if len(plan.Stop) != 1 || len(plan.Place) != 1 || plan.Place[0].Ports[0].Value != 8080 {
		t.Fatalf("stop %v place %v failed %v", plan.Stop, plan.Place, plan.Failed)
	}
	applyPlan(t, []*NodeState{ns}, plan, job)
}

func TestGroupNetworkPorts(t *testing.T) {
	groupNet := func() *spec.Group {
		g := newGroup("g", 1, newTask("a", "wasm", 1, 1, dynPort("admin")), newTask("b", "wasm", 1, 1, staticPort("metrics", 9100)))
		g.Networks = []*spec.Network{{Ports: []*spec.Port{{Label: "http", To: 8080}, {Label: "https", Static: 8443}}}}
		return g
	}
	t.Run("group ports first, then each task's", func(t *testing.T) {
		job := newJob("j", groupNet())
		plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes(1)})
		if len(plan.Place) != 1 {
			t.Fatalf("failed: %v", plan.Failed)
		}
		ports := plan.Place[0].Ports
		var labels []string
		for _, p := range ports {
			labels = append(labels, p.Label)
		}
		if !reflect.DeepEqual(labels, []string{"http", "https", "admin", "metrics"}) {
			t.Fatalf("labels %v", labels)
		}
		if ports[0].To != 8080 || !inDynamicRange(ports[0].Value) || ports[1].Value != 8443 ||
			!inDynamicRange(ports[2].Value) || ports[0].Value == ports[2].Value || ports[3].Value != 9100 {
			t.Fatalf("ports %+v", ports)
		}
		applyPlan(t, nodes(1), plan, job)
	})
	t.Run("a group static port collides", func(t *testing.T) {
		job := newJob("j", groupNet())
		plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes(1, withPorts(8443))})
		if e := plan.Failed["g"]; len(plan.Place) != 0 || e == nil || e.Reasons["static port collision"] != 1 {
			t.Fatalf("placed %v, failed %+v", plan.Place, e)
		}
	})
	t.Run("group dynamic ports count", func(t *testing.T) {
		// Two dynamic ports (group http, task admin), one free port.
		job := newJob("j", groupNet())
		plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes(1, withDynamicRangeUsedExcept(25000))})
		if e := plan.Failed["g"]; len(plan.Place) != 0 || e == nil || e.Reasons["dynamic ports exhausted"] != 1 {
			t.Fatalf("placed %v, failed %+v", plan.Place, e)
		}
	})
	t.Run("copies on one node never share a group port", func(t *testing.T) {
		g := groupNet()
		g.Networks[0].Ports[1].Static = 0 // all dynamic: ten copies fit on one node
		g.Tasks[1].Resources.Networks[0].Ports[0].Static = 0
		g.Count = 10
		job := newJob("j", g)
		plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes(1)})
		if len(plan.Place) != 10 {
			t.Fatalf("placed %d, failed %v", len(plan.Place), plan.Failed)
		}
		applyPlan(t, nodes(1), plan, job) // Fits: no port twice
	})
	t.Run("labels unique across group and tasks", func(t *testing.T) {
		g := groupNet()
		g.Tasks[1].Resources.Networks[0].Ports[0].Label = "http"
		_, err := Schedule(&Request{EvalID: "e", Job: newJob("j", g), Nodes: nodes(1)})
		if !errors.Is(err, ErrInvalidJob) || !strings.Contains(err.Error(), `port label "http" used by group network and task "b"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("static port shared by group and task", func(t *testing.T) {
		g := groupNet()
		g.Tasks[1].Resources.Networks[0].Ports[0].Static = 8443
		if _, err := Schedule(&Request{EvalID: "e", Job: newJob("j", g), Nodes: nodes(1)}); !errors.Is(err, ErrInvalidJob) {
			t.Fatalf("err = %v", err)
		}
	})
}
