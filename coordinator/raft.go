package coordinator

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/internal/boltcheck"
)

// Raft: starting it over the data dir, and the one proposal path every
// write takes (apply, propose). The state machine it drives is package
// state, through the adapter in fsm.go.

func (s *Server) startRaft() error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.NodeID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	// The FSM is durable: do not rebuild it from the snapshot at start,
	// replay only what is newer than its applied index.
	rc.NoSnapshotRestoreOnStart = true
	// Leadership changes reach leaderLoop only: a channel of our own, so
	// no other reader can take a transition from it.
	s.leaderCh = make(chan bool, 16)
	rc.NotifyCh = s.leaderCh
	if s.cfg.DevMode {
		rc.HeartbeatTimeout = 150 * time.Millisecond
		rc.ElectionTimeout = 150 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	dir := filepath.Join(s.cfg.DataDir, "raft")
	logPath := filepath.Join(dir, "raft.db")
	if err := boltcheck.Preflight(logPath); err != nil {
		return fmt.Errorf("coordinator: raft log: %w", err)
	}
	var err error
	s.logDB, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("coordinator: open raft log %s: %w", filepath.Join(dir, "raft.db"), err)
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return fmt.Errorf("coordinator: snapshot store: %w", err)
	}
	if err := verifySnapshots(filepath.Join(dir, "snapshots"), snaps); err != nil {
		return err
	}
	if s.mux, err = newMuxLayer(s.cfg.RaftAddr, s.serveRPC); err != nil {
		return err
	}
	s.trans = newRaftTransport(s.mux)
	hasState, err := raft.HasExistingState(s.logDB, s.logDB, snaps)
	if err != nil {
		return err
	}
	if s.cfg.Bootstrap && !hasState {
		conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: s.trans.LocalAddr()}}}
		if err := raft.BootstrapCluster(rc, s.logDB, s.logDB, snaps, s.trans, conf); err != nil {
			return fmt.Errorf("coordinator: bootstrap: %w", err)
		}
	}
	s.evals = newEvalQueue(s.jobPriority)
	// Recent entries stay in memory: the leader replicates from the
	// cache instead of decoding them back out of bbolt.
	logs, err := raft.NewLogCache(1024, s.logDB)
	if err != nil {
		return err
	}
	s.raft, err = raft.NewRaft(rc, &fsm{store: s.store, onApply: s.applied}, logs, s.logDB, snaps, s.trans)
	if err != nil {
		return fmt.Errorf("coordinator: start raft: %w", err)
	}
	return nil
}

// fixOwnAddress updates this server's address in a single-server
// configuration after a restart on a new port (dev mode binds port 0).
func (s *Server) fixOwnAddress() {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	id, addr := raft.ServerID(s.cfg.NodeID), s.trans.LocalAddr()
	servers := f.Configuration().Servers
	if len(servers) != 1 || servers[0].ID != id || servers[0].Address == addr {
		return
	}
	if err := s.raft.AddVoter(id, addr, 0, 5*time.Second).Error(); err != nil {
		s.log.Warn("updating own raft address", "addr", addr, "err", err)
	}
}

// applyTimeout bounds how long a proposal waits to be taken by Raft.
const applyTimeout = 30 * time.Second

// apply proposes one command and waits for it to be committed and applied.
// It returns the command's result; a command the state refused returns
// its error. On a follower the write is forwarded to the leader.
func (s *Server) apply(c state.Command) (any, uint64, error) {
	data, err := state.Encode(c)
	if err != nil {
		return nil, 0, err
	}
	if !s.IsLeader() {
		return s.forwardApply(data)
	}
	return s.propose(data)()
}

// propose hands an encoded command to Raft on this server (every write
// goes through here: the leader's own and those forwarded to it) and
// returns a function that waits until the command is committed and
// applied, with its result. Raft refuses it on a server that does not
// lead.
func (s *Server) propose(data []byte) (wait func() (any, uint64, error)) {
	f := s.raft.Apply(data, applyTimeout)
	return func() (any, uint64, error) {
		if err := f.Error(); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return nil, 0, &NotLeaderError{Leader: s.Leader()}
			}
			return nil, 0, fmt.Errorf("coordinator: raft apply: %w", err)
		}
		if err, ok := f.Response().(error); ok {
			return nil, f.Index(), err
		}
		return f.Response(), f.Index(), nil
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
