package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/wasmhost"
)

// Config configures an agent.
type Config struct {
	// Servers are the coordinators' agent (QUIC) addresses; tried in turn.
	Servers []string
	// CAPin is "sha256:<hex>" of the cluster CA certificate. The agent
	// refuses a server whose certificate chain does not end in it.
	CAPin string
	// JoinToken ("<id>.<secret>") is spent once to get the agent's client
	// certificate; an agent that has one (in DataDir) needs no token.
	JoinToken string
	// DataDir holds node-id, modules/ (downloaded modules) and
	// wasm-cache/ (compiled code).
	DataDir    string
	NodeName   string // default: host name
	Datacenter string // default "dc1"
	// BindAddr is the IP tasks listen on and advertise; default 127.0.0.1.
	BindAddr string
	// DockerHost is the Docker Engine's address for the docker driver
	// ("unix:///var/run/docker.sock", "tcp://host:2375"); "" means
	// $DOCKER_HOST, else the default socket. The driver is offered when the
	// Engine answers at start.
	DockerHost string
	Meta       map[string]string
	// ModuleCacheMB bounds the downloaded modules kept on disk (default
	// 1024): past it, the least recently used ones that no current
	// allocation references are removed.
	ModuleCacheMB int
	Logger        *slog.Logger
}

// DefaultModuleCacheMB is Config.ModuleCacheMB's default.
const DefaultModuleCacheMB = 1024

// Agent is an edge agent: one QUIC session to a coordinator, the local
// allocation runners, and the wasm host.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	nodeID string
	host   *wasmhost.Host
	mods   *moduleCache
	local  *localState
	fp     fingerprint
	docker *dockerDriver    // nil when no Docker Engine answered at start
	cert   *tls.Certificate // client certificate; nil until joined (Run's goroutine only)
	// tickets keeps TLS session tickets across reconnects, so a
	// reconnect resumes the TLS session (no certificate exchange).
	tickets tls.ClientSessionCache
	// sessions and resumed count registrations and those on a resumed
	// TLS session.
	sessions, resumed atomic.Int64
	// beatEvery is the heartbeat interval the server last asked for.
	beatEvery atomic.Int64

	serversMu sync.Mutex
	servers   []string // the flags' servers, then those learned from the cluster

	connMu sync.Mutex
	conn   *quic.Conn    // current session, nil while disconnected
	connCh chan struct{} // closed when conn changes

	runMu   sync.Mutex
	runners map[string]*allocRunner
	wg      sync.WaitGroup // runners

	registered     chan struct{} // closed after the first registration
	registeredOnce sync.Once

	statMu    sync.Mutex
	statuses  map[string]wire.AllocStatus // latest per alloc
	dirty     map[string]bool             // not yet sent on the current session
	statReady chan struct{}               // 1-buffered wake-up for the writer

	logStreams atomic.Int64 // log streams being served (logs.go)
}

