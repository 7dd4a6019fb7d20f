package sched

import (
	"fmt"
	"maps"
	"math"
	"testing"

	"github.com/strata-run/strata/spec"
)

func TestAffinityScore(t *testing.T) {
	aff := func(attr, op, value string, w int) *spec.Affinity {
		return &spec.Affinity{Attribute: attr, Operator: op, Value: value, Weight: w}
	}
	linux := aff("${attr.kernel.name}", "=", "linux", 50)
	windows := aff("${attr.kernel.name}", "=", "windows", 50)
	tests := []struct {
		name     string
		job, grp []*spec.Affinity
		want     float64
	}{
		{"none", nil, nil, 0},
		{"one match", nil, []*spec.Affinity{linux}, 1},
		{"one miss", nil, []*spec.Affinity{windows}, 0},
		{"half", []*spec.Affinity{linux}, []*spec.Affinity{windows}, 0.5},
		{"negative match", nil, []*spec.Affinity{aff("${meta.rack}", "=", "r1", -50)}, -1},
		{"negative miss", nil, []*spec.Affinity{aff("${meta.rack}", "=", "r2", -50)}, 0},
		{"mixed", []*spec.Affinity{aff("${meta.rack}", "=", "r1", 100)}, []*spec.Affinity{aff("${node.class}", "=", "edge", -50)}, 50.0 / 150},
		{"weights", nil, []*spec.Affinity{aff("${attr.cpu.numcores}", ">=", "4", 30), aff("${attr.driver.docker.version}", "version", ">= 25", 70)}, 0.3},
		{"set_contains_any", nil, []*spec.Affinity{aff("${attr.cpu.features}", "set_contains_any", "neon,avx2", 10)}, 1},
	}
	n := attrNode("n1").Node
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := newJob("j", newGroup("g", 1, newTask("t", "wasm", 1, 1)))
			job.Affinities, job.Groups[0].Affinities = tt.job, tt.grp
			asks, err := newGroupAsks(job)
			if err != nil {
				t.Fatal(err)
			}
			if got := affinityScore(n, asks[0], nil); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("affinityScore = %v, want %v", got, tt.want)
			}
		})
	}
}

// rackCluster is perRack nodes in each of racks r1..rN (meta.rack).
func rackCluster(racks, perRack int) []*NodeState {
	ns := nodes(racks * perRack)
	for i, n := range ns {
		n.Node.Meta = map[string]string{"rack": fmt.Sprintf("r%d", i%racks+1)}
	}
	return ns
}

func perRack(ns []*NodeState, placed []*Allocation) map[string]int {
	rack := map[string]string{}
	for _, n := range ns {
		rack[n.Node.ID] = n.Node.Meta["rack"]
	}
	out := map[string]int{}
	for _, a := range placed {
		out[rack[a.NodeID]]++
	}
	return out
}

func TestAffinityPlacement(t *testing.T) {
	for _, tt := range []struct {
		weight int
		want   map[string]int
	}{
		{100, map[string]int{"r2": 4}},           // preferred
		{-100, map[string]int{"r1": 2, "r3": 2}}, // avoided
	} {
		for _, eval := range []string{"a", "b", "c"} {
			ns := rackCluster(3, 4)
			g := newGroup("g", 4, newTask("t", "wasm", 100, 64))
			g.Affinities = []*spec.Affinity{{Attribute: "${meta.rack}", Operator: "=", Value: "r2", Weight: tt.weight}}
			plan := mustSchedule(t, &Request{EvalID: eval, Job: newJob("j", g), Nodes: ns})
			got := perRack(ns, plan.Place)
			if tt.weight > 0 && !maps.Equal(got, tt.want) || tt.weight < 0 && got["r2"] != 0 {
				t.Fatalf("weight %d eval %s: per rack %v, want %v", tt.weight, eval, got, tt.want)
			}
		}
	}
}

