package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/sched"
)

// Config configures a coordinator server. Zero values take the defaults
// noted on each field.
type Config struct {
	// DataDir holds raft/ (log, stable store, snapshots), state.db (the
	// FSM), modules/ (module blobs by digest) and tls/ (the cluster CA).
	DataDir string
	// NodeID is this server's Raft ID; default: kept in DataDir/server-id,
	// generated on first start.
	NodeID string
	// RaftAddr is the Raft TCP bind address; default 127.0.0.1:0.
	RaftAddr string
	// AgentAddr is the QUIC (UDP) address agents dial; default 127.0.0.1:0.
	AgentAddr string
	// AgentAdvertise is the address agents are told to reach this server
	// at (Registered.Servers, and through other servers): set it when
	// agents reach the server through NAT, a proxy or a name. Default: the
	// bound AgentAddr, unless its IP is unspecified (0.0.0.0, ::), which
	// names no host to a remote agent; then this server is not advertised.
	AgentAdvertise string
	// Bootstrap makes a fresh server bootstrap a single-voter cluster.
	Bootstrap bool
	// BootstrapExpect: a fresh server waits until this many servers know
	// of each other (through Join), then the one with the lowest ID
	// bootstraps them all.
	BootstrapExpect int
	// Join lists other servers' Raft addresses to find the cluster through.
	Join []string
	// Workers is how many scheduler workers the leader runs; default:
	// the number of CPUs.
	Workers int
	// HTTPAddr is this server's HTTP API address, told to other servers
	// (consistent reads are forwarded there).
	HTTPAddr string
	// MinHeartbeatTTL is the least time a node may go without a
	// heartbeat (default 5s); with many nodes the TTL grows so servers see
	// at most 50 heartbeats a second. Agents beat three times per TTL.
	MinHeartbeatTTL time.Duration
	// HeartbeatGrace is added to the TTL before a node is marked down
	// (default 3s).
	HeartbeatGrace time.Duration
	// FailoverGrace is added to every node's first deadline after a
	// leader change, so a new leader does not mark nodes down en masse
	// before they find it (default 10s).
	FailoverGrace time.Duration
	// DevMode shortens Raft timeouts for a single-node cluster on loopback.
	DevMode bool
	Logger  *slog.Logger
}

// Server is one coordinator: Raft, the state store, the scheduler worker,
// the agent endpoint and the HTTP API handler.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  *state.Store
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	mux    *muxLayer
	logDB  *raftboltdb.BoltStore
	blobs  *blobStore
	certs  *serverCerts
	agents *agentEndpoint
	evals  *evalQueue

	planMu   sync.Mutex    // the plan applier: one plan checked at a time
	inflight inflightPlans // plans proposed, not yet applied
	allocIDs *idGen        // stamps placements' IDs, in commit order

	hbMu    sync.Mutex
	hb      deadlines     // leader only: node ID -> heartbeat deadline
	nodeTTL time.Duration // leader only: the longest TTL nodes were given
	hbStats structs.HeartbeatStats

	peersMu sync.Mutex
	peers   map[string]*ServerInfo // other servers we heard from, by ID

	ready    chan struct{} // closed once New has built everything
	leaderCh chan bool     // Raft's NotifyCh
	leading  atomic.Bool   // the leader's duties run (set before pending evals load)
	dutiesM  sync.Mutex
	duties   chan struct{} // closed while the leader's duties run (leaderDuties)

	life   context.Context // ends at Shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ErrNotLeader is returned for a write on a server that is not the leader.
var ErrNotLeader = errors.New("coordinator: not the leader")