// New prepares an agent: data dir, node identity, wasm host, fingerprint.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("edge: no servers to connect to")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("edge: DataDir is required")
	}
	if _, err := wire.ParsePin(cfg.CAPin); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	if cfg.Datacenter == "" {
		cfg.Datacenter = "dc1"
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1"
	}
	if net.ParseIP(cfg.BindAddr) == nil {
		return nil, fmt.Errorf("edge: bind address %q is not an IP", cfg.BindAddr)
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ModuleCacheMB == 0 {
		cfg.ModuleCacheMB = DefaultModuleCacheMB
	}
	if cfg.ModuleCacheMB < 0 {
		return nil, fmt.Errorf("edge: module cache size %d MB is negative", cfg.ModuleCacheMB)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	id, err := fsutil.PersistentID(filepath.Join(cfg.DataDir, "node-id"))
	if err != nil {
		return nil, fmt.Errorf("edge: node identity: %w", err)
	}
	mods, err := newModuleCache(filepath.Join(cfg.DataDir, "modules"), int64(cfg.ModuleCacheMB)<<20,
		cfg.Logger.With("component", "agent", "part", "modules"))
	if err != nil {
		return nil, err
	}
	cert, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if cert == nil && cfg.JoinToken == "" {
		return nil, errors.New("edge: this agent has not joined the cluster yet: start it with -join-token (create one on a server with `strata agent token create`)")
	}
	local, err := openLocalState(filepath.Join(cfg.DataDir, "agent.db"))
	if err != nil {
		return nil, err
	}
	host, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: filepath.Join(cfg.DataDir, "wasm-cache"), Logger: cfg.Logger})
	if err != nil {
		local.close()
		return nil, fmt.Errorf("edge: wasm host: %w", err)
	}
	a := &Agent{
		cfg: cfg, log: cfg.Logger.With("component", "agent"), nodeID: id, host: host, mods: mods, local: local, cert: cert,
		fp:       fingerprintHost(),
		tickets:  tls.NewLRUClientSessionCache(8),
		connCh:   make(chan struct{}),
		runners:  map[string]*allocRunner{},
		statuses: map[string]wire.AllocStatus{}, dirty: map[string]bool{},
		statReady:  make(chan struct{}, 1),
		registered: make(chan struct{}),
	}
	if a.docker = connectDocker(ctx, cfg.DockerHost, a.log); a.docker != nil {
		a.fp.addDriver("docker", a.docker.version.Version)
	}
	a.learnServers(cfg.Servers, false)
	if known, err := local.servers(); err == nil {
		a.learnServers(known, false)
	}
	return a, nil
}

// Registered is closed once the agent has first registered with a server.
func (a *Agent) Registered() <-chan struct{} { return a.registered }

// NodeID is the agent's persistent identity.
func (a *Agent) NodeID() string { return a.nodeID }

// Run connects to the servers and keeps the agent's allocations in the
// state the servers ask for, until ctx ends; then it stops every task.
// Tasks keep running while the link is down.
func (a *Agent) Run(ctx context.Context) error {
	defer a.shutdown()
	a.removeStaleContainers(ctx)
	// Run what the servers last asked for, from local state, before any
	// server answers: a rebooted edge host serves again at once.
	if stored, err := a.local.load(); err != nil {
		a.log.Error("reading local state", "err", err)
	} else if len(stored) > 0 {
		a.log.Info("restoring allocations from local state", "allocs", len(stored))
		a.reconcile(ctx, stored)
	}
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	offlineSince := time.Now()
	for i := 0; ; i++ {
		server := a.serverList()[i%len(a.serverList())]
		var err error
		if a.cert == nil {
			a.cert, err = a.join(ctx, server)
			var refused *joinRefusedError
			var pin *pinMismatchError
			if errors.As(err, &refused) || errors.As(err, &pin) {
				return err // the same token or pin cannot succeed later
			}
		}
		if a.cert != nil {
			err = a.session(ctx, server)
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errSessionWasUp) {
			offlineSince = time.Now()
		}
		a.stopOfflineAllocs(time.Since(offlineSince))
		var refused *refusedError
		if errors.As(err, &refused) {
			a.log.Error("server refused this agent", "server", server, "err", err)
		} else {
			a.log.Warn("link to server lost", "server", server, "err", err)
		}
		if err == nil || errors.Is(err, errSessionWasUp) {
			backoff.reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff.next()):
		}
	}
}

// learnServers adds server addresses to the dial list (and, when they
// come from the cluster, to local state).
func (a *Agent) learnServers(addrs []string, persist bool) {
	a.serversMu.Lock()
	var added []string
	for _, s := range addrs {
		if s != "" && !slices.Contains(a.servers, s) {
			a.servers = append(a.servers, s)
			added = append(added, s)
		}
	}
	a.serversMu.Unlock()
	if persist && len(added) > 0 {
		if err := a.local.addServers(added); err != nil {
			a.log.Warn("saving learned servers", "err", err)
		}
	}
}

func (a *Agent) serverList() []string {
	a.serversMu.Lock()
	defer a.serversMu.Unlock()
	return slices.Clone(a.servers)
}

