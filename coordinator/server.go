package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/internal/fsutil"
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
	// RaftMultiplier scales Raft's heartbeat, election and leader-lease
	// timeouts, as Consul's raft_multiplier does: 1 (the default) is tuned
	// for servers on one host or a LAN (a leader's loss is noticed in
	// 300–600 ms), larger values suit slower or busier networks, up to 10.
	RaftMultiplier int
	// ACLEnabled makes every HTTP API request present an ACL token that
	// grants what its route needs (http_acl.go); `strata acl bootstrap`
	// creates the first one. Every server of a cluster needs the same value.
	ACLEnabled bool
	// EventBuffer is how many events the server keeps for the event
	// stream's resumes (default 4096); older ones are dropped.
	EventBuffer int
	Logger      *slog.Logger
}

// Server is one coordinator. It builds its parts, wires each with what it
// needs (a part holds other parts or funcs, never the Server), owns their
// life cycle, and runs the leader's duties while this server leads:
//
//   - raftNode: Raft and the one proposal path (apply, propose), over
//     the state machine of package state through the fsm adapter;
//   - cluster: the other servers, the join loop, adding and removing
//     voters; rpcServer/rpcClient: the servers' RPC on the Raft port;
//   - scheduler (leader): the evaluation broker, the workers, the plan
//     applier (planApplier), the rules that turn status changes into
//     evaluations;
//   - failureDetector (leader): heartbeats as a pure state machine
//     (heartbeats) stepped with times, nodes down, allocations lost;
//   - drainer: node drains (the operator's write; the leader's steps);
//   - registrar, tokenIssuer: jobs and modules, join tokens;
//   - agentEndpoint: the agents' QUIC endpoint; logRouter: log reads;
//     blobStore and blobCopier: module bytes;
//   - httpAPI: the HTTP API over the parts above.
//
// Its exported methods (goapi.go) are the coordinator's Go API, which the
// CLI's dev mode, benchmarks and tests call; each calls the part that
// owns the operation.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *state.Store
	blobs *blobStore
	certs *serverCerts
	// catalog is the service catalog this server serves, fed by its FSM.
	catalog *catalogFeed

	node     *raftNode
	rpc      *rpcServer
	cluster  *cluster
	sched    *scheduler
	deploys  *deploymentWatcher
	periodic *periodicLauncher
	detector *failureDetector
	drainer  *drainer
	jobs     *registrar
	tokens   *tokenIssuer
	logs     *logRouter
	ops      *allocOps
	blobGC   *blobGC
	agents   *agentEndpoint
	http     *httpAPI
	metrics  *serverMetrics
	// forwarded serves the HTTP API requests other servers forward here
	// over the Raft port (leaderProxy).
	forwarded *http.Server

	dutiesM sync.Mutex
	duties  chan struct{} // closed while the leader's duties run (leaderDuties)

	cancel context.CancelFunc // ends the parts' goroutines at Shutdown
	wg     sync.WaitGroup
}

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
	if cfg.RaftMultiplier < 0 || cfg.RaftMultiplier > maxRaftMultiplier {
		return nil, fmt.Errorf("coordinator: raft multiplier %d: must be between 1 and %d", cfg.RaftMultiplier, maxRaftMultiplier)
	}
	if cfg.RaftMultiplier == 0 {
		cfg.RaftMultiplier = 1
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
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "coordinator"), duties: make(chan struct{}), node: &raftNode{}}
	ok := false
	defer func() {
		if !ok {
			if s.agents != nil {
				s.agents.close()
			}
			s.closeStores()
		}
	}()
	if err := s.node.openLog(cfg.DataDir); err != nil {
		return nil, err
	}
	var restore bool
	var catchUp uint64
	var err error
	if s.store, restore, catchUp, err = openState(filepath.Join(cfg.DataDir, "state.db"), s.node, s.log); err != nil {
		return nil, err
	}
	if s.blobs, err = newBlobStore(filepath.Join(cfg.DataDir, "modules")); err != nil {
		return nil, err
	}
	if s.catalog, err = newCatalogFeed(s.store, s.log.With("part", "catalog")); err != nil {
		return nil, err
	}
	consulAPI, err := newConsulAPI(s.catalog.holder, s.node, cfg.NodeID, s.log.With("part", "consul-api"))
	if err != nil {
		return nil, err
	}
	s.certs = &serverCerts{store: s.store}
	ln, err := listenAgents(cfg.AgentAddr, s.certs)
	if err != nil {
		return nil, err
	}
	life, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wire(ln, life, consulAPI)
	s.blobGC.after = catchUp
	if err := s.node.start(raftConfig{ID: cfg.NodeID, DataDir: cfg.DataDir, Bind: cfg.RaftAddr, Bootstrap: cfg.Bootstrap, DevMode: cfg.DevMode, Multiplier: cfg.RaftMultiplier},
		&fsm{store: s.store, hook: leaderHooks{sched: s.sched, deploys: s.deploys, periodic: s.periodic}, blobs: s.blobGC.kick, catalog: s.catalog, metrics: s.metrics, events: s.http.events.buf}, s.rpc.serve, restore); err != nil {
		cancel()
		return nil, err
	}
	s.goRun(func() { s.agents.serve(life) })
	s.goRun(func() { s.forwarded.Serve(s.node.mux.httpListener()) })
	s.goRun(func() { s.leaderLoop(life) })
	s.goRun(func() { s.cluster.Run(life) })
	s.goRun(func() { s.blobGC.Run(life) })
	ok = true
	close(s.rpc.ready)
	s.log.Info("coordinator started", "id", cfg.NodeID, "raft", s.node.addr(), "agents", s.agents.Addr())
	return s, nil
}

