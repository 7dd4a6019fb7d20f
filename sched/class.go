package sched

import (
	"strconv"
	"strings"
)

// Computed node classes, as in Nomad: nodes that agree on everything a
// constraint or an affinity can read, except values unique to a node
// (ID, name, attr.unique.*, meta.unique.*), pass and fail the same
// checks, so a Schedule call checks one node per class and reuses the
// answer for the others. Constraints and affinities that read unique
// values are checked on every node instead (see groupAsk.perNode).
//
// The class is computed when a node registers or changes, not in
// Schedule: hashing a fingerprint of a few dozen attributes costs more
// than the handful of constraint lookups it saves, and with affinities or
// spreads a placement visits at least 100 nodes (measured: computing it
// per call made BenchmarkScheduleConstrained spend 43% of its time
// hashing). A node without a ComputedClass is checked on its own.

// ComputeClass returns n's computed class, to be stored in
// Node.ComputedClass whenever the node registers or its datacenter,
// class, drivers, attributes or meta change: a hash of those, leaving out
// attribute and meta keys with the "unique." prefix. Map order does not
// matter. A stale ComputedClass can make Schedule misjudge a node; a
// Checker never reads it, so the plan applier still refuses a placement
// on a node that does not satisfy the constraints.
func ComputeClass(n *Node) string {
	if n == nil {
		return ""
	}
	return "v1:" + strconv.FormatUint(computeClass(n), 16)
}

// computeClass hashes a node's datacenter, class, drivers with their
// health, attributes and meta, leaving out keys with the "unique." prefix:
// entries are hashed one by one and the hashes summed.
func computeClass(n *Node) uint64 {
	h := fnvString(fnvString(fnvOffset, n.Datacenter), n.Class)
	var sum uint64
	for d, healthy := range n.Drivers {
		e := fnvString(fnvByte(fnvOffset, 'd'), d)
		if healthy {
			e = fnvByte(e, 1)
		}
		sum += mix64(e)
	}
	for _, m := range [2]struct {
		tag byte
		kv  map[string]string
	}{{'a', n.Attributes}, {'m', n.Meta}} {
		for k, v := range m.kv {
			if strings.HasPrefix(k, uniquePrefix) {
				continue
			}
			sum += mix64(fnvString(fnvString(fnvByte(fnvOffset, m.tag), k), v))
		}
	}
	return mix64(h) + sum
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime }

// fnvString hashes s then a terminator, so that ("ab", "c") and ("a",
// "bc") differ.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return fnvByte(h, 0xff) // 0xff never occurs in UTF-8
}

// mix64 is splitmix64's finaliser: it spreads FNV's weak high bits
// before the entries are summed.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