// NotLeaderError tells the caller where the leader is, if known. Cause
// is set when the write was forwarded to Leader and it did not take it.
type NotLeaderError struct {
	Leader string
	Cause  error
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

// New opens the data dir, restores state and starts Raft, the scheduler
// worker and the agent endpoint. Call Shutdown to stop them all.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("coordinator: DataDir is required")
	}
	if cfg.RaftAddr == "" {
		cfg.RaftAddr = "127.0.0.1:0"
	}
	if cfg.AgentAddr == "" {
		cfg.AgentAddr = "127.0.0.1:0"
	}
	if cfg.AgentAdvertise != "" && advertisable(cfg.AgentAdvertise) == "" {
		return nil, fmt.Errorf("coordinator: agent advertise address %q must be host:port with a specific host", cfg.AgentAdvertise)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.MinHeartbeatTTL == 0 {
		cfg.MinHeartbeatTTL = defaultMinHeartbeatTTL
	}
	if cfg.HeartbeatGrace == 0 {
		cfg.HeartbeatGrace = defaultHeartbeatGrace
	}
	if cfg.FailoverGrace == 0 {
		cfg.FailoverGrace = defaultFailoverGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, d := range []string{"raft", "modules"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
	}
	if cfg.NodeID == "" {
		id, err := fsutil.PersistentID(filepath.Join(cfg.DataDir, "server-id"))
		if err != nil {
			return nil, err
		}
		cfg.NodeID = id
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "coordinator"), peers: map[string]*ServerInfo{}, ready: make(chan struct{}),
		duties: make(chan struct{}), allocIDs: newIDGen(time.Now)}
	ok := false
	defer func() {
		if !ok {
			s.closeStores()
		}
	}()

	var err error
	if s.store, err = state.Open(filepath.Join(cfg.DataDir, "state.db")); err != nil {
		return nil, err
	}
	if s.blobs, err = newBlobStore(filepath.Join(cfg.DataDir, "modules")); err != nil {
		return nil, err
	}
	s.certs = &serverCerts{store: s.store}
	if err := s.startRaft(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.life, s.cancel = ctx, cancel
	if s.agents, err = newAgentEndpoint(s, cfg.AgentAddr); err != nil {
		cancel()
		s.raft.Shutdown().Error()
		return nil, err
	}
	s.goRun(func() { s.agents.serve(ctx) })
	s.goRun(func() { s.leaderLoop(ctx) })
	s.goRun(func() { s.joinLoop(ctx) })
	ok = true
	close(s.ready)
	s.log.Info("coordinator started", "id", cfg.NodeID, "raft", s.trans.LocalAddr(), "agents", s.agents.Addr())
	return s, nil
}

func (s *Server) goRun(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// Shutdown stops the agent endpoint, the workers and Raft, then closes the stores.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	s.agents.close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := s.raft.Shutdown().Error()
	s.closeStores()
	return err
}

func (s *Server) closeStores() {
	if s.trans != nil {
		s.trans.Close()
	}
	if s.mux != nil {
		s.mux.Close()
		s.mux.wait()
	}
	if s.logDB != nil {
		s.logDB.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// Store returns the state store (read-only use).
func (s *Server) Store() *state.Store { return s.store }

// AgentAddr is the bound QUIC address agents dial.
func (s *Server) AgentAddr() string { return s.agents.Addr() }

// AgentAdvertiseAddr is the address agents are told to reach this server
// at; "" when there is none to tell (bound to an unspecified IP and no
// AgentAdvertise).
func (s *Server) AgentAdvertiseAddr() string {
	if s.cfg.AgentAdvertise != "" {
		return s.cfg.AgentAdvertise
	}
	return advertisable(s.AgentAddr())
}

// advertisable returns addr if it is host:port naming a specific host,
// else "".
func advertisable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return ""
	}
	return addr
}

// RaftAddr is the bound Raft address.
func (s *Server) RaftAddr() string { return string(s.trans.LocalAddr()) }

// CAPin is "sha256:<hex>" of the cluster CA certificate, which agents pin.
// It is "" until a leader has created the CA.
func (s *Server) CAPin() string {
	if ca, err := s.store.CA(); err == nil && ca != nil {
		return caPin(ca)
	}
	return ""
}

// CACertPEM is the cluster CA certificate.
func (s *Server) CACertPEM() []byte {
	if ca, err := s.store.CA(); err == nil && ca != nil {
		return ca.CertPEM
	}
	return nil
}

// Leader returns the leader's Raft address, "" if none is known.
func (s *Server) Leader() string {
	addr, _ := s.raft.LeaderWithID()
	return string(addr)
}

// IsLeader reports whether this server is the Raft leader.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// leaderLoop runs the leader-only work while this server leads.
func (s *Server) leaderLoop(ctx context.Context) {
	var stop context.CancelFunc
	var wg sync.WaitGroup
	defer func() {
		if stop != nil {
			stop()
			wg.Wait()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-s.leaderCh:
			if stop != nil {
				stop()
				wg.Wait()
				stop = nil
			}
			if !leader {
				s.log.Info("lost leadership")
				continue
			}
			s.log.Info("gained leadership")
			lctx, cancel := context.WithCancel(ctx)
			stop = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.lead(lctx)
			}()
		}
	}
}

