package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/sched"
)

func startTestServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{DataDir: t.TempDir(), Bootstrap: true, DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	waitLeading(t, s)
	return s
}

// dialAgent connects as node "n1", with a client certificate got by
// joining with a token.
func dialAgent(t *testing.T, s *Server) *quic.Conn {
	t.Helper()
	return dialTLS(t, s, agentTLS(t, s, "n1"))
}

func dialTLS(t *testing.T, s *Server, tc *tls.Config) *quic.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, s.AgentAddr(), tc, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

// serverTLS trusts the cluster CA and presents no certificate.
func serverTLS(s *Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM())
	return &tls.Config{RootCAs: pool, ServerName: "server.strata", NextProtos: []string{wire.ALPN}}
}

// joinAs runs the Join exchange with token for nodeID and returns the
// server's answer: a certificate, or the Error frame's message.
func joinAs(t *testing.T, s *Server, token, nodeID string) (*tls.Certificate, *wire.Error) {
	t.Helper()
	conn := dialTLS(t, s, serverTLS(s))
	st, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	certPEM, keyPEM, err := wire.RequestCertificate(st, token, nodeID, nodeID)
	var refusal *wire.Refusal
	if errors.As(err, &refusal) {
		return nil, (*wire.Error)(refusal)
	}
	if err != nil {
		t.Fatalf("join %s: %v", nodeID, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &cert, nil
}

// agentTLS joins nodeID with a fresh one-time token and returns the
// mutual-TLS config it then dials with.
func agentTLS(t *testing.T, s *Server, nodeID string) *tls.Config {
	t.Helper()
	// An agent joins once and keeps its certificate: a fake agent that
	// reconnects dials with the one it got (a second join for a
	// registered node is refused).
	key := agentCertKey{s, nodeID}
	if tc, ok := agentCerts.Load(key); ok {
		return tc.(*tls.Config).Clone()
	}
	tok, err := s.CreateJoinToken(structs.JoinTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cert, refusal := joinAs(t, s, tok.Secret, nodeID)
	if refusal != nil {
		t.Fatalf("join %s refused: %s", nodeID, refusal.Message)
	}
	tc := serverTLS(s)
	tc.Certificates = []tls.Certificate{*cert}
	agentCerts.Store(key, tc)
	t.Cleanup(func() { agentCerts.Delete(key) })
	return tc.Clone()
}

type agentCertKey struct {
	s    *Server
	node string
}

// agentCerts are the fake agents' client configurations, by server and node.
var agentCerts sync.Map

// Garbage on the control stream closes that agent's connection with a
// reason; the server keeps serving other agents.
func TestAgentEndpointRefusesGarbage(t *testing.T) {
	s := startTestServer(t)
	cases := map[string][]byte{
		"oversized frame": {0xff, 0xff, 0xff, 0xff, 1},
		"unknown type":    {0, 0, 0, 3, 200, '{', '}'},
		"not register":    {0, 0, 0, 3, byte(wire.TypeHeartbeat), '{', '}'},
		"bad json":        {0, 0, 0, 4, byte(wire.TypeRegister), '{', 'x', '}'},
	}
	for name, garbage := range cases {
		t.Run(name, func(t *testing.T) {
			conn := dialAgent(t, s)
			st, err := conn.OpenStreamSync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			st.Write(garbage)
			select {
			case <-conn.Context().Done():
			case <-time.After(10 * time.Second):
				t.Fatal("server did not close the connection after garbage")
			}
			var appErr *quic.ApplicationError
			if err := context.Cause(conn.Context()); !errors.As(err, &appErr) || appErr.ErrorCode != closeProtocol || appErr.ErrorMessage == "" {
				t.Fatalf("close cause = %v, want a protocol error with a reason", err)
			}
		})
	}

	// A well-behaved agent still registers.
	conn := dialAgent(t, s)
	st, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.Write(st, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n1", Name: "n1", Address: "127.0.0.1", CPU: 1000, MemoryMB: 1024, Drivers: map[string]bool{"wasm": true}}); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := wire.Read(st)
	if err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register: %v %v", typ, err)
	}
	var ack wire.Registered
	wire.Decode(typ, payload, &ack)
	if ack.NodeID != "n1" || ack.HeartbeatMillis <= 0 {
		t.Fatalf("ack = %+v", ack)
	}
	typ, _, err = wire.Read(st)
	if err != nil || typ != wire.TypeAllocs {
		t.Fatalf("expected the initial Allocs push, got %v %v", typ, err)
	}
	if n, _ := s.Store().Node("n1"); n == nil || n.Datacenter != "dc1" {
		t.Fatalf("registered node = %+v, want datacenter dc1 by default", n)
	}
}

// A module download names a missing digest: the agent gets an error
// header, not a hang.
func TestModuleDownloadOfUnknownDigest(t *testing.T) {
	s := startTestServer(t)
	conn := dialAgent(t, s)
	ctrl, _ := conn.OpenStreamSync(context.Background())
	wire.Write(ctrl, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n1", Name: "n1", Address: "127.0.0.1"})
	if typ, _, err := wire.Read(ctrl); err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register: %v %v", typ, err)
	}
	st, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("nothing"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	wire.Write(st, wire.TypeFetchModule, wire.FetchModule{Digest: digest})
	typ, payload, err := wire.Read(st)
	if err != nil || typ != wire.TypeModule {
		t.Fatalf("download: %v %v", typ, err)
	}
	var hdr wire.ModuleHeader
	wire.Decode(typ, payload, &hdr)
	if !strings.Contains(hdr.Error, "not stored") {
		t.Fatalf("header = %+v, want an error saying the module is not stored", hdr)
	}
}

// Agents learn where to reach the server from Registered.Servers: the
// advertised address when one is set (an agent behind NAT or a relay must
// not be sent around it), the bound one otherwise, and never an
// unspecified IP, which would name the agent's own host.
func TestRegisteredTellsAgentsTheAdvertisedAddress(t *testing.T) {
	cases := []struct {
		name, bind, advertise string
		want                  func(s *Server) []string
	}{
		{"bound address", "127.0.0.1:0", "", func(s *Server) []string { return []string{s.AgentAddr()} }},
		{"advertised address", "127.0.0.1:0", "gw.example:4702", func(*Server) []string { return []string{"gw.example:4702"} }},
		{"unspecified bind", "0.0.0.0:0", "", func(*Server) []string { return nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(Config{DataDir: t.TempDir(), Bootstrap: true, DevMode: true, AgentAddr: c.bind, AgentAdvertise: c.advertise})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s.Shutdown(ctx)
			})
			waitLeading(t, s)
			_, port, _ := net.SplitHostPort(s.AgentAddr())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := quic.DialAddr(ctx, net.JoinHostPort("127.0.0.1", port), agentTLS(t, s, "n1"), &quic.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseWithError(0, "")
			st, err := conn.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wire.Write(st, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n1", Name: "n1", Address: "127.0.0.1"})
			typ, payload, err := wire.Read(st)
			if err != nil || typ != wire.TypeRegistered {
				t.Fatalf("register: %v %v", typ, err)
			}
			var ack wire.Registered
			wire.Decode(typ, payload, &ack)
			if want := c.want(s); !slices.Equal(ack.Servers, want) {
				t.Fatalf("Registered.Servers = %q, want %q", ack.Servers, want)
			}
		})
	}
}

func TestAgentAdvertiseMustNameAHost(t *testing.T) {
	for _, adv := range []string{"0.0.0.0:4702", "[::]:4702", ":4702", "gw.example", "gw.example:0"} {
		if _, err := New(Config{DataDir: t.TempDir(), Bootstrap: true, DevMode: true, AgentAdvertise: adv}); err == nil {
			t.Errorf("AgentAdvertise %q accepted", adv)
		}
	}
}

// Task states reach the allocation through Raft, but a report that
// changes nothing (the agent resends after a reconnect) is no Raft write,
// and an update without task states (a node marked lost) keeps them.
func TestAllocStatusTaskStates(t *testing.T) {
	s := startTestServer(t)
	reg := &wire.Register{Versions: wire.Versions(), NodeID: "n1", Name: "n1", Address: "127.0.0.1"}
	alloc := &sched.Allocation{ID: "a1", JobID: "web", Group: "g", NodeID: "n1", DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientPending}
	if _, _, err := s.node.apply(&state.PlanApply{Place: []*sched.Allocation{alloc}}); err != nil {
		t.Fatal(err)
	}
	states := func(events ...string) map[string]*wire.TaskState {
		ts := &wire.TaskState{State: wire.TaskRunning}
		for i, e := range events {
			ts.Append(wire.TaskEvent{Type: e, Time: int64(i + 1)})
		}
		return map[string]*wire.TaskState{"t": ts}
	}
	report := func(st wire.AllocStatus) uint64 {
		t.Helper()
		if err := s.agents.allocStatus(reg, &st); err != nil {
			t.Fatal(err)
		}
		return s.store.Index()
	}
	first := report(wire.AllocStatus{AllocID: "a1", ClientStatus: "running", TaskStates: states("Received", "Started")})
	if again := report(wire.AllocStatus{AllocID: "a1", ClientStatus: "running", TaskStates: states("Received", "Started")}); again != first {
		t.Fatalf("an unchanged report was written to Raft: index %d -> %d", first, again)
	}
	if next := report(wire.AllocStatus{AllocID: "a1", ClientStatus: "running", TaskStates: states("Received", "Started", "Terminated")}); next == first {
		t.Fatal("a new event was not written")
	}
	a, _ := s.store.Alloc("a1")
	if got := a.TaskStates["t"]; got == nil || len(got.Events) != 3 || got.Events[2].Type != "Terminated" {
		t.Fatalf("stored task states %+v", a.TaskStates)
	}
	if _, _, err := s.node.apply(&state.AllocUpdate{NodeID: "n1", Updates: []state.ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientLost}}}); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.store.Alloc("a1"); a.ClientStatus != sched.ClientLost || len(a.TaskStates["t"].Events) != 3 {
		t.Fatalf("after the node was lost: %s, %+v", a.ClientStatus, a.TaskStates)
	}
}

// A download names an offset: the server sends the module from there
// (a resumed download), and refuses an offset past the end.
func TestModuleDownloadFromOffset(t *testing.T) {
	s := startTestServer(t)
	b, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := s.PushModule(context.Background(), "tiny", "1.0.0", b)
	if err != nil {
		t.Fatal(err)
	}
	conn := dialAgent(t, s)
	ctrl, _ := conn.OpenStreamSync(context.Background())
	wire.Write(ctrl, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n1", Name: "n1", Address: "127.0.0.1"})
	if typ, _, err := wire.Read(ctrl); err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register: %v %v", typ, err)
	}
	fetch := func(offset int64) (wire.ModuleHeader, []byte) {
		t.Helper()
		st, err := conn.OpenStreamSync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wire.Write(st, wire.TypeFetchModule, wire.FetchModule{Digest: m.Digest, Offset: offset})
		st.Close()
		typ, payload, err := wire.Read(st)
		if err != nil || typ != wire.TypeModule {
			t.Fatalf("download: %v %v", typ, err)
		}
		var hdr wire.ModuleHeader
		wire.Decode(typ, payload, &hdr)
		rest, err := io.ReadAll(st)
		if err != nil {
			t.Fatal(err)
		}
		return hdr, rest
	}
	for _, off := range []int64{0, 10, int64(len(b))} {
		hdr, rest := fetch(off)
		if hdr.Error != "" || hdr.Size != int64(len(b)) || hdr.Offset != off || !bytes.Equal(rest, b[off:]) {
			t.Fatalf("from %d: header %+v and %d bytes, want the module's last %d", off, hdr, len(rest), len(b)-int(off))
		}
	}
	if hdr, rest := fetch(int64(len(b)) + 1); !strings.Contains(hdr.Error, "outside") || len(rest) != 0 {
		t.Fatalf("past the end: header %+v, %d bytes", hdr, len(rest))
	}
}

// As the cluster grows, a connected agent is told to beat more slowly,
// at most doubling its interval at a time, up to a third of the TTL the
// cluster's size now calls for; the server waits for it accordingly.
func TestHeartbeatIntervalFollowsClusterSize(t *testing.T) {
	s := startHeartbeatServer(t, Config{MinHeartbeatTTL: time.Second, HeartbeatGrace: time.Second})
	conn := dialTLS(t, s, agentTLS(t, s, "n1"))
	st, _ := conn.OpenStreamSync(context.Background())
	wire.Write(st, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n1", Name: "n1", Address: "127.0.0.1"})
	typ, payload, err := wire.Read(st)
	var ack wire.Registered
	if err != nil || typ != wire.TypeRegistered || wire.Decode(typ, payload, &ack) != nil {
		t.Fatalf("register: %v %v", typ, err)
	}
	if ack.HeartbeatMillis != 333 {
		t.Fatalf("told to beat every %dms, want 333 (TTL 1s / 3)", ack.HeartbeatMillis)
	}
	// 400 nodes: the TTL becomes 8s (50 beats/s), an interval of 2.67s.
	var nodes []sched.Node
	for i := range 400 {
		id := fmt.Sprintf("sim-%d", i)
		nodes = append(nodes, sched.Node{ID: id, Name: id, Datacenter: "dc1", Address: "127.0.0.1", Status: sched.NodeReady, Eligible: true})
	}
	if err := s.RegisterNodes(context.Background(), nodes); err != nil {
		t.Fatal(err)
	}
	var told []int64
	last := ack.HeartbeatMillis
	go func() { // keep the node alive meanwhile, at the interval it was told first
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for range 40 {
			if wire.Write(st, wire.TypeHeartbeat, wire.Heartbeat{}) != nil {
				return
			}
			<-tick.C
		}
	}()
	// Read until the server has nothing more to say for 1.5s.
	for {
		st.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		typ, payload, err := wire.Read(st)
		if err != nil {
			break
		}
		if typ != wire.TypeHeartbeatInterval {
			continue // the Allocs push
		}
		var hi wire.HeartbeatInterval
		wire.Decode(typ, payload, &hi)
		if hi.Millis > 2*last || hi.Millis <= last {
			t.Fatalf("interval %dms after %dms: want a rise of at most double", hi.Millis, last)
		}
		told, last = append(told, hi.Millis), hi.Millis
		// Each commit re-evaluates: register one more node.
		if err := s.RegisterNodes(context.Background(), []sched.Node{{ID: fmt.Sprintf("more-%d", len(told)), Name: "more", Datacenter: "dc1", Address: "127.0.0.1", Status: sched.NodeReady, Eligible: true}}); err != nil {
			t.Fatal(err)
		}
	}
	// Within a quarter of the target (smaller changes are not sent); the
	// target is the TTL for ~400 nodes (8s) / 3, plus the nodes this
	// loop added.
	want := s.detector.agentInterval().Milliseconds()
	if want < 2600 || last < want*4/5 || last > want {
		t.Fatalf("intervals told %v: want them to reach %d-%dms", told, want*4/5, want)
	}
	if n, _ := s.store.Node("n1"); n == nil || n.Status != sched.NodeReady {
		t.Fatalf("the agent's node after the interval grew: %+v, want ready", n)
	}
}
