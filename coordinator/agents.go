package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// agentEndpoint accepts agents' QUIC connections and speaks the agent
// protocol (package internal/wire): it translates what agents send into
// commands for the state machine, one per registration or status report,
// and pushes each agent its allocations. It decides nothing about
// scheduling: what a report means for a job is the scheduling side's
// (evalTrigger). Each connection gets one goroutine reading its control
// stream, one pushing allocation changes, and one per stream the agent
// opens (a module download, the catalog stream); all stop when the connection or the endpoint closes.
type agentEndpoint struct {
	agentDeps
	ln *quic.Listener

	mu      sync.Mutex
	conns   map[*quic.Conn]struct{}
	nodes   map[string]*quic.Conn // registered connections by node ID (log streams open on them)
	changed chan struct{}         // closed when nodes changes (connsChanged)
	wg      sync.WaitGroup
}

// agentDeps is what the agent endpoint needs from the rest of the server.
type agentDeps struct {
	store *state.Store // reads: nodes, allocations, job versions
	apply applyFunc    // one command per registration or status report
	// beat records a node's heartbeat (failureDetector.heartbeat).
	beat func(ctx context.Context, nodeID string) error
	// interval is how often agents beat for the cluster's size now.
	interval func() time.Duration
	grace    time.Duration   // HeartbeatGrace: silence past the TTL and this ends a connection
	servers  func() []string // the agent endpoints agents may reach (Registered.Servers)
	// join spends a token and signs an agent's certificate (tokenIssuer.join).
	signJoin func(token, nodeID string, csr []byte) ([]byte, error)
	blobs    *blobStore
	copier   *blobCopier // a module pushed through another server
	// catalog is the service catalog agents replicate (catalogstream.go);
	// nil on a server that keeps none, which refuses the catalog stream.
	catalog *registry.Holder
	log     *slog.Logger
}

// Application error codes sent when closing an agent connection.
const (
	closeNormal   quic.ApplicationErrorCode = 0
	closeProtocol quic.ApplicationErrorCode = 1
	closeShutdown quic.ApplicationErrorCode = 2
)

// listenAgents binds the agent endpoint's UDP address.
func listenAgents(addr string, certs *serverCerts) (*quic.Listener, error) {
	tc := &tls.Config{
		GetCertificate: certs.get,
		NextProtos:     []string{wire.ALPN},
		MinVersion:     tls.VersionTLS13,
		// Mutual TLS, with one exception: an agent that has not joined
		// yet has no certificate and may only send Join (see handle).
		// The CA is read from the replicated state at each handshake,
		// so this is a custom check rather than ClientCAs.
		ClientAuth:            tls.RequestClientCert,
		VerifyPeerCertificate: certs.verifyAgentCert,
	}
	qc := &quic.Config{
		MaxIdleTimeout:  30 * time.Second,
		KeepAlivePeriod: 10 * time.Second,
	}
	ln, err := quic.ListenAddr(addr, tc, qc)
	if err != nil {
		return nil, fmt.Errorf("coordinator: agent endpoint on %s: %w", addr, err)
	}
	return ln, nil
}

func newAgentEndpoint(ln *quic.Listener, deps agentDeps) *agentEndpoint {
	return &agentEndpoint{agentDeps: deps, ln: ln, conns: map[*quic.Conn]struct{}{}, nodes: map[string]*quic.Conn{}, changed: make(chan struct{})}
}

// Addr is the bound UDP address.
func (a *agentEndpoint) Addr() string { return a.ln.Addr().String() }

func (a *agentEndpoint) serve(ctx context.Context) {
	defer a.wg.Wait()
	for {
		conn, err := a.ln.Accept(ctx)
		if err != nil {
			return
		}
		a.mu.Lock()
		a.conns[conn] = struct{}{}
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer func() {
				a.mu.Lock()
				delete(a.conns, conn)
				a.mu.Unlock()
			}()
			a.handle(ctx, conn)
		}()
	}
}

// setConn records the connection of a registered node's agent, replacing
// an older one.
func (a *agentEndpoint) setConn(nodeID string, conn *quic.Conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nodes[nodeID] = conn
	close(a.changed)
	a.changed = make(chan struct{})
}