// lead is the leader's duty: barrier, re-enqueue unfinished evaluations,
// then run the scheduler worker until leadership ends.
func (s *Server) lead(ctx context.Context) {
	if err := s.raft.Barrier(applyTimeout).Error(); err != nil {
		s.log.Error("barrier after election failed", "err", err)
		return
	}
	s.fixOwnAddress()
	if err := s.ensureCA(); err != nil {
		s.log.Error("creating the cluster CA", "err", err)
	}
	// From here the FSM hook queues new evaluations; the ones already
	// committed are loaded below (a duplicate is harmless: one per job).
	s.leading.Store(true)
	defer s.leading.Store(false)
	s.evals.reset()
	// Capacity may have changed while there was no leader: every blocked
	// evaluation planned before now retries once.
	s.evals.unblock(s.store.Index())
	for _, status := range []string{structs.EvalPending, structs.EvalBlocked} {
		evals, err := s.store.Evals(status)
		if err != nil {
			s.log.Error("reading evaluations", "err", err)
			return
		}
		for _, e := range evals {
			s.evals.push(e)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watchNodes(ctx)
	}()
	// Scheduler workers in parallel; the plan applier serialises commits.
	for range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runWorker(ctx)
		}()
	}
	s.setDuties(true)
	defer s.setDuties(false)
	wg.Wait()
}

// leaderDuties returns a channel closed once this server runs the
// leader's duties (the cluster CA exists, unfinished evaluations are
// queued, the node watcher and the scheduler workers are started); once
// they stop, a new call returns a new channel.
func (s *Server) leaderDuties() <-chan struct{} {
	s.dutiesM.Lock()
	defer s.dutiesM.Unlock()
	return s.duties
}

func (s *Server) setDuties(on bool) {
	s.dutiesM.Lock()
	defer s.dutiesM.Unlock()
	select {
	case <-s.duties:
		if !on {
			s.duties = make(chan struct{})
		}
	default:
		if on {
			close(s.duties)
		}
	}
}

// jobPriority is an evaluation's priority in the broker: its job's.
func (s *Server) jobPriority(jobID string) int {
	if rec, err := s.store.Job(jobID); err == nil && rec != nil {
		return rec.Job.Priority
	}
	return 0
}

// RegisterNodes registers nodes directly through Raft, as their agents
// would, for simulations and benchmarks (cmd/strata-bench c1m); it keeps
// them alive with Heartbeat.
func (s *Server) RegisterNodes(ctx context.Context, nodes []sched.Node) error {
	sem := make(chan struct{}, 64)
	errc := make(chan error, len(nodes))
	for _, n := range nodes {
		n.ComputedClass = sched.ComputeClass(&n)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, _, err := s.apply(&state.NodeRegister{Node: n, Time: time.Now().UnixNano()})
			if err == nil {
				err = s.heartbeat(ctx, n.ID)
			}
			errc <- err
		}()
	}
	var errs []error
	for range nodes {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Heartbeat records a heartbeat for a node, as its agent's would.
func (s *Server) Heartbeat(ctx context.Context, nodeID string) error { return s.heartbeat(ctx, nodeID) }
