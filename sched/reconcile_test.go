package sched

import (
	"reflect"
	"slices"
	"testing"

	"github.com/strata-run/strata/spec"
)

func TestReconcile(t *testing.T) {
	web := func(count int) *spec.Job {
		return newJob("j", newGroup("web", count, newTask("t", "wasm", 100, 64)))
	}
	run := func(id string, index int, version uint64) *Allocation {
		return existing(id, "j", "web", index, version, "n000")
	}
	with := func(a *Allocation, f func(*Allocation)) *Allocation { f(a); return a }
	tests := []struct {
		name     string
		job      *spec.Job
		version  uint64
		stopped  bool
		existing []*Allocation
		nodes    []*NodeState
		stops    map[string]string // alloc ID -> DesiredDesc
		place    []int             // indexes of web placed
	}{
		{name: "fresh job", job: web(3), version: 1, place: []int{0, 1, 2}},
		{name: "steady", job: web(2), version: 1, existing: []*Allocation{run("a", 0, 1), run("b", 1, 1)}},
		{name: "scale up", job: web(4), version: 1,
			existing: []*Allocation{run("a", 0, 1), run("b", 1, 1)}, place: []int{2, 3}},
		{name: "scale down stops highest indexes", job: web(2), version: 1,
			existing: []*Allocation{run("d", 3, 1), run("a", 0, 1), run("c", 2, 1), run("b", 1, 1)},
			stops:    map[string]string{"c": "count reduced", "d": "count reduced"}},
		{name: "scale to zero", job: web(0), version: 1, existing: []*Allocation{run("a", 0, 1)},
			stops: map[string]string{"a": "count reduced"}},
		{name: "version change replaces all at once", job: web(2), version: 2,
			existing: []*Allocation{run("a", 0, 1), run("b", 1, 1)},
			stops:    map[string]string{"a": "job updated to version 2", "b": "job updated to version 2"},
			place:    []int{0, 1}},
		{name: "version change and scale down", job: web(1), version: 2,
			existing: []*Allocation{run("a", 0, 1), run("b", 1, 1)},
			stops:    map[string]string{"a": "job updated to version 2", "b": "job updated to version 2"},
			place:    []int{0}},
		{name: "stop job", job: web(2), version: 1, stopped: true,
			existing: []*Allocation{run("a", 0, 1), with(run("b", 1, 1), func(a *Allocation) { a.ClientStatus = ClientFailed }),
				with(run("c", 2, 1), func(a *Allocation) { a.ClientStatus, a.DesiredStatus = ClientLost, DesiredStop })},
			stops: map[string]string{"a": "job stopped", "b": "job stopped"}},
		{name: "nil job", version: 1, existing: []*Allocation{run("a", 0, 1)},
			stops: map[string]string{"a": "job stopped"}},
		{name: "failed alloc without a reschedule policy stays failed", job: web(2), version: 1,
			existing: []*Allocation{run("a", 0, 1), with(run("b", 1, 1), func(a *Allocation) { a.ClientStatus = ClientFailed })}},
		{name: "failed alloc of a changed group is stopped and replaced at once", job: web(2), version: 2,
			existing: []*Allocation{run("a", 0, 2), with(run("b", 1, 1), func(a *Allocation) { a.ClientStatus = ClientFailed })},
			stops:    map[string]string{"b": "job updated to version 2"}, place: []int{1}},
		{name: "lost alloc stopped and replaced once", job: web(2), version: 1,
			existing: []*Allocation{run("a", 0, 1),
				with(run("b", 1, 1), func(a *Allocation) { a.ClientStatus = ClientLost }),
				with(run("c", 1, 1), func(a *Allocation) { a.ClientStatus, a.DesiredStatus = ClientFailed, DesiredStop })},
			stops: map[string]string{"b": "alloc lost: its node is down"}, place: []int{1}},
		{name: "stopped alloc is not stopped again", job: web(1), version: 1,
			existing: []*Allocation{with(run("a", 0, 1), func(a *Allocation) { a.DesiredStatus = DesiredStop })},
			place:    []int{0}},
		{name: "removed group", job: web(1), version: 1,
			existing: []*Allocation{run("a", 0, 1), existing("x", "j", "old", 0, 1, "n000")},
			stops:    map[string]string{"x": "group removed"}},
		{name: "duplicate index", job: web(2), version: 1,
			existing: []*Allocation{run("b", 0, 1), run("a", 0, 1)},
			stops:    map[string]string{"b": "duplicate index"}, place: []int{1}},
		{name: "node down", job: web(2), version: 1,
			existing: []*Allocation{run("a", 0, 1), existing("b", "j", "web", 1, 1, "n001")},
			nodes:    []*NodeState{newNode("n000"), newNode("n001", withNode(func(n *Node) { n.Status = NodeDown }))},
			stops:    map[string]string{"b": "node down"}, place: []int{1}},
		{name: "node gone", job: web(1), version: 1,
			existing: []*Allocation{existing("a", "j", "web", 0, 1, "gone")},
			stops:    map[string]string{"a": "node down"}, place: []int{0}},
		{name: "kept index above count fills its slot", job: web(2), version: 1,
			existing: []*Allocation{run("a", 0, 1), run("f", 5, 1)}},
		{name: "batch completion keeps its index", version: 1,
			job:      func() *spec.Job { j := web(2); j.Type = "batch"; return j }(),
			existing: []*Allocation{with(run("a", 0, 1), func(a *Allocation) { a.ClientStatus = ClientComplete })},
			place:    []int{1}},
		{name: "service completion is replaced", job: web(1), version: 1,
			existing: []*Allocation{with(run("a", 0, 1), func(a *Allocation) { a.ClientStatus = ClientComplete })},
			place:    []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := tt.nodes
			if ns == nil {
				ns = nodes(3)
			}
			before := cloneAllocs(tt.existing)
			plan := mustSchedule(t, &Request{EvalID: "e", Job: tt.job, JobVersion: tt.version,
				Stopped: tt.stopped, Nodes: ns, Existing: tt.existing})
			stops := map[string]string{}
			for _, a := range plan.Stop {
				if a.DesiredStatus != DesiredStop {
					t.Errorf("stop %s has DesiredStatus %q", a.ID, a.DesiredStatus)
				}
				stops[a.ID] = a.DesiredDesc
			}
			if len(stops) != len(tt.stops) || (len(stops) > 0 && !reflect.DeepEqual(stops, tt.stops)) {
				t.Errorf("stops %v, want %v", stops, tt.stops)
			}
			var place []int
			for _, a := range plan.Place {
				place = append(place, a.Index)
				if a.JobVersion != tt.version || a.Group != "web" || a.DesiredStatus != DesiredRun || a.ClientStatus != ClientPending {
					t.Errorf("placement %+v", a)
				}
			}
			if !slices.Equal(place, tt.place) {
				t.Errorf("placed indexes %v, want %v", place, tt.place)
			}
			if !reflect.DeepEqual(before, tt.existing) {
				t.Errorf("Schedule modified the existing allocations")
			}
		})
	}
}