func TestSpreadScorer(t *testing.T) {
	target := func(v string, p int) *spec.SpreadTarget { return &spec.SpreadTarget{Value: v, Percent: p} }
	// scorer builds a spread over meta.rack for count copies with the
	// given counts already placed per value.
	scorer := func(count int, targets []*spec.SpreadTarget, placed map[string]int) *spreadScorer {
		s := newSpreadScorer(&spec.Spread{Attribute: "${meta.rack}", Weight: 50, Targets: targets}, count, 1)
		for _, v := range []string{"a", "b", "c", "d"} { // deterministic bucket order
			for range placed[v] {
				s.add(s.bucket(v, true))
			}
		}
		return s
	}
	tests := []struct {
		name    string
		count   int
		targets []*spec.SpreadTarget
		placed  map[string]int
		value   string // "" : the node lacks the attribute
		want    float64
	}{
		// With targets: (desired − (used+1)) / desired.
		{"under target", 10, []*spec.SpreadTarget{target("a", 50), target("b", 30)}, map[string]int{"a": 2}, "a", (5.0 - 3) / 5},
		{"at target", 10, []*spec.SpreadTarget{target("a", 50), target("b", 30)}, map[string]int{"b": 3}, "b", (3.0 - 4) / 3},
		{"implicit target takes the rest", 10, []*spec.SpreadTarget{target("a", 50), target("b", 30)}, map[string]int{"c": 1}, "d", (2.0 - 2) / 2},
		{"no room for other values", 10, []*spec.SpreadTarget{target("a", 60), target("b", 40)}, nil, "c", -1},
		{"zero percent", 10, []*spec.SpreadTarget{target("a", 0), target("b", 50)}, nil, "a", -1},
		{"missing attribute", 10, []*spec.SpreadTarget{target("a", 100)}, nil, "", -1},
		// Without targets: Nomad's even spread over the values in use.
		{"even: nothing placed", 9, nil, nil, "a", 0},
		{"even: new value", 9, nil, map[string]int{"a": 1}, "b", 1},
		{"even: even distribution", 9, nil, map[string]int{"a": 1, "b": 1}, "a", -1},
		{"even: least used", 9, nil, map[string]int{"a": 2, "b": 1}, "b", 1},
		{"even: above the minimum", 9, nil, map[string]int{"a": 3, "b": 1}, "a", -2},
		{"even: least used by far", 9, nil, map[string]int{"a": 1, "b": 5}, "a", 4}, // Nomad's boost exceeds 1
		{"even: missing attribute", 9, nil, map[string]int{"a": 1}, "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := scorer(tt.count, tt.targets, tt.placed)
			if got := s.score(s.bucket(tt.value, tt.value != "")); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("score = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSpreadWeights(t *testing.T) {
	job := newJob("j", newGroup("g", 4, newTask("t", "wasm", 1, 1)))
	job.Spreads = []*spec.Spread{{Attribute: "${meta.rack}", Weight: 75}}
	job.Groups[0].Spreads = []*spec.Spread{{Attribute: "${node.datacenter}", Weight: 25,
		Targets: []*spec.SpreadTarget{{Value: "dc1", Percent: 100}}}}
	asks, err := newGroupAsks(job)
	if err != nil {
		t.Fatal(err)
	}
	p := newPlacer(&Request{EvalID: "e", Job: job, Nodes: rackCluster(2, 1)}, asks)
	g := asks[0]
	// Group spreads come first: dc1 100% of 4 with nothing placed scores
	// (4−1)/4 at weight 1/4; the rack spread has seen nothing: 0.
	if got, want := spreadScore(0, p.nodes[0].Node, g), 0.25*0.75; math.Abs(got-want) > 1e-12 {
		t.Fatalf("spreadScore = %v, want %v", got, want)
	}
	p.occupy(0, g) // one copy on r1 in dc1
	// Node 1 (r2, dc1): dc1 (4−2)/4 · 1/4, rack r2 unused: 1 · 3/4.
	if got, want := spreadScore(1, p.nodes[1].Node, g), 0.5*0.25+0.75; math.Abs(got-want) > 1e-12 {
		t.Fatalf("spreadScore = %v, want %v", got, want)
	}
}

func TestSpreadPlacement(t *testing.T) {
	t.Run("targets", func(t *testing.T) {
		for _, eval := range []string{"a", "b", "c"} {
			ns := nodes(20)
			for i, n := range ns {
				n.Node.Datacenter = []string{"dc1", "dc2"}[i%2]
			}
			g := newGroup("g", 10, newTask("t", "wasm", 100, 64))
			g.Spreads = []*spec.Spread{{Attribute: "${node.datacenter}", Weight: 100,
				Targets: []*spec.SpreadTarget{{Value: "dc1", Percent: 70}, {Value: "dc2", Percent: 30}}}}
			plan := mustSchedule(t, &Request{EvalID: eval, Job: newJob("j", g), Nodes: ns})
			dc := map[string]int{}
			for _, a := range plan.Place {
				var i int
				fmtSscanf(a.NodeID, &i)
				dc[ns[i].Node.Datacenter]++
			}
			if want := map[string]int{"dc1": 7, "dc2": 3}; !maps.Equal(dc, want) {
				t.Fatalf("eval %s: per datacenter %v, want %v", eval, dc, want)
			}
		}
	})
	t.Run("even", func(t *testing.T) {
		for _, eval := range []string{"a", "b", "c"} {
			ns := rackCluster(3, 5)
			g := newGroup("g", 9, newTask("t", "wasm", 100, 64))
			g.Spreads = []*spec.Spread{{Attribute: "${meta.rack}", Weight: 100}}
			plan := mustSchedule(t, &Request{EvalID: eval, Job: newJob("j", g), Nodes: ns})
			if got, want := perRack(ns, plan.Place), map[string]int{"r1": 3, "r2": 3, "r3": 3}; !maps.Equal(got, want) {
				t.Fatalf("eval %s: per rack %v, want %v", eval, got, want)
			}
		}
	})
	t.Run("kept allocations count, stopped ones do not", func(t *testing.T) {
		ns := rackCluster(3, 5)
		// Three copies of version 1 on r1 (nodes 0, 3, 6): index 0 and 1
		// are kept, index 2 belongs to a removed group and stops.
		var old []*Allocation
		for i, node := range []string{"n000", "n003"} {
			old = append(old, existing(fmt.Sprint("k", i), "j", "g", i, 1, node))
		}
		old = append(old, existing("gone", "j", "old", 0, 1, "n006"))
		g := newGroup("g", 6, newTask("t", "wasm", 100, 64))
		g.Spreads = []*spec.Spread{{Attribute: "${meta.rack}", Weight: 100}}
		plan := mustSchedule(t, &Request{EvalID: "e", Job: newJob("j", g), JobVersion: 1, Nodes: ns, Existing: old})
		if got, want := perRack(ns, plan.Place), map[string]int{"r2": 2, "r3": 2}; !maps.Equal(got, want) {
			t.Fatalf("per rack %v, want %v (stops %d)", got, want, len(plan.Stop))
		}
	})
}

func TestGroupLimit(t *testing.T) {
	g := func(count int, withSpread bool) *groupAsk {
		grp := newGroup("g", count)
		if withSpread {
			grp.Spreads = []*spec.Spread{{Attribute: "${meta.rack}", Weight: 50}}
		}
		asks, err := newGroupAsks(newJob("j", grp))
		if err != nil {
			t.Fatal(err)
		}
		return asks[0]
	}
	for _, tt := range []struct {
		ask   *groupAsk
		nodes int
		want  int
	}{
		{g(10, false), 5000, 13},
		{g(10, true), 5000, 100},
		{g(500, true), 5000, 500},
	} {
		if got := groupLimit(tt.ask, tt.nodes); got != tt.want {
			t.Errorf("groupLimit(count %d, spreads %d, %d nodes) = %d, want %d", tt.ask.group.Count, len(tt.ask.spreads), tt.nodes, got, tt.want)
		}
	}
}
