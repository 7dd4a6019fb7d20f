package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// SimLink is what a simulated agent needs to reach a server.
type SimLink struct {
	AgentAddr string // the server's agent (QUIC) address
	CAPin     string // "sha256:<hex>" of the cluster CA certificate
	JoinToken string // a reusable join token every simulated agent joins with
}

// dialAndRegister connects one simulated agent to the server and
// registers its node, as edge.Agent does: it joins with the link's token
// (a Join frame with a certificate request, on a connection without a
// client certificate), then dials again with the certificate it got
// (mutual TLS) and registers. It returns the connection, the control
// stream and the server's answer. It is the only code here that knows how
// an agent proves itself to a server.
func dialAndRegister(ctx context.Context, link SimLink, reg wire.Register) (*quic.Conn, *quic.Stream, *wire.Registered, error) {
	pin, err := wire.ParsePin(link.CAPin)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bench: %w", err)
	}
	tc := &tls.Config{
		NextProtos: []string{wire.ALPN},
		MinVersion: tls.VersionTLS13,
		// Servers are identified by the pinned CA, not by name.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return wire.VerifyPinned(raw, pin)
		},
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cert, err := simJoin(ctx, link, tc, reg)
	if err != nil {
		return nil, nil, nil, err
	}
	tc.Certificates = []tls.Certificate{*cert}
	conn, err := quic.DialAddr(ctx, link.AgentAddr, tc, &quic.Config{
		MaxIdleTimeout:  30 * time.Second,
		KeepAlivePeriod: 5 * time.Second, // as edge.Agent
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dial %s: %w", link.AgentAddr, err)
	}
	fail := func(err error) (*quic.Conn, *quic.Stream, *wire.Registered, error) {
		conn.CloseWithError(0, "")
		return nil, nil, nil, err
	}
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fail(err)
	}
	reg.Versions = wire.Versions() // the protocol versions this build speaks, as edge.Agent says
	if err := wire.Write(ctrl, wire.TypeRegister, reg); err != nil {
		return fail(err)
	}
	deadline, _ := ctx.Deadline()
	ctrl.SetReadDeadline(deadline)
	var ack wire.Registered
	if err := wire.Expect(ctrl, wire.TypeRegistered, &ack); err != nil {
		var r *wire.Refusal
		if errors.As(err, &r) {
			return fail(fmt.Errorf("refused by server: %s", r.Message))
		}
		return fail(fmt.Errorf("waiting for Registered: %w", err))
	}
	ctrl.SetReadDeadline(time.Time{})
	if !slices.Contains(reg.Versions, ack.Version) {
		return fail(fmt.Errorf("the server picked protocol version %d; this build speaks %v", ack.Version, reg.Versions))
	}
	return conn, ctrl, &ack, nil
}