func TestReconcileStopsFreeCapacity(t *testing.T) {
	// One node, full with version 1: the update stops it and places
	// version 2 in the room the stop leaves.
	ns := newNode("n1", withCapacity(1000, 1000), withUsed(1000, 1000))
	var old []*Allocation
	for i := range 2 {
		a := existing(string(rune('a'+i)), "j", "g", i, 1, "n1")
		a.Resources = Resources{CPU: 500, MemoryMB: 500}
		old = append(old, a)
	}
	job := newJob("j", newGroup("g", 2, newTask("t", "wasm", 500, 500)))
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, JobVersion: 2, Nodes: []*NodeState{ns}, Existing: old})
	if len(plan.Stop) != 2 || len(plan.Place) != 2 || plan.Failed != nil {
		t.Fatalf("stops %d, places %d, failed %v", len(plan.Stop), len(plan.Place), plan.Failed)
	}
	applyPlan(t, []*NodeState{ns}, plan, job)
}

func TestFailedGroupDoesNotBlockOthers(t *testing.T) {
	job := newJob("j",
		newGroup("big", 2, newTask("t", "wasm", 100000, 1)),
		newGroup("small", 2, newTask("t", "wasm", 100, 64)),
	)
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes(4)})
	if len(plan.Place) != 2 || plan.Place[0].Group != "small" {
		t.Fatalf("placements %+v", plan.Place)
	}
	e := plan.Failed["big"]
	want := &Explanation{Group: "big", Missing: 2, NodesEvaluated: 4, NodesFeasible: 0, Reasons: map[string]int{"cpu exhausted": 4}}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("Failed[big] = %+v, want %+v", e, want)
	}
}

func TestPartialPlacement(t *testing.T) {
	// Room for three copies in total: the fourth and fifth are missing.
	job := newJob("j", newGroup("g", 5, newTask("t", "wasm", 1500, 64)))
	ns := []*NodeState{newNode("a"), newNode("b", withUsed(2500, 0))}
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: ns})
	if len(plan.Place) != 3 {
		t.Fatalf("placed %d, want 3", len(plan.Place))
	}
	if e := plan.Failed["g"]; e == nil || e.Missing != 2 || e.Reasons["cpu exhausted"] != 2 {
		t.Fatalf("Failed[g] = %+v", e)
	}
	applyPlan(t, ns, plan, job)
}
