package sched

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/strata-run/strata/spec"
)

var packingInstances = flag.Int("packing.instances", 3000,
	"random instances TestPackingAgainstBruteForce compares with an exhaustive search")

// Packing quality against an exhaustive search (issue 5, point 1).
//
// The measure. Placing k identical copies of a group, the scheduler scores
// each copy when it places it: BestFit v3 on the node's usage after the
// copy, normalised to [0, 1], averaged with the job anti-affinity penalty
// −m/k when the node already holds m−1 ≥ 1 copies (finalScore, without
// affinities or spreads). The packing's value is the sum of those scores
// over its copies. Both parts depend only on the node and how many copies
// it holds, so the value of a packing is Σ_nodes f_node(copies on it), and
// the best packing of the same number of copies is found by trying every
// vector of copies per node (at most C(16, 8) = 12,870 for 8 nodes and 8
// copies). This is the objective the scheduler's greedy steps maximise one
// copy at a time, so the gap measures exactly what the heuristic gives up:
// the greedy order (it never revisits a copy) and the limit stage (each
// copy is placed on the best of max(2, ⌈log2 n⌉) feasible nodes visited in
// a shuffled order, not the best of all).
//
// The properties asserted:
//
//  1. Exact, per instance: the scheduler places as many copies as the
//     search can (each node's room for identical copies does not depend
//     on the other nodes, and the scheduler walks the node list until it
//     finds a feasible node, so the limit stage never costs a placement).
//  2. Bounded, per instance: placing m copies, its value is at most
//     packingGapBound(m) = 0.5/√m per copy below the best value of m
//     copies: (best − chosen)/m ≤ 0.5/√m.
//  3. Bounded on average: over the instances of the test, the mean gap is
//     at most 0.005 per copy and at least 90% of the instances are optimal.
//
// The bounds were measured, not derived: for one copy the limit stage
// can pick the worse of two feasible nodes, so the only worst-case bound
// the algorithm gives is the score range (what it does guarantee, per
// copy, is a node at least as good as the limit-th best feasible one).
// Over 200,000 random instances (seeds 1..200,000 of
// randomPackingInstance: 1–8 nodes, 1–8 copies, random capacities, usage
// and asks, an eighth of the nodes excluded by a constraint, a fifth of
// the jobs with distinct_hosts): 95.5% optimal, mean gap 0.0024 per copy,
// 99th percentile 0.082; the largest gap was 0.452 for one copy (each of
// the ten largest was a single copy on 3–8 nodes whose best node was not
// among the two or three visited), 0.226 for 2 copies, 0.244 for 3, 0.153
// for 4, 0.133 for 5, 0.111 for 6, 0.084 for 7 and 0.051 for 8. Later
// copies see other nodes (the shuffled order is walked cyclically), so
// misses average out: 0.5/√m is above every measured maximum (0.354 for 2,
// 0.289 for 3, 0.177 for 8), with the least margin at one copy. Rerun the
// measurement with
//
//	go test -run PackingAgainstBruteForce -v ./sched/ -packing.instances 200000
//
// which logs the distribution (about 15 s).
func packingGapBound(copies int) float64 { return 0.5 / math.Sqrt(float64(copies)) }

const (
	packingMeanGapBound = 0.005
	packingMinOptimal   = 0.90
)

func TestPackingAgainstBruteForce(t *testing.T) {
	var gaps []float64
	optimal := 0
	for seed := 1; seed <= *packingInstances; seed++ {
		inst := randomPackingInstance(uint64(seed))
		req := &Request{EvalID: fmt.Sprintf("pack-%d", seed), Job: inst.job, Nodes: inst.nodes}
		plan := mustSchedule(t, req)
		checkPlan(t, req, plan)

		counts := make([]int, len(inst.nodes))
		for _, a := range plan.Place {
			counts[slices.IndexFunc(inst.nodes, func(ns *NodeState) bool { return ns.Node.ID == a.NodeID })]++
		}
		bestValue, bestPlaced := inst.bruteForce()
		if len(plan.Place) != bestPlaced {
			t.Fatalf("seed %d: placed %d copies, exhaustive search places %d", seed, len(plan.Place), bestPlaced)
		}
		if bestPlaced == 0 {
			continue
		}
		gap := (bestValue - inst.value(counts)) / float64(bestPlaced)
		if gap < -1e-9 {
			t.Fatalf("seed %d: the scheduler beat the exhaustive search (%v): the measure is wrong", seed, gap)
		}
		if bound := packingGapBound(bestPlaced); gap > bound {
			t.Fatalf("seed %d: packing value %.4f per copy below the best (bound %.4f for %d copies); counts %v",
				seed, gap, bound, bestPlaced, counts)
		}
		if gap < 1e-9 {
			optimal++
		}
		gaps = append(gaps, gap)
	}
	if len(gaps) == 0 {
		return
	}
	slices.Sort(gaps)
	sum := 0.0
	for _, g := range gaps {
		sum += g
	}
	mean, optimalShare := sum/float64(len(gaps)), float64(optimal)/float64(len(gaps))
	t.Logf("%d instances with placements: optimal %.1f%%, mean gap %.4f, p50 %.4f, p99 %.4f, max %.4f per copy",
		len(gaps), 100*optimalShare, mean, gaps[len(gaps)/2], gaps[len(gaps)*99/100], gaps[len(gaps)-1])
	if mean > packingMeanGapBound || optimalShare < packingMinOptimal {
		t.Fatalf("mean gap %.4f per copy (bound %v), %.1f%% optimal (bound %.0f%%)",
			mean, packingMeanGapBound, 100*optimalShare, 100*packingMinOptimal)
	}
}

