package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// usageIndex is the scheduler's view of the cluster kept in memory: every
// node with what its non-terminal allocations hold. Values are immutable:
// Apply computes changes during a batch and publishes new values after
// the batch commits, so a scheduler's snapshot (a slice of pointers) never
// changes under it.
type usageIndex struct {
	mu       sync.RWMutex
	list     []*sched.NodeState  // every node, sorted by ID: snapshots are deterministic
	pos      map[string]int      // node ID -> its index in list
	draining map[string]bool     // nodes with a drain in progress
	live     int                 // allocations holding resources, cluster-wide
	changes  map[string]uint64   // node ID -> count of batches that wrote its allocations
	byNode   map[string]idList   // node ID -> IDs of every allocation placed on it
	statuses map[AllocStatus]int // allocations by status (counts.go)
}

// usageDelta is one batch's change to one node.
type usageDelta struct {
	node         *sched.Node // new node record, nil if unchanged
	drain        *bool       // drain started (true) or ended (false), nil if unchanged
	res          sched.Resources
	allocs       int      // change in allocations holding resources
	allocWritten bool     // an allocation on the node was written
	newAllocs    []string // allocations placed on the node
	delAllocs    []string // allocations deleted (garbage collected)
	// ports is each port's net change over the batch: +1 taken, -1
	// freed, 0 both (placed and stopped in the same batch: as it was).
	ports map[int]int
}

// holds reports whether an allocation holds resources on its node.
func holds(a *structs.Alloc) bool { return a != nil && !a.Terminal() }

// delta returns the batch's change to a node.
func (b *batch) delta(nodeID string) *usageDelta {
	if b.usage == nil {
		b.usage = map[string]*usageDelta{}
	}
	d := b.usage[nodeID]
	if d == nil {
		d = &usageDelta{}
		b.usage[nodeID] = d
	}
	return d
}

// allocChanged records an allocation's move between holding and not
// holding resources (before is nil for a new allocation).
func (b *batch) allocChanged(before, after *structs.Alloc) {
	was, is := holds(before), holds(after)
	if was == is {
		return
	}
	d := b.delta(after.NodeID)
	sign := 1
	if was {
		sign = -1
	}
	d.allocs += sign
	d.res.CPU += sign * after.Resources.CPU
	d.res.MemoryMB += sign * after.Resources.MemoryMB
	if len(after.Ports) > 0 && d.ports == nil {
		d.ports = map[int]int{}
	}
	for _, p := range after.Ports {
		d.ports[p.Value] += sign
	}
}

// nodeChanged records a node record written by the batch.
func (b *batch) nodeChanged(rec *structs.NodeRecord) {
	b.touchNode(rec)
	c := rec.Node
	d := b.delta(c.ID)
	d.node = &c
	draining := rec.Drain != nil
	d.drain = &draining
}

// publish applies a committed batch's deltas.
func (u *usageIndex) publish(deltas map[string]*usageDelta) {
	if len(deltas) == 0 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	added := false
	for id, d := range deltas {
		ns := &sched.NodeState{}
		pos, found := u.pos[id]
		if found {
			*ns = *u.list[pos]
		} else {
			pos, added = len(u.list), true
			u.pos[id] = pos
			u.list = append(u.list, nil)
		}
		if d.drain != nil {
			if *d.drain {
				u.draining[id] = true
			} else {
				delete(u.draining, id)
			}
		}
		if d.node != nil {
			ns.Node = d.node
		}
		if ns.Node == nil {
			// Allocations on a node never registered here (a test, or a
			// node removed later): track them under a placeholder.
			ns.Node = &sched.Node{ID: id, Status: sched.NodeDown}
		}
		ns.Used = ns.Used.Add(d.res)
		u.live += d.allocs
		if len(d.newAllocs) > 0 {
			l := u.byNode[id]
			for _, a := range d.newAllocs {
				l = l.add(a)
			}
			u.byNode[id] = l
		}
		if len(d.delAllocs) > 0 {
			drop := make(map[string]bool, len(d.delAllocs))
			for _, a := range d.delAllocs {
				drop[a] = true
			}
			u.byNode[id] = u.byNode[id].remove(drop)
		}
		if d.allocWritten {
			if u.changes == nil {
				u.changes = map[string]uint64{}
			}
			u.changes[id]++
		}
		if len(d.ports) > 0 || ns.UsedPorts == nil {
			ports := make(map[int]bool, len(ns.UsedPorts)+len(d.ports))
			maps.Copy(ports, ns.UsedPorts)
			for p, n := range d.ports {
				switch {
				case n > 0:
					ports[p] = true
				case n < 0:
					delete(ports, p)
				}
			}
			ns.UsedPorts = ports
		}
		u.list[pos] = ns
	}
	if added {
		u.sort()
	}
}

