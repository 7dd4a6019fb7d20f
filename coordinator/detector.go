package coordinator

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// failureDetector runs the heartbeat state machine (heartbeats): it
// records heartbeats (a follower forwards them to the leader, which owns
// the timers), and while this server leads (Run) steps the machine on a
// ticker and commits what it decides: a node down with its allocations
// lost (or unknown, for a group with a disconnect block) and the
// evaluations that replace them, and unknown allocations lost once their
// lost_after passes.
type failureDetector struct {
	store   *state.Store
	apply   applyFunc
	node    *raftNode // is this server the leader, and where is it
	rpc     *rpcClient
	log     *slog.Logger
	ticker  time.Duration // how often Run steps the machine
	metrics *serverMetrics

	mu sync.Mutex
	hb heartbeats
}

// heartbeat records a node's heartbeat; on a follower it is forwarded to
// the leader.
func (d *failureDetector) heartbeat(ctx context.Context, nodeID string) error {
	if d.node.isLeader() {
		n := d.store.NodeCount()
		d.mu.Lock()
		d.hb.beat(nodeID, time.Now(), n)
		d.mu.Unlock()
		d.metrics.heartbeat()
		return nil
	}
	leader := d.node.leader()
	if leader == "" {
		return nil // nobody to tell; the next leader gives every node its failover grace
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return d.rpc.call(ctx, leader, "heartbeat", nodeID, nil)
}

// rpcHeartbeat is the server RPC "heartbeat", forwarded by a follower.
func (d *failureDetector) rpcHeartbeat(body json.RawMessage) (any, error) {
	var nodeID string
	json.Unmarshal(body, &nodeID)
	if !d.node.isLeader() {
		return nil, &NotLeaderError{Leader: d.node.leader()}
	}
	return nil, d.heartbeat(context.Background(), nodeID)
}

// stats returns the heartbeat counters (counted while this server leads).
func (d *failureDetector) stats() structs.HeartbeatStats {
	n := d.store.NodeCount()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hb.statsFor(n)
}

// agentInterval is how often agents beat: three times per TTL. Every
// agent's connection asks at every commit, so it takes no lock: ttlFor
// reads only the configuration, which never changes.
func (d *failureDetector) agentInterval() time.Duration {
	return d.hb.ttlFor(d.store.NodeCount()) / heartbeatsPerTTLOnAgent
}

// Run is a leader duty: it arms every ready node's timer with the
// failover grace and every unknown allocation's lost_after, then steps
// the machine until ctx ends.
func (d *failureDetector) Run(ctx context.Context) {
	now := time.Now()
	nodes, err := d.store.Nodes()
	if err != nil {
		d.log.Error("reading nodes", "err", err)
		return
	}
	var ready []string
	for _, n := range nodes {
		if n.Status == sched.NodeReady {
			ready = append(ready, n.ID)
		}
	}
	d.mu.Lock()
	d.hb.start(now, ready, len(nodes))
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.hb.stop()
		d.mu.Unlock()
	}()
	d.loadUnknown(nodes)

	tick := time.NewTicker(d.ticker)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now = <-tick.C:
		}
		d.mu.Lock()
		down, lost := d.hb.step(now)
		d.mu.Unlock()
		d.metrics.nodesDown(len(down))
		for _, id := range down {
			if err := d.markNodeDown(id, now); err != nil {
				d.log.Error("marking node down", "node", id, "err", err)
			}
		}
		if len(lost) > 0 {
			if err := d.declareLost(lost); err != nil {
				d.log.Error("declaring unknown allocations lost", "err", err)
			}
		}
	}
}

// disconnectOf returns the disconnect block of an allocation's group.
func (d *failureDetector) disconnectOf(a *structs.Alloc) *spec.Disconnect {
	j, err := d.store.JobVersion(a.JobID, a.JobVersion)
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
// armed to be lost), with an evaluation for each job touched.
func (d *failureDetector) markNodeDown(id string, now time.Time) error {
	n, err := d.store.Node(id)
	if err != nil || n == nil || n.Status == sched.NodeDown {
		return err
	}
	allocs, err := d.store.NodeAllocs(id)
	if err != nil {
		return err
	}
	cmd := &state.NodeStatus{NodeID: id, Status: sched.NodeDown, Time: now.UnixNano()}
	jobs := map[string]bool{}
	loseAt := deadlines{}
	for _, a := range allocs {
		if a.Terminal() {
			continue
		}
		u := state.ClientUpdate{AllocID: a.ID, ClientStatus: sched.ClientLost, Description: "node " + n.Name + " missed its heartbeats"}
		if dc := d.disconnectOf(a); dc != nil && dc.LostAfter > 0 {
			u.ClientStatus = sched.ClientUnknown
			u.Description = "node " + n.Name + " is disconnected; lost after " + dc.LostAfter.String()
			loseAt.set(a.ID, now.Add(dc.LostAfter.D()))
		}
		cmd.Allocs = append(cmd.Allocs, u)
		jobs[a.JobID] = true
	}
	d.mu.Lock()
	for id, t := range loseAt {
		d.hb.loseAt(id, t)
	}
	d.hb.nodeDown()
	d.mu.Unlock()
	for job := range jobs {
		cmd.Evals = append(cmd.Evals, &structs.Eval{ID: newEvalID(), JobID: job, TriggeredBy: "node-down", Status: structs.EvalPending})
	}
	d.log.Warn("node down: missed its heartbeats", "node", n.Name, "node_id", id, "allocs", len(cmd.Allocs))
	_, _, err = d.apply(cmd)
	return err
}

// loadUnknown arms lost_after for allocations that were already unknown
// when this server became leader.
func (d *failureDetector) loadUnknown(nodes []*structs.NodeRecord) {
	for _, n := range nodes {
		if n.Status != sched.NodeDown {
			continue
		}
		allocs, _ := d.store.NodeAllocs(n.ID)
		for _, a := range allocs {
			if a.ClientStatus != sched.ClientUnknown {
				continue
			}
			after := time.Duration(0)
			if dc := d.disconnectOf(a); dc != nil {
				after = dc.LostAfter.D()
			}
			d.mu.Lock()
			d.hb.loseAt(a.ID, time.Unix(0, a.UnknownSince).Add(after))
			d.mu.Unlock()
		}
	}
}

// declareLost commits unknown allocations lost (their lost_after
// passed), one write per node. The scheduling side evaluates their jobs
// (an allocation that stops being live is one of its triggers).
func (d *failureDetector) declareLost(ids []string) error {
	byNode := map[string]*state.AllocUpdate{}
	var order []string
	for _, id := range ids {
		a, err := d.store.Alloc(id)
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
			order = append(order, a.NodeID)
		}
		c.Updates = append(c.Updates, state.ClientUpdate{AllocID: id, ClientStatus: sched.ClientLost, Description: "disconnected longer than lost_after"})
	}
	for _, node := range order {
		if _, _, err := d.apply(byNode[node]); err != nil {
			return err
		}
	}
	return nil
}
