package sched

import "github.com/strata-run/strata/spec"

// Buckets a node falls in for a spread, besides the value buckets 0, 1, ...
const (
	bucketUnset  int32 = -1 // the node does not have the attribute
	bucketNoGoal int32 = -2 // targets are given, none for this value, no room left for others
	// bucketUnknown: not resolved yet (never stored in nodeBucket).
	bucketUnknown int32 = -3
)

// spreadScorer is one spread block applied to one group, with Nomad's
// SpreadIterator scoring. It counts the group's allocations per value of
// the attribute: the ones reconciliation keeps and the ones the plan
// places (Plan.Stop's are not counted).
//
// With targets, each value's desired count is percent × Count; when the
// targets add up to less than 100%, the values without a target share the
// rest (Nomad's implicit target "*"). A node scores
// (desired − (used+1)) / desired: positive while its value is under its
// target, negative above. Without targets the allocations should spread
// evenly over the values seen so far (Nomad's evenSpreadScoreBoost): a
// value not used yet scores 1, the least used value (max−min)/min, an
// even distribution −1, a value above the minimum (min−used)/min.
// A node without the attribute, or whose value has no target and no
// share of the rest, or whose target is 0%, scores −1.
//
// Each score is multiplied by the spread's weight over the sum of the
// weights of the group's spreads (job-level ones included). Nomad applies
// that factor to the targeted score only, and sums the weights over every
// group of the job evaluated so far; we weight every term by the group's
// own total, so one spread scores exactly as in Nomad and several combine
// as a weighted average.
type spreadScorer struct {
	attr   template
	weight float64

	targets  map[string]int32 // value -> bucket; nil: even spread
	desired  []float64        // desired count per target bucket
	implicit int32            // bucket of values without a target, or bucketNoGoal

	values map[string]int32 // even spread: value -> bucket, as values are seen
	counts []int32          // allocations of the group per bucket

	// nodeBucket caches each node's bucket + 3 (0: not resolved yet),
	// allocated for the cluster's nodes on first use.
	nodeBucket []int32
	nodes      int

	// Even spread: buckets in use, and min and max of their counts.
	observed int
	lo, hi   int32
	stale    bool
}

// newSpreadScorers builds the group's then the job's spreads (Nomad's
// order), for a group of count copies.
func newSpreadScorers(job *spec.Job, g *spec.Group) []*spreadScorer {
	var all []*spec.Spread
	for _, ss := range [][]*spec.Spread{g.Spreads, job.Spreads} {
		for _, s := range ss {
			if s != nil && s.Weight > 0 {
				all = append(all, s)
			}
		}
	}
	total := 0
	for _, s := range all {
		total += s.Weight
	}
	out := make([]*spreadScorer, 0, len(all))
	for _, s := range all {
		out = append(out, newSpreadScorer(s, g.Count, float64(s.Weight)/float64(total)))
	}
	return out
}

func newSpreadScorer(s *spec.Spread, count int, weight float64) *spreadScorer {
	sc := &spreadScorer{attr: parseTemplate(s.Attribute), weight: weight, implicit: bucketNoGoal}
	if len(s.Targets) == 0 {
		sc.values = make(map[string]int32)
		return sc
	}
	sc.targets = make(map[string]int32, len(s.Targets)+1)
	sum := 0.0
	for _, t := range s.Targets {
		if t == nil {
			continue
		}
		if _, dup := sc.targets[t.Value]; dup {
			continue
		}
		desired := float64(t.Percent) / 100 * float64(count)
		sc.targets[t.Value] = int32(len(sc.desired))
		sc.desired = append(sc.desired, desired)
		sum += desired
	}
	if sum > 0 && sum < float64(count) {
		sc.implicit = int32(len(sc.desired))
		sc.desired = append(sc.desired, float64(count)-sum)
	}
	sc.counts = make([]int32, len(sc.desired))
	return sc
}

// bucketOf returns node i's bucket, resolving its attribute once.
func (s *spreadScorer) bucketOf(i int, n *Node) int32 {
	if s.nodeBucket == nil {
		s.nodeBucket = make([]int32, s.nodes)
	}
	if c := s.nodeBucket[i]; c != 0 {
		return c - 3
	}
	b := s.bucket(s.attr.resolve(n))
	s.nodeBucket[i] = b + 3
	return b
}

// setBucket records node i's bucket when known (from its computed class).
func (s *spreadScorer) setBucket(i int, b int32) {
	if b == bucketUnknown {
		return
	}
	if s.nodeBucket == nil {
		s.nodeBucket = make([]int32, s.nodes)
	}
	s.nodeBucket[i] = b + 3
}

func (s *spreadScorer) bucket(v string, ok bool) int32 {
	switch {
	case !ok:
		return bucketUnset
	case s.targets != nil:
		if b, ok := s.targets[v]; ok {
			return b
		}
		return s.implicit
	}
	b, seen := s.values[v]
	if !seen {
		b = int32(len(s.counts))
		s.values[v] = b
		s.counts = append(s.counts, 0)
	}
	return b
}

// add counts one more allocation of the group in bucket b.
func (s *spreadScorer) add(b int32) {
	if b < 0 {
		return
	}
	s.counts[b]++
	if s.counts[b] == 1 {
		s.observed++
	}
	s.stale = true
}

// score is the spread's weighted score for placing one more copy in
// bucket b.
func (s *spreadScorer) score(b int32) float64 {
	if b < 0 {
		return -s.weight
	}
	if s.targets != nil {
		desired := s.desired[b]
		if desired == 0 {
			// Nomad gives the lowest boost seen so far, at most −1.
			return -s.weight
		}
		return (desired - float64(s.counts[b]+1)) / desired * s.weight
	}
	return s.evenBoost(s.counts[b]) * s.weight
}

// evenBoost is Nomad's evenSpreadScoreBoost for a value used cur times,
// over the values in use.
func (s *spreadScorer) evenBoost(cur int32) float64 {
	if s.observed == 0 {
		return 0
	}
	lo, hi := s.minMax()
	switch {
	case cur != lo:
		return float64(lo-cur) / float64(lo)
	case lo == hi:
		return -1
	}
	return float64(hi-lo) / float64(lo)
}

// minMax returns the least and greatest count of the buckets in use.
func (s *spreadScorer) minMax() (int32, int32) {
	if s.stale {
		s.lo, s.hi = 0, 0
		for _, c := range s.counts {
			if c == 0 {
				continue
			}
			if s.lo == 0 || c < s.lo {
				s.lo = c
			}
			s.hi = max(s.hi, c)
		}
		s.stale = false
	}
	return s.lo, s.hi
}