// dropConn forgets a node's connection once it ends, unless a newer one
// replaced it.
func (a *agentEndpoint) dropConn(nodeID string, conn *quic.Conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nodes[nodeID] != conn {
		return
	}
	delete(a.nodes, nodeID)
	close(a.changed)
	a.changed = make(chan struct{})
}

// conn returns the connection of a node's agent to this server, or nil.
func (a *agentEndpoint) conn(nodeID string) *quic.Conn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nodes[nodeID]
}

// connsChanged returns a channel closed at the next change of the
// registered connections (an agent registered or its connection ended).
func (a *agentEndpoint) connsChanged() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

func (a *agentEndpoint) close() {
	a.ln.Close()
	a.mu.Lock()
	for c := range a.conns {
		c.CloseWithError(closeShutdown, "server shutting down")
	}
	a.mu.Unlock()
}

// handle runs one agent connection: the first stream is the control
// stream; every later stream the agent opens is a module download or the
// catalog stream (downloads.go, catalogstream.go). The
// server opens streams of its own for log reads (logs.go).
func (a *agentEndpoint) handle(ctx context.Context, conn *quic.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := a.log.With("remote", conn.RemoteAddr().String())
	ctrl, err := conn.AcceptStream(ctx)
	if err != nil {
		return
	}
	peer := conn.ConnectionState().TLS.PeerCertificates
	if len(peer) == 0 {
		a.join(ctrl, conn, log)
		return
	}
	reg, every, err := a.register(ctrl, peer[0].Subject.CommonName)
	if err != nil {
		log.Warn("agent registration failed", "err", err)
		refuseConn(ctrl, conn, err)
		return
	}
	log = log.With("node", reg.Name, "node_id", reg.NodeID)
	log.Info("agent connected")
	a.setConn(reg.NodeID, conn) // a reconnect replaces an older connection
	defer a.dropConn(reg.NodeID, conn)

	var wg sync.WaitGroup
	defer wg.Wait()
	var writeMu sync.Mutex // the reader answers nothing, but keep writes serialised
	var told atomic.Int64  // the heartbeat interval the agent was last told
	told.Store(int64(every))
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer cancel()
		if err := a.pushAllocs(ctx, reg.NodeID, ctrl, &writeMu, &told); err != nil && ctx.Err() == nil {
			log.Warn("pushing allocations", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		a.serveAgentStreams(ctx, conn, log)
	}()
	err = a.readControl(ctx, reg, ctrl, &told)
	stopped := ctx.Err() != nil // by the server's shutdown or a failed push, not by the agent
	cancel()
	switch {
	case err == nil || errors.Is(err, io.EOF) || stopped || closedByAgent(err):
		conn.CloseWithError(closeNormal, "")
	default:
		log.Warn("agent control stream", "err", err)
		conn.CloseWithError(closeProtocol, truncate(err.Error(), 200))
	}
	log.Info("agent disconnected")
}

// join serves a connection without a client certificate: its one frame
// must be Join; the answer is the agent's certificate or the reason not.
// The connection is closed either way: the agent reconnects with the
// certificate.
func (a *agentEndpoint) join(ctrl *quic.Stream, conn *quic.Conn, log *slog.Logger) {
	var j wire.Join
	err := func() error {
		ctrl.SetReadDeadline(time.Now().Add(10 * time.Second))
		t, payload, err := wire.Read(ctrl)
		if err != nil {
			return fmt.Errorf("reading Join: %w", err)
		}
		if t != wire.TypeJoin {
			return fmt.Errorf("this agent presented no client certificate, so its first frame must be Join, got %s: start it with -join-token (see `strata agent token create`)", t)
		}
		if err := wire.Decode(t, payload, &j); err != nil {
			return err
		}
		if j.NodeID == "" || j.Name == "" {
			return errors.New("Join needs NodeID and Name")
		}
		cert, err := a.signJoin(j.Token, j.NodeID, j.CSR)
		if err != nil {
			return err
		}
		if err := wire.Write(ctrl, wire.TypeJoined, wire.Joined{CertPEM: cert}); err != nil {
			return err
		}
		log.Info("agent joined", "node", j.Name, "node_id", j.NodeID)
		return nil
	}()
	if err != nil {
		log.Warn("agent join refused", "node", j.Name, "node_id", j.NodeID, "err", err)
		refuseConn(ctrl, conn, err)
		return
	}
	closeAfterReply(ctrl, conn, closeNormal, "")
}

// refuseConn tells the agent why it is refused, in an Error frame and in
// the connection's close reason, and closes the connection.
func refuseConn(ctrl *quic.Stream, conn *quic.Conn, err error) {
	var nl *NotLeaderError
	temporary := errors.As(err, &nl) || errors.Is(err, ErrNotLeader) || errors.Is(err, errNoCA)
	var vm *wire.VersionMismatch
	errors.As(err, &vm)
	wire.Write(ctrl, wire.TypeError, wire.Error{Message: err.Error(), Temporary: temporary, Versions: vm})
	closeAfterReply(ctrl, conn, closeProtocol, truncate(err.Error(), 200))
}

// closeAfterReply closes a connection whose last frame was just written:
// the frame gets up to a second to arrive before the close would discard
// it (the agent closes first once it has read it).
func closeAfterReply(ctrl *quic.Stream, conn *quic.Conn, code quic.ApplicationErrorCode, reason string) {
	ctrl.Close()
	select {
	case <-conn.Context().Done():
	case <-time.After(time.Second):
	}
	conn.CloseWithError(code, reason)
}

// closedByAgent reports whether err is the agent closing its connection
// without an error, as it does when it stops.
func closedByAgent(err error) bool {
	var ae *quic.ApplicationError
	return errors.As(err, &ae) && ae.Remote && ae.ErrorCode == closeNormal
}

// register reads the Register frame of an agent whose certificate names
// certNode: the agent can only register as that node.
func (a *agentEndpoint) register(ctrl *quic.Stream, certNode string) (*wire.Register, time.Duration, error) {
	ctrl.SetReadDeadline(time.Now().Add(10 * time.Second))
	t, payload, err := wire.Read(ctrl)
	if err != nil {
		return nil, 0, fmt.Errorf("reading Register: %w", err)
	}
	ctrl.SetReadDeadline(time.Time{})
	if t != wire.TypeRegister {
		return nil, 0, fmt.Errorf("first frame must be Register, got %s", t)
	}
	var reg wire.Register
	if err := wire.Decode(t, payload, &reg); err != nil {
		return nil, 0, err
	}
	version, err := wire.Negotiate(reg.Versions, wire.Versions())
	if err != nil {
		return nil, 0, err // a *wire.VersionMismatch: refuseConn names both sides' versions
	}
	if reg.NodeID == "" || reg.Name == "" {
		return nil, 0, errors.New("Register needs NodeID and Name")
	}
	if reg.NodeID != certNode {
		return nil, 0, fmt.Errorf("this agent's certificate is for node %s but it registers as node %s", certNode, reg.NodeID)
	}
	if net.ParseIP(reg.Address) == nil {
		return nil, 0, fmt.Errorf("Register: address %q is not an IP", reg.Address)
	}
	if reg.Datacenter == "" {
		reg.Datacenter = "dc1"
	}
	node := sched.Node{
		ID: reg.NodeID, Name: reg.Name, Datacenter: reg.Datacenter, Address: reg.Address,
		Drivers:    reg.Drivers,
		Capacity:   sched.Resources{CPU: reg.CPU, MemoryMB: reg.MemoryMB},
		Attributes: reg.Attributes, Meta: reg.Meta,
		Status: sched.NodeReady, Eligible: true,
	}
	for name, hv := range reg.HostVolumes {
		if node.HostVolumes == nil {
			node.HostVolumes = make(map[string]sched.HostVolume, len(reg.HostVolumes))
		}
		node.HostVolumes[name] = sched.HostVolume{Path: hv.Path, ReadOnly: hv.ReadOnly}
	}
	old, err := a.store.Node(reg.NodeID)
	if err != nil {
		return nil, 0, err
	}
	if old != nil {
		node.Eligible = old.Eligible // eligibility is the operator's, not the agent's
	}
	// The scheduler caches feasibility per computed class: set it whenever
	// the node's fingerprint is written.
	node.ComputedClass = sched.ComputeClass(&node)
	if old == nil || !reflect.DeepEqual(old.Node, node) {
		if _, _, err := a.apply(&state.NodeRegister{Node: node, Time: time.Now().UnixNano()}); err != nil {
			return nil, 0, err
		}
	}
	if err := a.beat(context.Background(), reg.NodeID); err != nil {
		a.log.Debug("forwarding heartbeat", "err", err)
	}
	every := a.interval()
	return &reg, every, wire.Write(ctrl, wire.TypeRegistered, wire.Registered{
		Version: version, NodeID: reg.NodeID, HeartbeatMillis: every.Milliseconds(), Servers: a.servers(),
	})
}

// retuneHeartbeat tells the agent a longer heartbeat interval once the
// cluster has grown past a quarter more than the TTL it was told: agents
// that registered into a small cluster would otherwise keep beating at
// its pace (1000 agents registered one by one from nothing: 356 beats/s
// instead of the 50-150/s the TTL aims for). The agent beats at once on
// a change, then at the new pace, and each step at most doubles the
// interval, so no beat lands after the deadline the leader armed at the
// previous one; the leader's deadlines follow the largest TTL it has seen.
func (a *agentEndpoint) retuneHeartbeat(ctrl *quic.Stream, mu *sync.Mutex, told *atomic.Int64) error {
	cur := time.Duration(told.Load())
	want := a.interval()
	if want*4 <= cur*5 {
		return nil
	}
	// What the agent is told is whole milliseconds: keep that, or the next
	// step doubles a value the agent never got (426.67ms sent as 426,
	// then 853 told: more than double what the agent beats at).
	next := min(want, 2*cur).Truncate(time.Millisecond)
	mu.Lock()
	err := wire.Write(ctrl, wire.TypeHeartbeatInterval, wire.HeartbeatInterval{Millis: next.Milliseconds()})
	mu.Unlock()
	if err == nil {
		told.Store(int64(next))
	}
	return err
}

// readControl reads heartbeats and status reports until the stream ends.
func (a *agentEndpoint) readControl(ctx context.Context, reg *wire.Register, ctrl *quic.Stream, told *atomic.Int64) error {
	for {
		// Silent past TTL + grace: the connection is dead; the agent redials.
		silence := time.Duration(told.Load())*heartbeatsPerTTLOnAgent + a.grace
		ctrl.SetReadDeadline(time.Now().Add(silence))
		t, payload, err := wire.Read(ctrl)
		if err != nil {
			return err
		}
		switch t {
		case wire.TypeHeartbeat:
			if err := a.beat(ctx, reg.NodeID); err != nil {
				a.log.Debug("forwarding heartbeat", "node", reg.Name, "err", err)
			}
		case wire.TypeAllocStatus:
			var st wire.AllocStatus
			if err := wire.Decode(t, payload, &st); err != nil {
				return err
			}
			if err := a.allocStatus(reg, &st); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected %s frame on the control stream", t)
		}
	}
}

// allocStatus translates a status report into one AllocUpdate for the
// state machine, or none if it repeats what the state already holds.
func (a *agentEndpoint) allocStatus(reg *wire.Register, st *wire.AllocStatus) error {
	switch st.ClientStatus {
	case sched.ClientPending, sched.ClientRunning, sched.ClientComplete, sched.ClientFailed:
	default:
		return fmt.Errorf("AllocStatus: unknown client status %q", st.ClientStatus)
	}
	u := state.ClientUpdate{AllocID: st.AllocID, ClientStatus: st.ClientStatus, Description: st.Description, TaskStates: st.TaskStates}
	if len(u.TaskStates) == 0 {
		u.TaskStates = nil
	}
	for _, e := range st.Endpoints {
		u.Endpoints = append(u.Endpoints, registry.Endpoint{
			Service: e.Service, Tags: e.Tags, AllocID: st.AllocID,
			NodeID: reg.NodeID, NodeName: reg.Name, Address: reg.Address,
			Port: e.Port, Healthy: e.Healthy, Canary: e.Canary,
		})
	}
	switch st.Health {
	case "":
	case wire.Healthy:
		u.Health, u.HealthTime = sched.HealthHealthy, st.HealthTime
	case wire.Unhealthy:
		u.Health, u.HealthTime = sched.HealthUnhealthy, st.HealthTime
	default:
		return fmt.Errorf("AllocStatus: unknown deployment health %q", st.Health)
	}
	before, err := a.store.Alloc(st.AllocID)
	if err != nil {
		return err
	}
	if before != nil && before.ClientStatus == u.ClientStatus && before.ClientDescription == u.Description &&
		(u.Health == sched.HealthUnknown || before.Health != sched.HealthUnknown) &&
		reflect.DeepEqual(before.Endpoints, u.Endpoints) && (u.TaskStates == nil || reflect.DeepEqual(before.TaskStates, u.TaskStates)) {
		return nil // nothing new: keep it out of the Raft log
	}
	_, _, err = a.apply(&state.AllocUpdate{NodeID: reg.NodeID, Time: time.Now().UnixNano(), Updates: []state.ClientUpdate{u}})
	return err
}

// pushAllocs sends the node's allocations now and after every change. It
// wakes on every commit but reads the node's allocations only when a
// commit wrote one of them.
func (a *agentEndpoint) pushAllocs(ctx context.Context, nodeID string, ctrl *quic.Stream, mu *sync.Mutex, told *atomic.Int64) error {
	var last []wire.Alloc
	var seen uint64
	first := true
	for {
		watch := a.store.Watch()
		if err := a.retuneHeartbeat(ctrl, mu, told); err != nil {
			return err
		}
		changes := a.store.NodeAllocChanges(nodeID)
		if !first && changes == seen {
			select {
			case <-ctx.Done():
				return nil
			case <-watch:
			}
			continue
		}
		seen = changes
		idx := a.store.Index()
		allocs, err := a.nodeAllocs(nodeID)
		if err != nil {
			return err
		}
		if first || !reflect.DeepEqual(allocs, last) {
			mu.Lock()
			err := wire.Write(ctrl, wire.TypeAllocs, wire.Allocs{Index: idx, Allocs: allocs})
			mu.Unlock()
			if err != nil {
				return err
			}
			a.log.Debug("allocations pushed", "node_id", nodeID, "index", idx, "allocs", len(allocs))
			last, first = allocs, false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-watch:
		}
	}
}

// nodeAllocs builds what the agent must run: every allocation on the node
// that the agent has not reported finished, with its job version's tasks.
func (a *agentEndpoint) nodeAllocs(nodeID string) ([]wire.Alloc, error) {
	allocs, err := a.store.NodeAllocs(nodeID)
	if err != nil {
		return nil, err
	}
	out := []wire.Alloc{}
	for _, al := range allocs {
		if al.ClientStatus == sched.ClientComplete || al.ClientStatus == sched.ClientFailed || al.ClientStatus == sched.ClientLost {
			continue
		}
		job, err := a.store.JobVersion(al.JobID, al.JobVersion)
		if err != nil {
			return nil, err
		}
		if job == nil {
			return nil, fmt.Errorf("allocation %s refers to missing job version %s v%d", al.ID, al.JobID, al.JobVersion)
		}
		g := job.Lookup(al.Group)
		if g == nil {
			return nil, fmt.Errorf("allocation %s refers to missing group %q", al.ID, al.Group)
		}
		wa := wire.Alloc{
			ID: al.ID, Name: al.Name, JobID: al.JobID, JobVersion: al.JobVersion,
			Group: al.Group, DesiredStatus: al.DesiredStatus, Tasks: wireTasks(g),
			Index: al.Index, Region: job.Region,
			DeploymentID: al.DeploymentID, Canary: al.Canary, Health: healthPolicy(&al.Allocation, g),
		}
		mergeMeta(job, g, wa.Tasks)
		addPayload(job, wa.Tasks)
		if g.Disconnect != nil {
			wa.StopAfterOfflineMillis = g.Disconnect.StopOnClientAfter.D().Milliseconds()
		}
		for _, p := range al.Ports {
			wa.Ports = append(wa.Ports, wire.Port{Label: p.Label, Value: p.Value, To: p.To})
		}
		out = append(out, wa)
	}
	return out, nil
}

// healthPolicy asks the agent for an allocation's deployment health: while
// its deployment has not heard it, with its group's update settings.
func healthPolicy(a *sched.Allocation, g *spec.Group) *wire.HealthPolicy {
	if a.DeploymentID == "" || a.Health != sched.HealthUnknown || g.Update == nil {
		return nil
	}
	u := g.Update
	return &wire.HealthPolicy{Mode: u.HealthCheck, MinHealthyTime: u.MinHealthyTime.D(), HealthyDeadline: u.HealthyDeadline.D()}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
