package coordinator

import (
	"sort"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
)

// Heartbeat defaults, Nomad's shape with edge-sized numbers: a node that
// misses its TTL plus the grace is down; TTLs grow with the number of
// nodes so the servers see at most maxHeartbeatsPerSecond.
const (
	defaultMinHeartbeatTTL  = 5 * time.Second
	defaultHeartbeatGrace   = 3 * time.Second
	defaultFailoverGrace    = 10 * time.Second
	maxHeartbeatsPerSecond  = 50.0
	heartbeatCheckInterval  = 200 * time.Millisecond
	heartbeatsPerTTLOnAgent = 3 // the agent beats three times per TTL
)

// deadlines is a pure timer table: keys with a deadline, and which have
// passed at a given time.
type deadlines map[string]time.Time

// set arms (or re-arms) key to expire at t.
func (d deadlines) set(key string, t time.Time) { d[key] = t }

// expired removes and returns, sorted, the keys whose deadline is before now.
func (d deadlines) expired(now time.Time) []string {
	var out []string
	for k, t := range d {
		if now.After(t) {
			out = append(out, k)
			delete(d, k)
		}
	}
	sort.Strings(out)
	return out
}

// heartbeats is the leader's failure detector as a pure state machine:
// every input carries the time it happened at, it owns no goroutine and
// reads no clock (failureDetector steps it and does the I/O). Between
// start and stop (this server leads) it holds a heartbeat deadline per
// node and a lost_after deadline per unknown allocation.
type heartbeats struct {
	minTTL   time.Duration // the least TTL (Config.MinHeartbeatTTL)
	grace    time.Duration // added to the TTL before a node is down
	failover time.Duration // added to every deadline armed at start

	leading bool
	ttl     time.Duration // the longest TTL nodes were given this term
	nodes   deadlines     // node ID -> heartbeat deadline
	lost    deadlines     // unknown allocation ID -> when it is lost
	stats   structs.HeartbeatStats
}

// ttlFor is the TTL given to nodes when the cluster has n of them.
func (h *heartbeats) ttlFor(n int) time.Duration {
	ttl := h.minTTL
	if scaled := time.Duration(float64(n) / maxHeartbeatsPerSecond * float64(time.Second)); scaled > ttl {
		ttl = scaled
	}
	return ttl
}

// start begins a term at now in a cluster of n nodes: each of the ready
// nodes gets the TTL, the grace and the failover grace, so a new leader
// does not mark nodes down en masse before they find it.
func (h *heartbeats) start(now time.Time, ready []string, n int) {
	h.leading = true
	h.ttl = h.ttlFor(n)
	h.nodes, h.lost = deadlines{}, deadlines{}
	for _, id := range ready {
		h.nodes.set(id, now.Add(h.ttl+h.grace+h.failover))
	}
}

// stop ends the term: no deadlines are kept while another server leads.
func (h *heartbeats) stop() {
	h.leading = false
	h.nodes, h.lost = nil, nil
}

// beat records a node's heartbeat at now in a cluster of n nodes. Agents
// are told to beat at a third of the TTL for the cluster's size when
// they register; as it grows, so must the deadline (never shrinking: an
// agent keeps the interval it was told).
func (h *heartbeats) beat(node string, now time.Time, n int) {
	h.ttl = max(h.ttl, h.ttlFor(n))
	if !h.leading {
		return
	}
	if old, ok := h.nodes[node]; ok {
		h.observe(old.Sub(now))
	}
	h.nodes.set(node, now.Add(h.ttl+h.grace))
}

// observe counts a heartbeat that arrived margin before its deadline.
func (h *heartbeats) observe(margin time.Duration) {
	ms := margin.Milliseconds()
	if h.stats.Beats == 0 || ms < h.stats.MinMarginMillis {
		h.stats.MinMarginMillis = ms
	}
	h.stats.Beats++
}

// deadline is a node's heartbeat deadline, if armed.
func (h *heartbeats) deadline(node string) (time.Time, bool) {
	t, ok := h.nodes[node]
	return t, ok
}

// loseAt arms an unknown allocation to be declared lost at t.
func (h *heartbeats) loseAt(alloc string, t time.Time) {
	if h.leading {
		h.lost.set(alloc, t)
	}
}

// step returns, sorted and each once, the nodes whose heartbeat deadline
// passed by now and the unknown allocations whose lost_after did.
func (h *heartbeats) step(now time.Time) (down, lost []string) {
	return h.nodes.expired(now), h.lost.expired(now)
}

// nodeDown counts a node marked down.
func (h *heartbeats) nodeDown() { h.stats.NodesDown++ }

// statsFor is the counters, with the TTL for a cluster of n nodes.
func (h *heartbeats) statsFor(n int) structs.HeartbeatStats {
	st := h.stats
	st.TTLMillis = h.ttlFor(n).Milliseconds()
	st.GraceMillis = h.grace.Milliseconds()
	return st
}
