package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/boltcheck"
)

// raftNode is this server's Raft: the log and stable store over the data
// dir, the transport on the Raft port, and the one proposal path every
// write takes (apply, propose). The state machine it drives is package
// state, through the adapter in fsm.go. Parts write through its apply
// (a func value); only the plan applier proposes directly.
type raftNode struct {
	id    string
	store *state.Store
	rpc   *rpcClient // forwards a follower's writes to the leader
	log   *slog.Logger

	raft     *raft.Raft
	trans    *raft.NetworkTransport
	mux      *muxLayer
	logDB    *raftboltdb.BoltStore   // opened by openLog, before the state
	snaps    *raft.FileSnapshotStore // opened by openLog
	leaderCh chan bool               // Raft's NotifyCh: leadership changes, read by Server.leaderLoop only
	metrics  *serverMetrics
	// established is the term in which this server, as leader, passed
	// its start barrier (becomeLeader): its state then holds every write
	// its predecessors acknowledged, so it may serve reads (0: none yet).
	established atomic.Uint64
}

// raftConfig is what starting Raft needs from the server's Config.
type raftConfig struct {
	ID, DataDir, Bind  string
	Bootstrap, DevMode bool
	Multiplier         int // scales the timeouts (raftTimeouts); 0 is 1
}

// Raft's timeouts at multiplier 1, tuned for servers on one host or a
// LAN: a follower notices a dead leader within one to two heartbeat
// timeouts (300–600 ms) and an election on loopback takes a few ms, so a
// failover (kill -9 of the leader until the next one takes a write) has
// a median under a second. hashicorp/raft's defaults (1 s, 1 s, 500 ms)
// are Consul's multiplier 1; Consul runs 5 by default for WANs and busy
// VMs. The multiplier scales the three as Consul's raft_multiplier does.
const (
	baseHeartbeatTimeout   = 300 * time.Millisecond
	baseElectionTimeout    = 300 * time.Millisecond
	baseLeaderLeaseTimeout = 150 * time.Millisecond
	maxRaftMultiplier      = 10
)

// raftTimeouts sets rc's heartbeat, election and leader-lease timeouts
// for multiplier m.
func raftTimeouts(rc *raft.Config, m int) {
	if m < 1 {
		m = 1
	}
	rc.HeartbeatTimeout = baseHeartbeatTimeout * time.Duration(m)
	rc.ElectionTimeout = baseElectionTimeout * time.Duration(m)
	rc.LeaderLeaseTimeout = baseLeaderLeaseTimeout * time.Duration(m)
}

// ErrNotLeader is returned for a write on a server that is not the leader.
var ErrNotLeader = errors.New("coordinator: not the leader")

// NotLeaderError tells the caller where the leader is, if known. Cause
// is set when the write was forwarded to Leader and it did not take it.
type NotLeaderError struct {
	Leader string
	Cause  error
	// NotApplied is set when the write was certainly not proposed (no
	// leader known, refused by a server that does not lead, the leader
	// could not be dialled): a client may send it again
	// (structs.NotAppliedHeader).
	NotApplied bool
}

func (e *NotLeaderError) Error() string {
	switch {
	case e.Leader == "":
		return "coordinator: no cluster leader is known (is a quorum of servers up?)"
	case e.Cause != nil:
		return fmt.Sprintf("coordinator: the last known leader %s did not take the write (%v); is a quorum of servers up?", e.Leader, e.Cause)
	}
	return fmt.Sprintf("coordinator: not the leader; the leader is %s", e.Leader)
}

func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// openLog opens the Raft log and the snapshot store over dataDir/raft,
// checking both, before the state is opened (openState checks the state
// against them).
func (n *raftNode) openLog(dataDir string) error {
	dir := filepath.Join(dataDir, "raft")
	logPath := filepath.Join(dir, "raft.db")
	if err := boltcheck.Preflight(logPath); err != nil {
		return fmt.Errorf("coordinator: raft log: %w", err)
	}
	var err error
	n.logDB, err = raftboltdb.New(raftboltdb.Options{Path: logPath})
	if err != nil {
		return fmt.Errorf("coordinator: open raft log %s: %w", logPath, err)
	}
	n.snaps, err = raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return fmt.Errorf("coordinator: snapshot store: %w", err)
	}
	return verifySnapshots(filepath.Join(dir, "snapshots"), n.snaps)
}