// stopOfflineAllocs stops the allocations whose group asked to be stopped
// after this long without the servers (disconnect.stop_on_client_after).
// It is checked between reconnection attempts, at most 5s apart.
func (a *Agent) stopOfflineAllocs(offline time.Duration) {
	a.runMu.Lock()
	defer a.runMu.Unlock()
	for id, r := range a.runners {
		limit := time.Duration(r.alloc.StopAfterOfflineMillis) * time.Millisecond
		if limit <= 0 || offline < limit {
			continue
		}
		a.log.Warn("stopping allocation: no server reachable for longer than stop_on_client_after",
			"alloc", r.alloc.Name, "offline", offline.Round(time.Second), "limit", limit)
		desc := fmt.Sprintf("stopped by the agent after %s without a server (stop_on_client_after)", offline.Round(time.Second))
		r.stop(desc)
		delete(a.runners, id)
		a.report(wire.AllocStatus{AllocID: id, ClientStatus: "complete", Description: desc, TaskStates: r.taskStates()})
	}
}

// errSessionWasUp marks a session that registered before it ended.
var errSessionWasUp = errors.New("session ended")

// refusedError is the server's own reason for refusing the agent.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return "refused by server: " + e.msg }

// tlsConfig is the client side of the link: the server must chain to the
// pinned CA; cert, if any, is presented for mutual TLS. The returned
// error pointer holds the pin check's failure after a failed dial, which
// quic-go reports only as a TLS alert.
func (a *Agent) tlsConfig(cert *tls.Certificate) (*tls.Config, *error) {
	pin, _ := wire.ParsePin(a.cfg.CAPin)
	pinErr := new(error)
	tc := &tls.Config{
		NextProtos: []string{wire.ALPN},
		MinVersion: tls.VersionTLS13,
		// The server's name is not checked: servers are identified by the
		// pinned cluster CA, which VerifyPeerCertificate enforces.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			err := wire.VerifyPinned(raw, pin)
			*pinErr = err
			return err
		},
	}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
		tc.ClientSessionCache = a.tickets
	}
	return tc, pinErr
}

// dialServer dials one QUIC connection on its own UDP socket and
// transport. The transport uses 8-byte connection IDs: quic-go's DialAddr
// gives clients zero-length ones, and then a server has no connection ID
// to validate a new path with, so a NAT rebinding or a change of network
// would kill the connection instead of migrating it. release closes the
// connection, the transport and the socket.
func dialServer(ctx context.Context, server string, tc *tls.Config, qc *quic.Config) (*quic.Conn, func(), error) {
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, nil, err
	}
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, nil, err
	}
	tr := &quic.Transport{Conn: udp, ConnectionIDLength: 8}
	closeAll := func() {
		tr.Close()
		udp.Close()
	}
	conn, err := tr.Dial(ctx, raddr, tc, qc)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return conn, func() {
		conn.CloseWithError(0, "")
		closeAll()
	}, nil
}

// register opens the control stream and registers the node.
func (a *Agent) register(ctx context.Context, conn *quic.Conn) (*quic.Stream, *wire.Registered, error) {
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, nil, err
	}
	reg := wire.Register{
		NodeID: a.nodeID, Name: a.cfg.NodeName, Datacenter: a.cfg.Datacenter, Address: a.cfg.BindAddr,
		CPU: a.fp.cpuMHz, MemoryMB: a.fp.memoryMB, Drivers: a.fp.drivers, Attributes: a.fp.attributes, Meta: a.cfg.Meta,
	}
	if err := wire.Write(ctrl, wire.TypeRegister, reg); err != nil {
		return nil, nil, err
	}
	ctrl.SetReadDeadline(time.Now().Add(10 * time.Second))
	t, payload, err := wire.Read(ctrl)
	if err != nil {
		return nil, nil, fmt.Errorf("waiting for Registered: %w", err)
	}
	ctrl.SetReadDeadline(time.Time{})
	if t == wire.TypeError {
		var e wire.Error
		wire.Decode(t, payload, &e)
		return nil, nil, &refusedError{msg: e.Message}
	}
	var ack wire.Registered
	if t != wire.TypeRegistered {
		return nil, nil, fmt.Errorf("expected Registered, got %s", t)
	}
	if err := wire.Decode(t, payload, &ack); err != nil {
		return nil, nil, err
	}
	return ctrl, &ack, nil
}

