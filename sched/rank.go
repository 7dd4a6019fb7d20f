package sched

import "math"

// Ranking constants, as in Nomad's scheduler.
const (
	// binPackingMaxFitScore is the best raw BestFit v3 score; dividing by
	// it normalises the score to [0, 1].
	binPackingMaxFitScore = 18.0

	// skipScoreThreshold and maxSkip: the limit stage sets aside up to
	// maxSkip feasible nodes whose score is at most the threshold (nodes
	// penalised by anti-affinity) and returns them only when the node list
	// runs out before the limit is reached.
	skipScoreThreshold = 0.0
	maxSkip            = 3
)

// scoreFitBinPack is Nomad's BestFit v3 (structs.ScoreFitBinPack): with
// util the node's usage after placing, score = 20 − (10^freeCpu + 10^freeMem),
// clamped to [0, 18]. Fuller nodes score higher.
func scoreFitBinPack(capacity, util Resources) float64 {
	freeCPU := freeFraction(capacity.CPU, util.CPU)
	freeMem := freeFraction(capacity.MemoryMB, util.MemoryMB)
	score := 20.0 - (pow10(freeCPU) + pow10(freeMem))
	return min(max(score, 0), binPackingMaxFitScore)
}

// pow10 is 10^x as exp(x·ln 10): within 1e-15 (relative) of Nomad's
// math.Pow(10, x) on [0, 1] and several times faster (≈24 ns against
// ≈110 ns here), which matters at two calls per node ranked.
func pow10(x float64) float64 { return math.Exp(x * math.Ln10) }

// freeFraction is 1 − used/capacity; a dimension with no capacity counts
// as full rather than dividing by zero.
func freeFraction(capacity, used int) float64 {
	if capacity <= 0 {
		return 0
	}
	return 1 - float64(used)/float64(capacity)
}

// jobAntiAffinity is Nomad's JobAntiAffinityIterator penalty for a node
// already running collisions copies of the group: −(collisions+1)/count,
// and no score at all (not a zero score) when there is no collision.
func jobAntiAffinity(collisions, count int) (float64, bool) {
	if collisions == 0 || count <= 0 {
		return 0, false
	}
	return -float64(collisions+1) / float64(count), true
}

// finalScore averages the scores that apply, as Nomad's
// ScoreNormalizationIterator does: normalised bin-packing always, job
// anti-affinity when the node already runs copies of the group, then the
// node's affinity score and the spread score when they are not zero
// (Nomad appends those only when non-zero, so a neutral affinity or
// spread does not dilute the others).
func (p *placer) finalScore(i int, ns *NodeState, d *nodeDelta, g *groupAsk) float64 {
	sum, n := baseScore(ns, d, g)
	if g.affinity != nil {
		if a := g.affinity[i]; a != 0 {
			sum, n = sum+a, n+1
		}
	}
	if len(g.spreads) > 0 {
		if s := spreadScore(i, ns.Node, g); s != 0 {
			sum, n = sum+s, n+1
		}
	}
	return sum / n
}

// baseScore is the sum and number of the scores every placement has:
// normalised bin-packing, and anti-affinity when it applies.
func baseScore(ns *NodeState, d *nodeDelta, g *groupAsk) (sum, n float64) {
	util := ns.Used.Add(d.usedDelta()).Add(g.res)
	sum, n = scoreFitBinPack(ns.Node.Capacity, util)/binPackingMaxFitScore, 1
	if penalty, ok := jobAntiAffinity(d.collisionsOf(g.index), g.group.Count); ok {
		sum, n = sum+penalty, n+1
	}
	return sum, n
}

// affinityScore is Nomad's NodeAffinityIterator score: the weights of the
// affinities the node matches, summed, over the sum of all their absolute
// weights, in [−1, 1].
func affinityScore(n *Node, g *groupAsk, cc *compileCache) float64 {
	if g.affinitySum == 0 {
		return 0
	}
	total := 0.0
	for k := range g.affinities {
		if a := &g.affinities[k]; a.matches(n, cc) {
			total += a.weight
		}
	}
	return total / g.affinitySum
}

// spreadScore sums the group's spreads' weighted scores for node i.
func spreadScore(i int, n *Node, g *groupAsk) float64 {
	total := 0.0
	for _, s := range g.spreads {
		total += s.score(s.bucketOf(i, n))
	}
	return total
}

// limitFor is how many feasible nodes a placement ranks: Nomad's
// max(2, ceil(log2(n))) for service jobs.
func limitFor(nodes int) int {
	if nodes <= 0 {
		return 2
	}
	return max(2, int(math.Ceil(math.Log2(float64(nodes)))))
}

// affinitySpreadLimit is Nomad's limit for a group with affinities or
// spreads: at least 100 feasible nodes (Count when larger), since those
// scores only help if enough nodes are compared ("empirically
// determined" in Nomad's GenericStack.Select).
const affinitySpreadLimit = 100

// groupLimit is the limit for group g on a cluster of n nodes.
func groupLimit(g *groupAsk, n int) int {
	if len(g.affinities) > 0 || len(g.spreads) > 0 {
		return max(g.group.Count, affinitySpreadLimit)
	}
	return limitFor(n)
}

type candidate struct {
	node  int // index into placer.nodes
	delta *nodeDelta
	score float64
}

// selection is the outcome of one selectNode call.
type selection struct {
	best      candidate
	found     bool
	evaluated int // nodes visited
	feasible  int // nodes that passed feasibility
}

// selectNode walks the shuffled node list from where the previous call
// stopped, filters each node (feasibility), scores the feasible ones and
// returns the best of the first limit of them (Nomad's LimitIterator and
// MaxScoreIterator). Rejections are counted in p.rejected. Equal scores
// keep the node seen first: the order is seeded, so ties break
// deterministically.
func (p *placer) selectNode(g *groupAsk) selection {
	clear(p.rejected)
	var (
		sel      selection
		skipped  [maxSkip]candidate
		nSkipped int
		returned int
	)
	consider := func(c candidate) {
		returned++
		if !sel.found || c.score > sel.best.score {
			sel.best, sel.found = c, true
		}
	}
	for sel.evaluated < len(p.nodes) && returned < g.limit {
		c, r := p.evaluate(p.perm.next(), g)
		sel.evaluated++
		if r != feasible {
			p.reject(r)
			continue
		}
		sel.feasible++
		if c.score <= skipScoreThreshold && nSkipped < maxSkip {
			skipped[nSkipped] = c
			nSkipped++
			continue
		}
		consider(c)
	}
	for _, c := range skipped[:nSkipped] {
		if returned == g.limit {
			break
		}
		consider(c)
	}
	return sel
}

// evaluate runs feasibility then ranking for node i.
func (p *placer) evaluate(i int, g *groupAsk) (candidate, reasonID) {
	if r := p.feasibility(i, g, g.res); r != feasible {
		return candidate{}, r
	}
	d := p.overlay.get(i)
	return candidate{node: i, delta: d, score: p.finalScore(i, p.nodes[i], d, g)}, feasible
}

func (p *placer) reject(r reasonID) {
	for int(r) >= len(p.rejected) {
		p.rejected = append(p.rejected, 0)
	}
	p.rejected[r]++
}