// start binds the Raft port (whose RPC connections go to rpc) and starts
// Raft with fsm over the log openLog opened. restore: the state is
// behind the newest snapshot (openState), so Raft restores it from the
// snapshot before replaying the log.
func (n *raftNode) start(cfg raftConfig, fsm raft.FSM, rpc func(net.Conn), restore bool) error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	// The FSM is durable: do not rebuild it from the snapshot at start,
	// replay only what is newer than its applied index; unless it is
	// behind the snapshot (a rebuilt state).
	rc.NoSnapshotRestoreOnStart = !restore
	// Leadership changes reach Server.leaderLoop only: a channel of our
	// own, so no other reader can take a transition from it.
	n.leaderCh = make(chan bool, 16)
	rc.NotifyCh = n.leaderCh
	raftTimeouts(rc, cfg.Multiplier)
	if cfg.DevMode {
		rc.HeartbeatTimeout = 150 * time.Millisecond
		rc.ElectionTimeout = 150 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	snaps := n.snaps
	var err error
	if n.mux, err = newMuxLayer(cfg.Bind, rpc); err != nil {
		return err
	}
	n.trans = newRaftTransport(n.mux)
	hasState, err := raft.HasExistingState(n.logDB, n.logDB, snaps)
	if err != nil {
		return err
	}
	if cfg.Bootstrap && !hasState {
		conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.trans.LocalAddr()}}}
		if err := raft.BootstrapCluster(rc, n.logDB, n.logDB, snaps, n.trans, conf); err != nil {
			return fmt.Errorf("coordinator: bootstrap: %w", err)
		}
	}
	// Recent entries stay in memory: the leader replicates from the
	// cache instead of decoding them back out of bbolt.
	logs, err := raft.NewLogCache(1024, n.logDB)
	if err != nil {
		return err
	}
	n.raft, err = raft.NewRaft(rc, fsm, logs, n.logDB, snaps, n.trans)
	if err != nil {
		return fmt.Errorf("coordinator: start raft: %w", err)
	}
	return nil
}

// shutdown stops Raft (if it started).
func (n *raftNode) shutdown() error {
	if n.raft == nil {
		return nil
	}
	return n.raft.Shutdown().Error()
}

// close closes the transport, the Raft port and the log, after shutdown.
func (n *raftNode) close() {
	if n.trans != nil {
		n.trans.Close()
	}
	if n.mux != nil {
		n.mux.Close()
		n.mux.wait()
	}
	if n.logDB != nil {
		n.logDB.Close()
	}
}

// addr is the bound Raft address.
func (n *raftNode) addr() string { return string(n.trans.LocalAddr()) }

// leader returns the leader's Raft address, "" if none is known.
func (n *raftNode) leader() string {
	addr, _ := n.raft.LeaderWithID()
	return string(addr)
}

// isLeader reports whether this server is the Raft leader.
func (n *raftNode) isLeader() bool { return n.raft.State() == raft.Leader }

// bootstrapped reports whether this server has a Raft configuration (it
// is part of a cluster).
func (n *raftNode) bootstrapped() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// peers lists the Raft configuration as this server knows it.
func (n *raftNode) peers() ([]structs.Peer, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	leader := n.leader()
	var out []structs.Peer
	for _, srv := range f.Configuration().Servers {
		out = append(out, structs.Peer{ID: string(srv.ID), Address: string(srv.Address),
			Voter: srv.Suffrage == raft.Voter, Leader: string(srv.Address) == leader})
	}
	return out, nil
}

// others lists the Raft addresses of the other servers in the
// configuration: where a module or an agent's connection may be.
func (n *raftNode) others() ([]string, error) {
	peers, err := n.peers()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range peers {
		if p.Address != n.addr() {
			out = append(out, p.Address)
		}
	}
	return out, nil
}

// becomeLeader is the start of a term's duties: a barrier, so the state
// has applied everything the previous leader committed, then this
// server's own address fixed if it moved.
func (n *raftNode) becomeLeader() error {
	// The term is read before the barrier: the barrier can only succeed
	// while this server still leads in it.
	term := n.raft.CurrentTerm()
	if err := n.raft.Barrier(applyTimeout).Error(); err != nil {
		return fmt.Errorf("coordinator: barrier after election: %w", err)
	}
	n.established.Store(term)
	n.fixOwnAddress()
	return nil
}

// fixOwnAddress updates this server's address in a single-server
// configuration after a restart on a new port (dev mode binds port 0).
func (n *raftNode) fixOwnAddress() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	id, addr := raft.ServerID(n.id), n.trans.LocalAddr()
	servers := f.Configuration().Servers
	if len(servers) != 1 || servers[0].ID != id || servers[0].Address == addr {
		return
	}
	if err := n.raft.AddVoter(id, addr, 0, 5*time.Second).Error(); err != nil {
		n.log.Warn("updating own raft address", "addr", addr, "err", err)
	}
}

// verifyLeader confirms this server still leads (a consistent read).
func (n *raftNode) verifyLeader() error {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return &NotLeaderError{Leader: n.leader()}
	}
	return nil
}

// applyTimeout bounds how long a proposal waits to be taken by Raft.
const applyTimeout = 30 * time.Second

// applyFunc is the proposal path as parts receive it (raftNode.apply).
type applyFunc func(state.Command) (any, uint64, error)

// apply proposes one command and waits for it to be committed and applied.
// It returns the command's result; a command the state refused returns
// its error. On a follower the write is forwarded to the leader.
func (n *raftNode) apply(c state.Command) (any, uint64, error) {
	data, err := state.Encode(c)
	if err != nil {
		return nil, 0, err
	}
	if !n.isLeader() {
		return n.forward(data)
	}
	return n.propose(data)()
}

