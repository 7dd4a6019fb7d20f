package coordinator

import (
	"context"
	"sort"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
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
// passed at a given time. The leader steps it; tests drive it directly.
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

// observeBeat counts a heartbeat that arrived margin before its deadline.
func observeBeat(h *structs.HeartbeatStats, margin time.Duration) {
	ms := margin.Milliseconds()
	if h.Beats == 0 || ms < h.MinMarginMillis {
		h.MinMarginMillis = ms
	}
	h.Beats++
}

// HeartbeatStats returns the leader's heartbeat counters: with them a
// test or benchmark sees a missed deadline even if the node came back.
func (s *Server) HeartbeatStats() structs.HeartbeatStats {
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	st := s.hbStats
	st.TTLMillis = s.heartbeatTTL(s.store.NodeCount()).Milliseconds()
	st.GraceMillis = s.cfg.HeartbeatGrace.Milliseconds()
	return st
}

// heartbeatTTL is the TTL given to nodes when the cluster has n of them.
func (s *Server) heartbeatTTL(n int) time.Duration {
	ttl := s.cfg.MinHeartbeatTTL
	if scaled := time.Duration(float64(n) / maxHeartbeatsPerSecond * float64(time.Second)); scaled > ttl {
		ttl = scaled
	}
	return ttl
}

// heartbeat records a node's heartbeat; on a follower it is forwarded to
// the leader, which owns the timers.
func (s *Server) heartbeat(ctx context.Context, nodeID string) error {
	if s.IsLeader() {
		now := time.Now()
		// Agents are told to beat at a third of the TTL for the cluster's
		// size when they register; as it grows, so must the deadline
		// (never shrinking: an agent keeps the interval it was told).
		ttl := s.heartbeatTTL(s.store.NodeCount())
		s.hbMu.Lock()
		s.nodeTTL = max(s.nodeTTL, ttl)
		if s.hb != nil {
			if old, ok := s.hb[nodeID]; ok {
				observeBeat(&s.hbStats, old.Sub(now))
			}
			s.hb.set(nodeID, now.Add(s.nodeTTL+s.cfg.HeartbeatGrace))
		}
		s.hbMu.Unlock()
		return nil
	}
	leader := s.Leader()
	if leader == "" {
		return nil // nobody to tell; the next leader gives every node its failover grace
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.call(ctx, leader, "heartbeat", nodeID, nil)
}

// watchNodes is a leader duty: it arms every ready node's timer with the
// failover grace, then marks down the nodes that stop heartbeating,
// declares lost the unknown allocations whose lost_after has passed, and
// steps node drains.
func (s *Server) watchNodes(ctx context.Context) {
	now := time.Now()
	nodes, err := s.store.Nodes()
	if err != nil {
		s.log.Error("reading nodes", "err", err)
		return
	}
	s.hbMu.Lock()
	s.nodeTTL = s.heartbeatTTL(len(nodes))
	s.hb = deadlines{}
	for _, n := range nodes {
		if n.Status == sched.NodeReady {
			s.hb.set(n.ID, now.Add(s.nodeTTL+s.cfg.HeartbeatGrace+s.cfg.FailoverGrace))
		}
	}
	s.hbMu.Unlock()
	lost := deadlines{}
	s.loadUnknown(lost)
	defer func() {
		s.hbMu.Lock()
		s.hb = nil
		s.hbMu.Unlock()
	}()

	tick := time.NewTicker(heartbeatCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now = <-tick.C:
		}
		s.hbMu.Lock()
		down := s.hb.expired(now)
		s.hbMu.Unlock()
		for _, id := range down {
			if err := s.markNodeDown(id, lost); err != nil {
				s.log.Error("marking node down", "node", id, "err", err)
			}
		}
		if ids := lost.expired(now); len(ids) > 0 {
			if err := s.declareLost(ids); err != nil {
				s.log.Error("declaring unknown allocations lost", "err", err)
			}
		}
		if err := s.drainStep(now); err != nil {
			s.log.Error("draining nodes", "err", err)
		}
	}
}

// disconnectOf returns the disconnect block of an allocation's group.
func (s *Server) disconnectOf(a *structs.Alloc) *spec.Disconnect {
	j, err := s.store.JobVersion(a.JobID, a.JobVersion)
	if err != nil || j == nil {
		return nil
	}
	if g := j.Lookup(a.Group); g != nil {
		return g.Disconnect
	}
	return nil
}

// markNodeDown commits the node down and its live allocations lost, or
// unknown where their group has a disconnect block with lost_after (then
// armed in lost), with an evaluation for each job touched.
func (s *Server) markNodeDown(id string, lost deadlines) error {
	n, err := s.store.Node(id)
	if err != nil || n == nil || n.Status == sched.NodeDown {
		return err
	}
	allocs, err := s.store.NodeAllocs(id)
	if err != nil {
		return err
	}
	now := time.Now()
	cmd := &state.NodeStatus{NodeID: id, Status: sched.NodeDown, Time: now.UnixNano()}
	jobs := map[string]bool{}
	for _, a := range allocs {
		if a.Terminal() {
			continue
		}
		u := state.ClientUpdate{AllocID: a.ID, ClientStatus: sched.ClientLost, Description: "node " + n.Name + " missed its heartbeats"}
		if d := s.disconnectOf(a); d != nil && d.LostAfter > 0 {
			u.ClientStatus = sched.ClientUnknown
			u.Description = "node " + n.Name + " is disconnected; lost after " + d.LostAfter.String()
			lost.set(a.ID, now.Add(d.LostAfter.D()))
		}
		cmd.Allocs = append(cmd.Allocs, u)
		jobs[a.JobID] = true
	}
	for job := range jobs {
		cmd.Evals = append(cmd.Evals, &structs.Eval{ID: newEvalID(), JobID: job, TriggeredBy: "node-down", Status: structs.EvalPending})
	}
	s.log.Warn("node down: missed its heartbeats", "node", n.Name, "node_id", id, "allocs", len(cmd.Allocs))
	s.hbMu.Lock()
	s.hbStats.NodesDown++
	s.hbMu.Unlock()
	_, _, err = s.apply(cmd)
	return err
}

// loadUnknown arms lost_after timers for allocations that were already
// unknown when this server became leader.
func (s *Server) loadUnknown(lost deadlines) {
	nodes, err := s.store.Nodes()
	if err != nil {
		return
	}
	for _, n := range nodes {
		if n.Status != sched.NodeDown {
			continue
		}
		allocs, _ := s.store.NodeAllocs(n.ID)
		for _, a := range allocs {
			if a.ClientStatus != sched.ClientUnknown {
				continue
			}
			after := time.Duration(0)
			if d := s.disconnectOf(a); d != nil {
				after = d.LostAfter.D()
			}
			lost.set(a.ID, time.Unix(0, a.UnknownSince).Add(after))
		}
	}
}

// declareLost turns unknown allocations lost (their lost_after passed)
// and evaluates their jobs.
func (s *Server) declareLost(ids []string) error {
	byNode := map[string]*state.AllocUpdate{}
	jobs := map[string]bool{}
	for _, id := range ids {
		a, err := s.store.Alloc(id)
		if err != nil {
			return err
		}
		if a == nil || a.ClientStatus != sched.ClientUnknown {
			continue // came back, or already gone
		}
		c := byNode[a.NodeID]
		if c == nil {
			c = &state.AllocUpdate{NodeID: a.NodeID}
			byNode[a.NodeID] = c
		}
		c.Updates = append(c.Updates, state.ClientUpdate{AllocID: id, ClientStatus: sched.ClientLost, Description: "disconnected longer than lost_after"})
		jobs[a.JobID] = true
	}
	for _, c := range byNode {
		if _, _, err := s.apply(c); err != nil {
			return err
		}
	}
	for job := range jobs {
		if err := s.enqueueJobEval(job, "alloc-lost"); err != nil {
			return err
		}
	}
	return nil
}