// session runs one connection to one server until it fails or ctx ends.
func (a *Agent) session(ctx context.Context, server string) error {
	tc, pinErr := a.tlsConfig(a.cert)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, release, err := dialServer(dctx, server, tc, &quic.Config{
		// The agent gives up on a silent server after 15 s (the server
		// allows 30): after a partition heals, a session the server has
		// already closed is noticed that much sooner, so the agent
		// reconnects and stops what the cluster replaced.
		MaxIdleTimeout:  15 * time.Second,
		KeepAlivePeriod: 5 * time.Second,
	})
	cancel()
	if err != nil {
		if *pinErr != nil {
			return &pinMismatchError{*pinErr}
		}
		return fmt.Errorf("dial %s: %w", server, err)
	}
	defer release()
	ctrl, ack, err := a.register(ctx, conn)
	if err != nil {
		return err
	}
	a.sessions.Add(1)
	resumed := conn.ConnectionState().TLS.DidResume
	if resumed {
		a.resumed.Add(1)
	}
	a.log.Info("registered", "server", server, "node_id", a.nodeID, "resumed", resumed)
	a.learnServers(ack.Servers, true)
	a.setConn(conn)
	defer a.setConn(nil)
	a.markAllDirty()
	a.registeredOnce.Do(func() { close(a.registered) })

	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	errc := make(chan error, 2)
	retune := make(chan time.Duration, 1) // the server's new heartbeat interval, latest only
	go func() { errc <- a.readAllocs(sctx, ctrl, retune) }()
	go func() {
		errc <- a.writeControl(sctx, ctrl, time.Duration(ack.HeartbeatMillis)*time.Millisecond, retune)
	}()
	streamsDone := make(chan struct{})
	go func() {
		defer close(streamsDone)
		a.acceptStreams(sctx, conn) // log streams the server opens
	}()
	err = <-errc
	scancel()
	ctrl.CancelRead(0)
	ctrl.Close()
	<-errc
	<-streamsDone
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("%w: %v", errSessionWasUp, err)
}

func (a *Agent) setConn(c *quic.Conn) {
	a.connMu.Lock()
	a.conn = c
	close(a.connCh)
	a.connCh = make(chan struct{})
	a.connMu.Unlock()
}

func (a *Agent) readAllocs(ctx context.Context, ctrl *quic.Stream, retune chan time.Duration) error {
	for {
		t, payload, err := wire.Read(ctrl)
		if err != nil {
			return err
		}
		switch t {
		case wire.TypeAllocs:
			var m wire.Allocs
			if err := wire.Decode(t, payload, &m); err != nil {
				return err
			}
			a.log.Debug("allocations received", "index", m.Index, "allocs", len(m.Allocs))
			if err := a.local.save(m.Allocs); err != nil {
				a.log.Error("saving local state", "err", err)
			}
			a.reconcile(ctx, m.Allocs)
		case wire.TypeHeartbeatInterval:
			var hi wire.HeartbeatInterval
			if err := wire.Decode(t, payload, &hi); err != nil {
				return err
			}
			if hi.Millis <= 0 {
				return fmt.Errorf("server sent a heartbeat interval of %dms", hi.Millis)
			}
			select { // keep only the latest
			case <-retune:
			default:
			}
			retune <- time.Duration(hi.Millis) * time.Millisecond
		case wire.TypeError:
			var e wire.Error
			wire.Decode(t, payload, &e)
			return &refusedError{msg: e.Message}
		default:
			return fmt.Errorf("unexpected %s frame from server", t)
		}
	}
}