// propose hands an encoded command to Raft on this server (every write
// goes through here: the leader's own and those forwarded to it) and
// returns a function that waits until the command is committed and
// applied, with its result. Raft refuses it on a server that does not
// lead.
func (n *raftNode) propose(data []byte) (wait func() (any, uint64, error)) {
	start := time.Now()
	f := n.raft.Apply(data, applyTimeout)
	return func() (any, uint64, error) {
		err := f.Error()
		if err == nil {
			n.metrics.committed(time.Since(start))
		}
		if err != nil {
			switch {
			case errors.Is(err, raft.ErrNotLeader):
				return nil, 0, &NotLeaderError{Leader: n.leader(), NotApplied: true}
			case errors.Is(err, raft.ErrLeadershipLost):
				// Appended, maybe committed by the next leader: unknown.
				return nil, 0, &NotLeaderError{Leader: n.leader()}
			}
			return nil, 0, fmt.Errorf("coordinator: raft apply: %w", err)
		}
		if err, ok := f.Response().(error); ok {
			return nil, f.Index(), err
		}
		return f.Response(), f.Index(), nil
	}
}

type applyRequest struct {
	Type    state.CmdType `json:"Type"`
	Payload []byte        `json:"Payload"` // a command's payload (binary for a plan)
}

type applyResponse struct {
	Result json.RawMessage `json:"Result,omitempty"`
	Index  uint64          `json:"Index"`
}

// forward sends an encoded write (state.Encode) to the leader and waits
// until this server has applied it too, so the caller reads its own
// write here.
func (n *raftNode) forward(data []byte) (any, uint64, error) {
	leader := n.leader()
	if leader == "" {
		return nil, 0, &NotLeaderError{NotApplied: true}
	}
	t := state.CmdType(data[0])
	var out applyResponse
	err := n.rpc.call(context.Background(), leader, "apply", applyRequest{Type: t, Payload: data[1:]}, &out)
	var remote *remoteError
	if errors.As(err, &remote) {
		return nil, 0, err // the leader refused the write itself
	}
	if err != nil {
		// Not the leader any more, or unreachable: the write was not
		// taken, certainly so when the leader refused it before proposing
		// or could not be dialled.
		var nl *NotLeaderError
		notApplied := errors.As(err, &nl) && nl.NotApplied || isDialError(err)
		if errors.Is(err, ErrNotLeader) {
			err = errors.New("it is no longer the leader")
		}
		return nil, 0, &NotLeaderError{Leader: leader, Cause: err, NotApplied: notApplied}
	}
	var res any
	switch {
	case out.Result == nil:
	case t == state.CmdJobRegister:
		var r state.JobRegisterResult
		if err := json.Unmarshal(out.Result, &r); err != nil {
			return nil, 0, err
		}
		res = &r
	case t == state.CmdSystemGC, t == state.CmdJobStop:
		var r state.GCResult
		if err := json.Unmarshal(out.Result, &r); err != nil {
			return nil, 0, err
		}
		res = &r
	}
	n.waitIndex(out.Index, 10*time.Second)
	return res, out.Index, nil
}

// isDialError reports whether err is a failure to open a connection:
// nothing was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// rpcApply is the server RPC "apply": a write forwarded by a follower.
// It is proposed here or refused; never forwarded a second hop.
func (n *raftNode) rpcApply(body json.RawMessage) (any, error) {
	var ar applyRequest
	if err := json.Unmarshal(body, &ar); err != nil {
		return nil, err
	}
	if !n.isLeader() {
		return nil, &NotLeaderError{Leader: n.leader(), NotApplied: true}
	}
	res, idx, err := n.propose(append([]byte{byte(ar.Type)}, ar.Payload...))()
	if err != nil {
		return nil, err
	}
	out := applyResponse{Index: idx}
	if res != nil {
		out.Result, _ = json.Marshal(res)
	}
	return out, nil
}

// waitIndex waits until the local state has applied index (bounded).
func (n *raftNode) waitIndex(index uint64, max time.Duration) {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	for {
		ch := n.store.Watch()
		if n.store.Index() >= index {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		}
	}
}

// verifySnapshots reads every stored snapshot through its CRC before Raft
// starts. Raft itself would skip a snapshot whose metadata it cannot read
// and, with NoSnapshotRestoreOnStart, never read the state at all; a bad
// snapshot is refused here by name instead of surfacing when a follower
// needs it.
func verifySnapshots(dir string, snaps *raft.FileSnapshotStore) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue // raft removes unfinished snapshots itself
		}
		_, rc, err := snaps.Open(e.Name())
		if err != nil {
			return fmt.Errorf("%w: snapshot %s: %v", state.ErrCorruptState, filepath.Join(dir, e.Name()), err)
		}
		rc.Close()
	}
	return nil
}
