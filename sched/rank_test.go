package sched

import (
	"math"
	"testing"
)

func TestScoreFitBinPack(t *testing.T) {
	// Expected values computed independently from Nomad's formula
	// 20 − (10^freeCpu + 10^freeMem), clamped to [0, 18].
	capacity := Resources{CPU: 4000, MemoryMB: 8192}
	tests := []struct {
		name     string
		capacity Resources
		util     Resources
		want     float64
	}{
		{"empty", capacity, Resources{}, 0},
		{"half", capacity, Resources{CPU: 2000, MemoryMB: 4096}, 20 - 2*math.Sqrt(10)}, // 13.675…
		{"quarter cpu three quarters mem", capacity, Resources{CPU: 1000, MemoryMB: 6144}, 12.598307338057586},
		{"cpu 10% mem 40%", Resources{CPU: 1000, MemoryMB: 1000}, Resources{CPU: 100, MemoryMB: 400}, 8.075645947222212},
		{"full", capacity, capacity, 18},
		{"overcommitted is clamped", capacity, Resources{CPU: 8000, MemoryMB: 16384}, 18},
		{"no capacity counts as full", Resources{}, Resources{}, 18},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scoreFitBinPack(tt.capacity, tt.util)
			if math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("score = %.15f, want %.15f", got, tt.want)
			}
		})
	}
}

func TestJobAntiAffinity(t *testing.T) {
	tests := []struct {
		collisions, count int
		want              float64
		ok                bool
	}{
		{0, 3, 0, false},
		{1, 3, -2.0 / 3, true},
		{2, 3, -1, true},
		{4, 10, -0.5, true},
	}
	for _, tt := range tests {
		got, ok := jobAntiAffinity(tt.collisions, tt.count)
		if ok != tt.ok || math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("jobAntiAffinity(%d, %d) = %v, %v; want %v, %v", tt.collisions, tt.count, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFinalScoreAveragesLikeNomad(t *testing.T) {
	ns := newNode("n1", withUsed(1500, 3584)) // + 500/512 ask = half full
	g := &groupAsk{index: 0, group: newGroup("g", 4), res: Resources{CPU: 500, MemoryMB: 512}}
	fit := (20 - 2*math.Sqrt(10)) / 18
	finalScore := func(ns *NodeState, d *nodeDelta, g *groupAsk) float64 {
		sum, n := baseScore(ns, d, g)
		return sum / n
	}
	if got := finalScore(ns, nil, g); math.Abs(got-fit) > 1e-12 {
		t.Fatalf("no collision: score %v, want binpack only %v", got, fit)
	}
	d := &nodeDelta{collisions: []int32{1}}
	want := (fit + -2.0/4) / 2
	if got := finalScore(ns, d, g); math.Abs(got-want) > 1e-12 {
		t.Fatalf("one collision: score %v, want %v", got, want)
	}
}

func TestFullerNodePreferred(t *testing.T) {
	for _, order := range [][2]int{{0, 1}, {1, 0}} {
		ns := []*NodeState{newNode("empty"), newNode("busy", withUsed(2000, 4096))}
		ns[0], ns[1] = ns[order[0]], ns[order[1]]
		job := newJob("j", newGroup("g", 1, newTask("t", "wasm", 500, 512)))
		plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: ns})
		if len(plan.Place) != 1 || plan.Place[0].NodeID != "busy" {
			t.Fatalf("order %v: placed on %v, want busy", order, plan.Place)
		}
	}
}

func TestAntiAffinitySpreadsCopies(t *testing.T) {
	// Bin-packing alone would stack every copy on one node (each copy
	// makes it fuller); anti-affinity spreads them.
	for _, n := range []int{3, 5, 8} {
		job := newJob("j", newGroup("g", n, newTask("t", "wasm", 100, 128)))
		plan := mustSchedule(t, &Request{EvalID: "spread", Job: job, Nodes: nodes(n)})
		perNode := map[string]int{}
		for _, a := range plan.Place {
			perNode[a.NodeID]++
		}
		if len(plan.Place) != n || len(perNode) != n {
			t.Fatalf("%d copies on %d nodes: per node %v, want one each", len(plan.Place), n, perNode)
		}
	}
}

func TestAntiAffinityCountsKeptAllocations(t *testing.T) {
	// n000 already runs copy 0; copy 1 goes elsewhere even though n000 is fuller.
	ns := nodes(2)
	ns[0].Used = Resources{CPU: 100, MemoryMB: 128}
	job := newJob("j", newGroup("g", 2, newTask("t", "wasm", 100, 128)))
	old := existing("a0", "j", "g", 0, 1, ns[0].Node.ID)
	old.Resources = Resources{CPU: 100, MemoryMB: 128}
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, JobVersion: 1, Nodes: ns, Existing: []*Allocation{old}})
	if len(plan.Place) != 1 || plan.Place[0].NodeID != ns[1].Node.ID || plan.Place[0].Index != 1 {
		t.Fatalf("placed %+v, want index 1 on %s", plan.Place, ns[1].Node.ID)
	}
}

func TestLimitFor(t *testing.T) {
	for n, want := range map[int]int{0: 2, 1: 2, 2: 2, 4: 2, 5: 3, 1000: 10, 1024: 10, 1025: 11, 5000: 13, 10000: 14} {
		if got := limitFor(n); got != want {
			t.Errorf("limitFor(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestLimitVisitsFewNodes(t *testing.T) {
	// 1024 identical feasible nodes: one placement ranks log2(1024) = 10.
	job := newJob("j", newGroup("g", 1, newTask("t", "wasm", 100, 128)))
	req := &Request{EvalID: "e", Job: job, Nodes: nodes(1024)}
	asks, err := newGroupAsks(job)
	if err != nil {
		t.Fatal(err)
	}
	p := newPlacer(req, asks)
	p.perm = newLazyPerm(len(p.nodes), p.rng)
	sel := p.selectNode(asks[0])
	if !sel.found || sel.evaluated != 10 || sel.feasible != 10 {
		t.Fatalf("selection %+v, want 10 nodes evaluated", sel)
	}
}