// simJoin spends the link's join token for reg's node and returns its
// client certificate.
func simJoin(ctx context.Context, link SimLink, tc *tls.Config, reg wire.Register) (*tls.Certificate, error) {
	conn, err := quic.DialAddr(ctx, link.AgentAddr, tc, &quic.Config{MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("dial %s to join: %w", link.AgentAddr, err)
	}
	defer conn.CloseWithError(0, "")
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	st.SetReadDeadline(deadline)
	certPEM, keyPEM, err := wire.RequestCertificate(st, link.JoinToken, reg.NodeID, reg.Name)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return &cert, err
}

// fleet is N simulated agents in this process, each with its own QUIC
// connection speaking the real protocol: Register, Heartbeat at the
// interval the server gives, Allocs received, AllocStatus "running"
// reported (after downloading and verifying the allocation's module when
// fetchModules is set). It owns one goroutine per agent reading its
// control stream, one writing it, and one per download; stop ends them.
type fleet struct {
	fetchModules bool
	agents       []*simAgent
	cancel       context.CancelFunc
	wg           sync.WaitGroup

	mu        sync.Mutex
	received  map[string]int       // job ID -> agents that received an allocation of it
	lastRecv  map[string]time.Time // job ID -> when the last of them did
	firstRecv map[string]time.Time // job ID -> when the first did
	verified  int                  // module downloads whose sha256 matched
	modBytes  int64                // bytes of those downloads
	lastDone  time.Time            // when the last of them finished
	failures  []error              // downloads that failed, links that broke
	changed   chan struct{}        // 1-buffered: something above changed
}

// simAgent is one simulated agent of a fleet.
type simAgent struct {
	f     *fleet
	reg   wire.Register
	conn  *quic.Conn
	ctrl  *quic.Stream
	every time.Duration

	mu      sync.Mutex
	pending []wire.AllocStatus
	wake    chan struct{}      // 1-buffered: pending grew
	retune  chan time.Duration // 1-buffered: the server's new heartbeat interval
	seen    map[string]bool
	stopped map[string]bool // allocations reported complete after a stop
}

// simNodeRegister is simulated node i's registration: big enough for any
// benchmark job, with the wasm driver.
func simNodeRegister(prefix string, i int) wire.Register {
	name := fmt.Sprintf("%s-%05d", prefix, i)
	return wire.Register{NodeID: name, Name: name, Datacenter: "dc1", Address: "127.0.0.1",
		CPU: 16000, MemoryMB: 32768, Drivers: map[string]bool{"wasm": true}}
}

// startFleet dials and registers n agents, dialConcurrency at a time,
// and returns once all have registered (or the first failure, after
// stopping those that had).
func startFleet(ctx context.Context, link SimLink, n int, prefix string, fetchModules bool) (*fleet, error) {
	const dialConcurrency = 32
	fctx, cancel := context.WithCancel(context.Background())
	f := &fleet{fetchModules: fetchModules, cancel: cancel, received: map[string]int{},
		lastRecv: map[string]time.Time{}, firstRecv: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	f.agents = make([]*simAgent, n)
	sem := make(chan struct{}, dialConcurrency)
	errc := make(chan error, n)
	var dials sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		dials.Go(func() {
			defer func() { <-sem }()
			reg := simNodeRegister(prefix, i)
			conn, ctrl, ack, err := dialAndRegister(ctx, link, reg)
			if err != nil {
				errc <- fmt.Errorf("agent %s: %w", reg.Name, err)
				return
			}
			a := &simAgent{f: f, reg: reg, conn: conn, ctrl: ctrl, every: time.Duration(ack.HeartbeatMillis) * time.Millisecond,
				wake: make(chan struct{}, 1), retune: make(chan time.Duration, 1), seen: map[string]bool{}, stopped: map[string]bool{}}
			f.agents[i] = a
			f.wg.Go(func() { a.run(fctx) })
		})
	}
	dials.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		f.stop()
		return nil, fmt.Errorf("%d of %d agents failed to register, first: %w", len(errs), n, errs[0])
	}
	return f, nil
}

// stop closes every agent's connection and waits for its goroutines.
func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

func (f *fleet) notify() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// waitFor returns when cond (called with f.mu held) holds, or fails
// after timeout.
func (f *fleet) waitFor(ctx context.Context, what string, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting until %s: %w", what, ctx.Err())
		case <-f.changed:
		}
	}
}

func (f *fleet) fail(err error) {
	f.mu.Lock()
	f.failures = append(f.failures, err)
	f.mu.Unlock()
	f.notify()
}

// run is the agent until ctx ends or its link breaks.
func (a *simAgent) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		a.conn.CloseWithError(0, "")
		wg.Wait()
	}()
	wg.Go(func() {
		defer cancel()
		if err := a.readAllocs(ctx, &wg); err != nil && ctx.Err() == nil {
			a.f.fail(fmt.Errorf("agent %s: reading the control stream: %w", a.reg.Name, err))
		}
	})
	if err := a.writeControl(ctx); err != nil && ctx.Err() == nil {
		a.f.fail(fmt.Errorf("agent %s: writing the control stream: %w", a.reg.Name, err))
	}
}

// writeControl heartbeats on a ticker and sends status reports as they come.
func (a *simAgent) writeControl(ctx context.Context) error {
	every := a.every
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		a.mu.Lock()
		out := a.pending
		a.pending = nil
		a.mu.Unlock()
		for _, st := range out {
			if err := wire.Write(a.ctrl, wire.TypeAllocStatus, st); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := wire.Write(a.ctrl, wire.TypeHeartbeat, wire.Heartbeat{}); err != nil {
				return err
			}
		case d := <-a.retune: // beat now, then at the new pace, as edge.Agent does
			if err := wire.Write(a.ctrl, wire.TypeHeartbeat, wire.Heartbeat{}); err != nil {
				return err
			}
			tick.Reset(d)
		case <-a.wake:
		}
	}
}