// writeControl is the only writer of the control stream: heartbeats on a
// ticker, status reports as they change.
func (a *Agent) writeControl(ctx context.Context, ctrl *quic.Stream, every time.Duration, retune <-chan time.Duration) error {
	if every <= 0 {
		every = time.Second
	}
	a.beatEvery.Store(int64(every))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		for _, st := range a.takeDirty() {
			if err := wire.Write(ctrl, wire.TypeAllocStatus, st); err != nil {
				a.markDirty(st.AllocID)
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := wire.Write(ctrl, wire.TypeHeartbeat, wire.Heartbeat{}); err != nil {
				return err
			}
		case d := <-retune:
			// Beat now, then at the new pace: a reset ticker would
			// otherwise add the new interval to the time already waited.
			a.log.Debug("heartbeat interval changed", "from", time.Duration(a.beatEvery.Load()), "to", d)
			if err := wire.Write(ctrl, wire.TypeHeartbeat, wire.Heartbeat{}); err != nil {
				return err
			}
			a.beatEvery.Store(int64(d))
			tick.Reset(d)
		case <-a.statReady:
		}
	}
}

// report records an allocation's status to be sent (now, or on reconnect).
func (a *Agent) report(st wire.AllocStatus) {
	a.statMu.Lock()
	a.statuses[st.AllocID] = st
	a.dirty[st.AllocID] = true
	a.statMu.Unlock()
	select {
	case a.statReady <- struct{}{}:
	default:
	}
}

func (a *Agent) markDirty(id string) {
	a.statMu.Lock()
	a.dirty[id] = true
	a.statMu.Unlock()
}

func (a *Agent) markAllDirty() {
	a.statMu.Lock()
	for id := range a.statuses {
		a.dirty[id] = true
	}
	a.statMu.Unlock()
}

func (a *Agent) takeDirty() []wire.AllocStatus {
	a.statMu.Lock()
	defer a.statMu.Unlock()
	out := make([]wire.AllocStatus, 0, len(a.dirty))
	for id := range a.dirty {
		out = append(out, a.statuses[id])
	}
	clear(a.dirty)
	return out
}

func (a *Agent) forgetStatus(id string) {
	a.statMu.Lock()
	delete(a.statuses, id)
	delete(a.dirty, id)
	a.statMu.Unlock()
}

// reconcile brings the local runners to the server's desired set.
func (a *Agent) reconcile(ctx context.Context, desired []wire.Alloc) {
	want := make(map[string]wire.Alloc, len(desired))
	modules := map[string]bool{}
	for _, al := range desired {
		want[al.ID] = al
		if al.DesiredStatus != "run" {
			continue
		}
		for _, t := range al.Tasks {
			if t.Config.ModuleDigest != "" {
				modules[t.Config.ModuleDigest] = true
			}
		}
	}
	// Before any runner starts fetching: what they need is never evicted.
	a.mods.setInUse(modules)
	a.runMu.Lock()
	defer a.runMu.Unlock()
	final := map[string]map[string]*wire.TaskState{} // task states of the runners stopped here
	for id, r := range a.runners {
		al, ok := want[id]
		if !ok || al.DesiredStatus != "run" {
			r.stop("stopped by the coordinator")
			delete(a.runners, id)
			final[id] = r.taskStates()
			if !ok {
				a.forgetStatus(id)
				a.forgetTaskStates(id)
			}
		}
	}
	for id, al := range want {
		if al.DesiredStatus != "run" {
			// Stopped by the server while we were not running it (or
			// after the runner above was stopped): confirm it is done.
			if _, ok := a.runners[id]; !ok {
				a.confirmStopped(al, final[id])
			}
			continue
		}
		if _, ok := a.runners[id]; ok {
			continue
		}
		if a.finished(id) {
			continue // an allocation ID never runs again once it ended here
		}
		r := newAllocRunner(a, al, a.storedTaskStates(id))
		a.runners[id] = r
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			r.run()
		}()
	}
}

// finished reports whether this agent last reported id complete or failed.
func (a *Agent) finished(id string) bool {
	a.statMu.Lock()
	defer a.statMu.Unlock()
	st, ok := a.statuses[id]
	return ok && (st.ClientStatus == "complete" || st.ClientStatus == "failed")
}