// packingInstance is a cluster of at most 8 nodes and a job of one group
// of k identical copies.
type packingInstance struct {
	nodes []*NodeState
	job   *spec.Job
	ask   Resources
	k     int
}

func randomPackingInstance(seed uint64) packingInstance {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	inst := packingInstance{k: 1 + r.IntN(8)}
	inst.ask = Resources{CPU: 100 + r.IntN(1400), MemoryMB: 64 + r.IntN(2000)}
	for i := range 1 + r.IntN(8) {
		ns := newNode(fmt.Sprintf("n%d", i))
		ns.Node.Capacity = Resources{CPU: 1000 + r.IntN(7000), MemoryMB: 1024 + r.IntN(15000)}
		ns.Used = Resources{CPU: r.IntN(ns.Node.Capacity.CPU), MemoryMB: r.IntN(ns.Node.Capacity.MemoryMB)}
		ns.Node.Attributes = map[string]string{"kernel.name": "linux"}
		if r.IntN(8) == 0 {
			ns.Node.Attributes["kernel.name"] = "windows" // infeasible: constraint
		}
		inst.nodes = append(inst.nodes, ns)
	}
	g := newGroup("g", inst.k, newTask("t", "wasm", inst.ask.CPU, inst.ask.MemoryMB))
	g.Constraints = []*spec.Constraint{{Attribute: "${attr.kernel.name}", Operator: "=", Value: "linux"}}
	if r.IntN(5) == 0 {
		g.Constraints = append(g.Constraints, &spec.Constraint{Operator: "distinct_hosts"})
	}
	inst.job = newJob("pack", g)
	return inst
}

// room is how many copies node i can take.
func (in packingInstance) room(i int) int {
	ns := in.nodes[i]
	if ns.Node.Attributes["kernel.name"] != "linux" {
		return 0
	}
	free := Resources{CPU: ns.Node.Capacity.CPU - ns.Used.CPU, MemoryMB: ns.Node.Capacity.MemoryMB - ns.Used.MemoryMB}
	n := min(free.CPU/in.ask.CPU, free.MemoryMB/in.ask.MemoryMB)
	if len(in.job.Groups[0].Constraints) > 1 { // distinct_hosts
		n = min(n, 1)
	}
	return max(n, 0)
}

// nodeValue is f_node(c): the sum of the scores of c copies placed one by
// one on node i, as finalScore computes them.
func (in packingInstance) nodeValue(i, c int) float64 {
	ns := in.nodes[i]
	v := 0.0
	for m := 1; m <= c; m++ {
		util := ns.Used
		for range m {
			util = util.Add(in.ask)
		}
		sum, n := scoreFitBinPack(ns.Node.Capacity, util)/binPackingMaxFitScore, 1.0
		if p, ok := jobAntiAffinity(m-1, in.k); ok {
			sum, n = sum+p, n+1
		}
		v += sum / n
	}
	return v
}

func (in packingInstance) value(counts []int) float64 {
	v := 0.0
	for i, c := range counts {
		v += in.nodeValue(i, c)
	}
	return v
}

// bruteForce tries every vector of copies per node within each node's
// room and returns the best value among those placing the most copies.
func (in packingInstance) bruteForce() (best float64, placed int) {
	rooms := make([]int, len(in.nodes))
	total := 0
	for i := range rooms {
		rooms[i] = min(in.room(i), in.k)
		total += rooms[i]
	}
	placed = min(in.k, total)
	best = -1e18
	counts := make([]int, len(in.nodes))
	var walk func(i, left int)
	walk = func(i, left int) {
		if i == len(counts) {
			if left == 0 {
				best = max(best, in.value(counts))
			}
			return
		}
		for c := 0; c <= min(rooms[i], left); c++ {
			counts[i] = c
			walk(i+1, left-c)
		}
		counts[i] = 0
	}
	walk(0, placed)
	return best, placed
}