func (a *simAgent) report(st wire.AllocStatus) {
	a.mu.Lock()
	a.pending = append(a.pending, st)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// readAllocs takes each new allocation: records it, then (after its
// module's download, on a goroutine in wg) reports it running.
func (a *simAgent) readAllocs(ctx context.Context, wg *sync.WaitGroup) error {
	for {
		t, payload, err := wire.Read(a.ctrl)
		if err != nil {
			return err
		}
		if t == wire.TypeHeartbeatInterval {
			var hi wire.HeartbeatInterval
			if err := wire.Decode(t, payload, &hi); err != nil || hi.Millis <= 0 {
				return fmt.Errorf("bad %s frame: %v", t, err)
			}
			select { // keep only the latest, as edge.Agent does
			case <-a.retune:
			default:
			}
			a.retune <- time.Duration(hi.Millis) * time.Millisecond
			continue
		}
		if t != wire.TypeAllocs {
			return fmt.Errorf("unexpected %s frame", t)
		}
		now := time.Now()
		var m wire.Allocs
		if err := wire.Decode(t, payload, &m); err != nil {
			return err
		}
		for _, al := range m.Allocs {
			if al.DesiredStatus != "run" {
				if a.seen[al.ID] && !a.stopped[al.ID] {
					a.stopped[al.ID] = true
					a.report(wire.AllocStatus{AllocID: al.ID, ClientStatus: "complete", Description: "stopped"})
				}
				continue
			}
			if a.seen[al.ID] {
				continue
			}
			a.seen[al.ID] = true
			a.f.mu.Lock()
			a.f.received[al.JobID]++
			a.f.lastRecv[al.JobID] = now
			if _, ok := a.f.firstRecv[al.JobID]; !ok {
				a.f.firstRecv[al.JobID] = now
			}
			a.f.mu.Unlock()
			a.f.notify()
			digest := moduleOf(al)
			if !a.f.fetchModules || digest == "" {
				a.report(a.running(al))
				continue
			}
			wg.Go(func() {
				n, err := a.download(ctx, digest)
				a.f.mu.Lock()
				if err == nil {
					a.f.verified++
					a.f.modBytes += n
					a.f.lastDone = time.Now()
				} else if ctx.Err() == nil {
					a.f.failures = append(a.f.failures, fmt.Errorf("agent %s: %w", a.reg.Name, err))
				}
				a.f.mu.Unlock()
				a.f.notify()
				if err != nil {
					a.report(wire.AllocStatus{AllocID: al.ID, ClientStatus: "failed", Description: err.Error()})
					return
				}
				a.report(a.running(al))
			})
		}
	}
}

// running is an allocation's report once it runs: with the deployment
// health its deployment asks for, healthy at once (a simulated agent has
// no checks to wait for).
func (a *simAgent) running(al wire.Alloc) wire.AllocStatus {
	st := wire.AllocStatus{AllocID: al.ID, ClientStatus: "running"}
	if al.Health != nil {
		st.Health, st.HealthTime = wire.Healthy, time.Now().UnixNano()
	}
	return st
}

func moduleOf(al wire.Alloc) string {
	for _, t := range al.Tasks {
		if t.Config.ModuleDigest != "" {
			return t.Config.ModuleDigest
		}
	}
	return ""
}

// download fetches a module on its own stream, as the agent does, and
// checks its sha256 as the bytes arrive (they are not kept).
func (a *simAgent) download(ctx context.Context, digest string) (int64, error) {
	st, err := a.conn.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	defer st.CancelRead(0)
	stop := context.AfterFunc(ctx, func() { st.CancelRead(0) })
	defer stop()
	if err := wire.Write(st, wire.TypeFetchModule, wire.FetchModule{Digest: digest}); err != nil {
		return 0, err
	}
	st.Close()
	t, payload, err := wire.Read(st)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	var hdr wire.ModuleHeader
	if t != wire.TypeModule {
		return 0, fmt.Errorf("download %s: expected Module, got %s", digest, t)
	}
	if err := wire.Decode(t, payload, &hdr); err != nil {
		return 0, err
	}
	if hdr.Error != "" {
		return 0, fmt.Errorf("download %s: server: %s", digest, hdr.Error)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(st, hdr.Size))
	if err == nil && n < hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, fmt.Errorf("download %s: %d of %d bytes: %w", digest, n, hdr.Size, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, fmt.Errorf("download %s: bytes hash to %s", digest, got)
	}
	return n, nil
}