// wire builds the parts around the store, with the agent endpoint's
// listener ln and the Consul-compatible API; Raft (s.node) is started
// after, and life ends at Shutdown.
func (s *Server) wire(ln *quic.Listener, life context.Context, consulAPI http.Handler) {
	cfg := s.cfg
	part := func(name string) *slog.Logger { return s.log.With("part", name) }
	apply := s.node.apply // the node is started once every part exists
	rpc := &rpcClient{from: bindIP(cfg.RaftAddr)}
	*s.node = raftNode{id: cfg.NodeID, store: s.store, rpc: rpc, log: part("raft"), logDB: s.node.logDB, snaps: s.node.snaps}
	s.metrics = wireMetrics(s.store, s.node, func() *evalQueue { return s.sched.broker })
	advertise := cfg.AgentAdvertise
	if advertise == "" {
		advertise = advertisable(ln.Addr().String())
	}
	s.cluster = &cluster{id: cfg.NodeID, httpAddr: cfg.HTTPAddr, agentAddr: advertise, join: cfg.Join, expect: cfg.BootstrapExpect,
		node: s.node, rpc: rpc, log: part("cluster"), peers: map[string]*ServerInfo{}}
	rpc.self = s.cluster.info
	s.detector = &failureDetector{store: s.store, apply: apply, node: s.node, rpc: rpc, log: part("heartbeats"), ticker: heartbeatCheckInterval,
		hb: heartbeats{minTTL: cfg.MinHeartbeatTTL, grace: cfg.HeartbeatGrace, failover: cfg.FailoverGrace}}
	s.drainer = &drainer{store: s.store, apply: apply, log: part("drain"), ticker: heartbeatCheckInterval}
	plans := &planApplier{store: s.store, propose: s.node.propose, log: part("plans"), ids: newIDGen(time.Now), metrics: s.metrics}
	s.sched = newScheduler(s.store, apply, plans, cfg.Workers, part("scheduler"))
	s.sched.broker.acked = s.metrics.evalAcked
	s.detector.metrics = s.metrics
	s.deploys = newDeploymentWatcher(s.store, apply, time.Now, part("deployments"))
	s.periodic = newPeriodicLauncher(s.store, apply, time.Now, part("periodic"))
	s.jobs = &registrar{store: s.store, blobs: s.blobs, apply: apply}
	s.tokens = &tokenIssuer{store: s.store, apply: apply, certs: s.certs, agentAddr: ln.Addr().String(), peers: s.cluster.known}
	copier := &blobCopier{blobs: s.blobs, rpc: rpc, others: s.node.others}
	s.agents = newAgentEndpoint(ln, agentDeps{store: s.store, apply: apply, beat: s.detector.heartbeat, interval: s.detector.agentInterval,
		grace: cfg.HeartbeatGrace, servers: s.cluster.agentServers, signJoin: s.tokens.join, blobs: s.blobs, copier: copier, catalog: s.catalog.holder, log: part("agents")})
	s.logs = &logRouter{store: s.store, agents: s.agents, rpc: rpc, others: s.node.others, life: life}
	s.ops = &allocOps{store: s.store, apply: apply, agents: s.agents, rpc: rpc, others: s.node.others}
	s.blobGC = newBlobGC(s.store, s.blobs, part("blobs"))
	s.http = &httpAPI{store: s.store, node: s.node, cluster: s.cluster, jobs: s.jobs, tokens: s.tokens, drainer: s.drainer, logs: s.logs, detector: s.detector, ops: s.ops,
		deploys: &deployOps{store: s.store, jobs: s.jobs, apply: apply, now: time.Now},
		acls:    &aclResolver{store: s.store, enabled: cfg.ACLEnabled, now: time.Now},
		admin:   &aclAdmin{store: s.store, apply: apply, enabled: cfg.ACLEnabled, now: time.Now},
		leader:  newLeaderProxy(s.node), metrics: s.metrics,
		consul: consulAPI,
		events: &eventStream{buf: newEventBuffer(cfg.EventBuffer, s.store.Index()), heartbeat: defaultEventHeartbeat, writeTimeout: eventWriteTimeout}}
	s.http.events.acls = s.http.acls
	s.forwarded = &http.Server{Handler: s.http.handler(), ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, forwardedKey, true)
		}}
	s.rpc = &rpcServer{ready: make(chan struct{}), learn: s.cluster.learn, methods: map[string]rpcMethod{
		"info":        unary(s.cluster.rpcInfo),
		"join":        unary(s.cluster.rpcJoin),
		"remove-peer": unary(s.cluster.rpcRemovePeer),
		"apply":       unary(s.node.rpcApply),
		"read-index":  unary(s.node.rpcReadIndex),
		"heartbeat":   unary(s.detector.rpcHeartbeat),
		"logs":        s.logs.serveRPC,
		"agent-call":  unary(s.ops.serveRPC),
		"blob":        copier.serveRPC,
	}}
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
	s.cancel()
	s.agents.close()
	s.forwarded.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := s.node.shutdown()
	s.closeStores()
	return err
}

func (s *Server) closeStores() {
	s.node.close()
	if s.store != nil {
		s.store.Close()
	}
}

// leaderLoop runs the leader's duties while this server leads.
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
		case leader := <-s.node.leaderCh:
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

// lead is the leader's duties: a barrier, the cluster CA, then the
// leader-only parts (the scheduling side, the failure detector, the
// drainer) until leadership ends.
func (s *Server) lead(ctx context.Context) {
	if err := s.node.becomeLeader(); err != nil {
		s.log.Error("becoming leader", "err", err)
		return
	}
	if err := s.certs.ensureCA(s.node.apply); err != nil {
		s.log.Error("creating the cluster CA", "err", err)
	}
	err := s.sched.startLeading()
	defer s.sched.stopLeading()
	if err != nil {
		s.log.Error("loading evaluations", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, run := range []func(context.Context){s.sched.Run, s.detector.Run, s.drainer.Run, s.deploys.Run, s.periodic.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx)
		}()
	}
	s.setDuties(true)
	defer s.setDuties(false)
	wg.Wait()
}

// leaderDuties returns a channel closed once this server runs the
// leader's duties (the cluster CA exists, unfinished evaluations are
// queued, the leader-only parts are started); once they stop, a new call
// returns a new channel.
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