// confirmStopped reports a stopped allocation complete once, so the
// server can free its resources; states are its tasks' final states when
// a runner was just stopped (else the last reported ones are kept).
func (a *Agent) confirmStopped(al wire.Alloc, states map[string]*wire.TaskState) {
	a.statMu.Lock()
	st, ok := a.statuses[al.ID]
	a.statMu.Unlock()
	if ok && (st.ClientStatus == "complete" || st.ClientStatus == "failed") {
		return
	}
	if states == nil {
		states = st.TaskStates
	}
	a.report(wire.AllocStatus{AllocID: al.ID, ClientStatus: "complete", Description: "stopped by the coordinator", TaskStates: states})
}

// storedTaskStates are an allocation's task states kept in local state
// (from before an agent restart), or nil.
func (a *Agent) storedTaskStates(id string) map[string]*wire.TaskState {
	if a.local == nil {
		return nil
	}
	states, err := a.local.taskStates(id)
	if err != nil {
		a.log.Warn("reading stored task states", "alloc_id", id, "err", err)
	}
	return states
}

// forgetTaskStates drops an allocation's stored task states once the
// servers no longer list it (they hold its last reported states).
func (a *Agent) forgetTaskStates(id string) {
	if a.local == nil {
		return
	}
	if err := a.local.deleteTaskStates(id); err != nil {
		a.log.Warn("deleting task states", "alloc_id", id, "err", err)
	}
}

func (a *Agent) shutdown() {
	a.runMu.Lock()
	for id, r := range a.runners {
		r.stop("the agent is shutting down")
		delete(a.runners, id)
	}
	a.runMu.Unlock()
	a.wg.Wait()
	a.host.Close(context.Background())
	a.local.close()
}

// fetchModule returns a module's bytes from the local cache, downloading
// what is missing from the server on its own stream; a download broken
// with the link resumes on the next session.
func (a *Agent) fetchModule(ctx context.Context, digest string) ([]byte, error) {
	return a.mods.fetch(ctx, digest, a.openDownload)
}

// openDownload asks the server for digest's bytes from offset on a new
// stream of a live session, waiting for one if the link is down.
func (a *Agent) openDownload(ctx context.Context, digest string, offset int64) (wire.ModuleHeader, io.ReadCloser, error) {
	conn, err := a.liveConn(ctx)
	if err != nil {
		return wire.ModuleHeader{}, nil, err
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return wire.ModuleHeader{}, nil, fmt.Errorf("open download stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(0) })
	body := &downloadStream{st: st, stop: stop}
	if err := wire.Write(st, wire.TypeFetchModule, wire.FetchModule{Digest: digest, Offset: offset}); err != nil {
		body.Close()
		return wire.ModuleHeader{}, nil, err
	}
	st.Close() // nothing more to send
	t, payload, err := wire.Read(st)
	if err != nil {
		body.Close()
		return wire.ModuleHeader{}, nil, err
	}
	var hdr wire.ModuleHeader
	if t != wire.TypeModule {
		body.Close()
		return hdr, nil, fmt.Errorf("expected Module frame, got %s", t)
	}
	if err := wire.Decode(t, payload, &hdr); err != nil {
		body.Close()
		return hdr, nil, err
	}
	return hdr, body, nil
}

// downloadStream is a download's byte stream; Close abandons what is unread.
type downloadStream struct {
	st   *quic.Stream
	stop func() bool
}

func (d *downloadStream) Read(p []byte) (int, error) { return d.st.Read(p) }

func (d *downloadStream) Close() error {
	d.stop()
	d.st.CancelRead(0)
	return d.st.Close()
}

// liveConn waits for a session whose connection is not closed.
func (a *Agent) liveConn(ctx context.Context) (*quic.Conn, error) {
	for {
		a.connMu.Lock()
		c, ch := a.conn, a.connCh
		a.connMu.Unlock()
		if c != nil && c.Context().Err() == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

const maxModuleSize = 256 << 20

// backoff is a capped exponential backoff with full jitter.
type backoff struct {
	base, max, cur time.Duration
}

func newBackoff(base, max time.Duration) *backoff { return &backoff{base: base, max: max, cur: base} }

func (b *backoff) next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(b.cur*2, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.base }
