package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Consistent reads without a trip of the data to the leader (Raft's
// read-index, as etcd serves them): the leader names the index of its
// state after a barrier (which confirms it still leads and that its state
// holds every committed write), and the server asked answers from its
// own state once it has applied that index. Every write
// acknowledged before the read began is then visible in the answer.

// readIndexTimeout bounds how long a read waits for this server to catch
// up with the leader's index before it is refused (503, retry elsewhere
// or ask with ?stale).
const readIndexTimeout = 5 * time.Second

// errNotEstablished refuses reads on a leader that has not yet applied
// its predecessors' writes (its start barrier is still running).
func errNotEstablished(leader string) error {
	return fmt.Errorf("%w: the leader %s was just elected and is still applying its predecessors' writes; retry", ErrNotLeader, leader)
}

// leaderReadIndex is the read index on the leader: its state's index
// after a Raft barrier. The barrier commits only while this server leads
// (a quorum takes it: no newer leader exists) and returns once this
// server's state has applied everything before it, so the index covers
// every write committed before the call, acknowledged or not. The
// state's index alone would not: a leader applies committed entries
// after its followers may have, and a read served by one of them could
// show a write that a later read, served at the leader's lagging index,
// does not (the fault suite's porcupine check found exactly that).
func (n *raftNode) leaderReadIndex() (uint64, error) {
	if !n.isLeader() {
		return 0, &NotLeaderError{Leader: n.leader()}
	}
	if n.established.Load() != n.raft.CurrentTerm() {
		return 0, errNotEstablished(n.leader())
	}
	if err := n.raft.Barrier(readIndexTimeout).Error(); err != nil {
		return 0, fmt.Errorf("%w: the leader could not confirm its read index (%v); retry", ErrNotLeader, err)
	}
	return n.store.Index(), nil
}

type readIndexResponse struct {
	Index uint64 `json:"Index"`
}

// rpcReadIndex is the server RPC "read-index": a follower asks the leader
// for the index it must reach before it serves a read.
func (n *raftNode) rpcReadIndex(json.RawMessage) (any, error) {
	idx, err := n.leaderReadIndex()
	if err != nil {
		return nil, err
	}
	return readIndexResponse{Index: idx}, nil
}

// readBarrier returns once this server's state holds every write the
// cluster acknowledged before the call: on the leader after confirming
// its leadership, on a follower after applying the leader's read index.
// It fails (a *NotLeaderError, a 503) when no leader answers or this
// server does not catch up within readIndexTimeout.
func (n *raftNode) readBarrier(ctx context.Context) error {
	if n.isLeader() {
		_, err := n.leaderReadIndex()
		return err
	}
	leader := n.leader()
	if leader == "" {
		return fmt.Errorf("%w; a consistent read needs the leader's read index: retry, or add ?stale for this server's state as it is", &NotLeaderError{})
	}
	ctx, cancel := context.WithTimeout(ctx, readIndexTimeout)
	defer cancel()
	var out readIndexResponse
	if err := n.rpc.call(ctx, leader, "read-index", nil, &out); err != nil {
		return fmt.Errorf("%w: cannot get the read index from the leader %s (%v); retry, or add ?stale", ErrNotLeader, leader, err)
	}
	if !n.waitApplied(ctx, out.Index) {
		return fmt.Errorf("%w: this server has applied the state up to index %d and the leader's read index is %d; it is still catching up (retry, or add ?stale for its state as it is)",
			ErrNotLeader, n.store.Index(), out.Index)
	}
	return nil
}

// waitApplied waits until the local state has applied index; false if
// ctx ends first.
func (n *raftNode) waitApplied(ctx context.Context, index uint64) bool {
	for {
		ch := n.store.Watch()
		if n.store.Index() >= index {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return n.store.Index() >= index
		}
	}
}