// sort orders list by node ID and renumbers pos.
func (u *usageIndex) sort() {
	slices.SortFunc(u.list, func(a, b *sched.NodeState) int { return strings.Compare(a.Node.ID, b.Node.ID) })
	for i, ns := range u.list {
		u.pos[ns.Node.ID] = i
	}
}

// nodeAllocs returns the IDs of every allocation placed on a node.
func (u *usageIndex) nodeAllocs(id string) []string {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.byNode[id].ids()
}

// allocsWithSuffix returns the IDs of the allocations, on any node, that
// end with suffix (a scan of the in-memory lists: ~1M IDs in tens of ms).
func (u *usageIndex) allocsWithSuffix(suffix string) []string {
	u.mu.RLock()
	defer u.mu.RUnlock()
	var out []string
	for _, l := range u.byNode {
		for len(l) > 0 {
			n, k := binary.Uvarint(l)
			if id := l[k : k+int(n)]; bytes.HasSuffix(id, []byte(suffix)) {
				out = append(out, string(id))
			}
			l = l[k+int(n):]
		}
	}
	return out
}

// drainingNodes returns the IDs of nodes being drained.
func (u *usageIndex) drainingNodes() []string {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return slices.Sorted(maps.Keys(u.draining))
}

// allocChanges counts the batches that wrote allocations on a node: a
// node's agent needs a new allocation set only when it moved.
func (u *usageIndex) allocChanges(id string) uint64 {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.changes[id]
}

// liveAllocs is the number of allocations holding resources.
func (u *usageIndex) liveAllocs() int {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.live
}

// count is the number of registered nodes.
func (u *usageIndex) count() int {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return len(u.list)
}

// snapshot returns every registered node's state, sorted by ID.
func (u *usageIndex) snapshot() []*sched.NodeState {
	u.mu.RLock()
	defer u.mu.RUnlock()
	out := make([]*sched.NodeState, 0, len(u.list))
	for _, ns := range u.list {
		if ns.Node.Name != "" {
			out = append(out, ns)
		}
	}
	return out
}

// get returns one node's state, or nil.
func (u *usageIndex) get(id string) *sched.NodeState {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if pos, ok := u.pos[id]; ok {
		return u.list[pos]
	}
	return nil
}

// rebuild loads the index from the state database (at open and restore).
func (u *usageIndex) rebuild(tx *bolt.Tx) error {
	nodes := map[string]*sched.NodeState{}
	draining := map[string]bool{}
	byNode := map[string]idList{}
	statuses := map[AllocStatus]int{}
	live := 0
	err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		var n structs.NodeRecord
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("%w: node %q: %v", ErrCorruptState, k, err)
		}
		if n.Drain != nil {
			draining[n.ID] = true
		}
		node := n.Node
		nodes[n.ID] = &sched.NodeState{Node: &node, UsedPorts: map[int]bool{}}
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketAllocs).ForEach(func(k, v []byte) error {
		a, err := decodeAllocRecord(v)
		if err != nil {
			return fmt.Errorf("%w: allocation %q: %v", ErrCorruptState, k, err)
		}
		byNode[a.NodeID] = byNode[a.NodeID].add(a.ID)
		statuses[statusOf(a)]++
		if a.Terminal() {
			return nil
		}
		live++
		ns := nodes[a.NodeID]
		if ns == nil {
			ns = &sched.NodeState{Node: &sched.Node{ID: a.NodeID, Status: sched.NodeDown}, UsedPorts: map[int]bool{}}
			nodes[a.NodeID] = ns
		}
		ns.Used = ns.Used.Add(a.Resources)
		for _, p := range a.Ports {
			ns.UsedPorts[p.Value] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.list, u.pos = slices.Collect(maps.Values(nodes)), map[string]int{}
	u.sort()
	u.draining, u.live, u.byNode, u.statuses = draining, live, byNode, statuses
	return nil
}

// idList is a list of IDs packed in one byte slice (each a uvarint
// length, then the bytes): a million allocation IDs are a few thousand
// objects the garbage collector need not scan, not a million strings.
type idList []byte

// add appends id. Like append, it may reuse l's array: callers hold the
// lock that guards l.
func (l idList) add(id string) idList {
	l = binary.AppendUvarint(l, uint64(len(id)))
	return append(l, id...)
}

// ids unpacks the list.
func (l idList) ids() []string {
	var out []string
	for len(l) > 0 {
		n, k := binary.Uvarint(l)
		out = append(out, string(l[k:k+int(n)]))
		l = l[k+int(n):]
	}
	return out
}
