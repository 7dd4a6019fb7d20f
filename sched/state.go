package sched

import (
	"encoding/binary"
	"github.com/google/uuid"
	"math/rand/v2"
	"slices"
)

// nodeDelta is the copy-on-write overlay of one node touched by the plan:
// what the plan's placements add and its stops release, on top of the
// caller's NodeState, which is never modified. A nil *nodeDelta is an
// untouched node.
type nodeDelta struct {
	used  Resources // placed minus stopped in this plan
	added []int     // ports assigned by this plan's placements
	freed []int     // ports released by this plan's stops
	// collisions[g] counts the job's allocations of group g on the node:
	// the ones kept by reconciliation plus the ones placed by this plan.
	collisions []int32
}

func (d *nodeDelta) usedDelta() Resources {
	if d == nil {
		return Resources{}
	}
	return d.used
}

func (d *nodeDelta) collisionsOf(group int) int {
	if d == nil || group >= len(d.collisions) {
		return 0
	}
	return int(d.collisions[group])
}

// jobCollisions counts the job's allocations on the node, every group.
func (d *nodeDelta) jobCollisions() int {
	if d == nil {
		return 0
	}
	n := 0
	for _, c := range d.collisions {
		n += int(c)
	}
	return n
}

// overlay holds the deltas of the nodes the plan touches, by index in
// Request.Nodes, so the placement loop never hashes a node ID.
type overlay struct {
	deltas  []*nodeDelta // allocated on the first touch
	nNodes  int
	nGroups int
}

func newOverlay(nNodes, nGroups int) overlay {
	return overlay{nNodes: nNodes, nGroups: nGroups}
}

func (o *overlay) get(node int) *nodeDelta {
	if o.deltas == nil {
		return nil
	}
	return o.deltas[node]
}

func (o *overlay) touch(node int) *nodeDelta {
	if o.deltas == nil {
		o.deltas = make([]*nodeDelta, o.nNodes)
	}
	d := o.deltas[node]
	if d == nil {
		d = &nodeDelta{}
		o.deltas[node] = d
	}
	return d
}

// release credits a stopped allocation's resources and ports to its node.
func (o *overlay) release(node int, a *Allocation) {
	d := o.touch(node)
	d.used = d.used.Add(Resources{CPU: -a.Resources.CPU, MemoryMB: -a.Resources.MemoryMB})
	for _, p := range a.Ports {
		d.freed = append(d.freed, p.Value)
	}
}

// occupy records an allocation of group g that stays on, or is placed on,
// the node: it counts for job anti-affinity.
func (o *overlay) occupy(node, g int) *nodeDelta {
	d := o.touch(node)
	if d.collisions == nil {
		d.collisions = make([]int32, o.nGroups)
	}
	d.collisions[g]++
	return d
}

// portInUse reports whether port p is taken on the node once the plan so
// far is applied.
func portInUse(ns *NodeState, d *nodeDelta, p int) bool {
	if d == nil {
		return ns.UsedPorts[p]
	}
	if slices.Contains(d.added, p) {
		return true
	}
	return ns.UsedPorts[p] && !slices.Contains(d.freed, p)
}

// dynamicPortsAvailable reports whether at least need ports of the dynamic
// range are free on the node once the plan so far is applied. It counts
// exactly only when the cheap upper bound on ports in use says it might not.
func dynamicPortsAvailable(ns *NodeState, d *nodeDelta, need int) bool {
	var added, freed []int
	if d != nil {
		added, freed = d.added, d.freed
	}
	if dynamicPortCount-len(ns.UsedPorts)-len(added) >= need {
		return true
	}
	inUse := 0
	for p, used := range ns.UsedPorts {
		if used && inDynamicRange(p) && !slices.Contains(freed, p) {
			inUse++
		}
	}
	for _, p := range added { // disjoint from the ports above: added only if free
		if inDynamicRange(p) {
			inUse++
		}
	}
	return dynamicPortCount-inUse >= need
}

func inDynamicRange(p int) bool { return p >= MinDynamicPort && p <= MaxDynamicPort }

// newRNG seeds a PCG generator from the FNV-64a hash of the evaluation ID:
// the only source of randomness in the package.
func newRNG(evalID string, attempt uint64) *rand.Rand {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(evalID); i++ {
		h ^= uint64(evalID[i])
		h *= prime64
	}
	return rand.New(rand.NewPCG(h, h^0x9e3779b97f4a7c15^(attempt*prime64)))
}

// lazyPerm is a Fisher–Yates shuffle of 0..n-1 performed lazily: a
// position is drawn the first time it is visited, so a Schedule call that
// looks at a few dozen nodes pays for a few dozen draws, not n. next
// walks the permutation cyclically, like Nomad's StaticIterator, so each
// placement continues where the previous one stopped.
type lazyPerm struct {
	idx    []int32
	drawn  int // positions [0, drawn) are final
	pos    int
	random *rand.Rand
}

func newLazyPerm(n int, r *rand.Rand) lazyPerm {
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	return lazyPerm{idx: idx, random: r}
}

func (l *lazyPerm) next() int {
	if l.pos == len(l.idx) {
		l.pos = 0
	}
	if l.pos == l.drawn {
		j := l.pos + l.random.IntN(len(l.idx)-l.pos)
		l.idx[l.pos], l.idx[j] = l.idx[j], l.idx[l.pos]
		l.drawn++
	}
	v := l.idx[l.pos]
	l.pos++
	return int(v)
}

// newUUID formats 128 bits from r as a version 4 UUID.
func newUUID(r *rand.Rand) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], r.Uint64())
	binary.BigEndian.PutUint64(b[8:], r.Uint64())
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return uuid.UUID(b).String()
}
