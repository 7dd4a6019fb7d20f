package edge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/netfault"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// linkFixture is a real coordinator and a real agent whose QUIC path
// runs through a relay the test can cut, heal and rebind.
type linkFixture struct {
	srv   *coordinator.Server
	relay *netfault.Relay
	agent *Agent
}

// startCoordinator starts a one-server cluster and waits for it to lead
// with a cluster CA, woken by its commits.
func startCoordinator(t *testing.T, cfg coordinator.Config) *coordinator.Server {
	t.Helper()
	cfg.DataDir, cfg.Bootstrap, cfg.DevMode = t.TempDir(), true, true
	srv, err := coordinator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	waitState(t, srv, "leadership and a cluster CA", 10*time.Second, func() bool { return srv.IsLeader() && srv.CAPin() != "" })
	return srv
}

// waitState waits until ok holds, checking it after each commit of the
// server's state (every change the agent causes is one: a registration,
// a status report).
func waitState(t *testing.T, srv *coordinator.Server, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		changed := srv.Store().Watch()
		if ok() {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// waitAgent waits until ok holds, checking it whenever the agent's link
// or control protocol notes a change (a session up or down, a heartbeat,
// a new heartbeat interval).
func waitAgent(t *testing.T, a *Agent, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		link, beats := a.link.changed(), a.control.events.wait()
		if ok() {
			return
		}
		select {
		case <-link:
		case <-beats:
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

func newLinkFixture(t *testing.T, opts ...func(*Config)) *linkFixture {
	t.Helper()
	logger := testLogger(t)
	srv := startCoordinator(t, coordinator.Config{MinHeartbeatTTL: time.Second, HeartbeatGrace: time.Second, Logger: logger})
	tok, err := srv.CreateJoinToken(structs.JoinTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	relay, err := netfault.NewRelay("127.0.0.1:0", srv.AgentAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(relay.Close)
	cfg := Config{Servers: []string{relay.Addr()}, CAPin: srv.CAPin(), JoinToken: tok.Secret,
		DataDir: t.TempDir(), NodeName: "edge-link", BindAddr: "127.0.0.1", Logger: logger}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-a.Registered():
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not register within 20s")
	}
	return &linkFixture{srv: srv, relay: relay, agent: a}
}

// deployTiny pushes the 153-byte example module and runs its job; it
// returns the address the task serves on once it answers.
func (f *linkFixture) deployTiny(t *testing.T) string {
	t.Helper()
	root := filepath.Join("..", "examples", "tiny")
	mod, err := os.ReadFile(filepath.Join(root, "tiny.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.srv.PushModule(context.Background(), "tiny", "0.1.0", mod); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "tiny.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	job, err := spec.Parse("tiny.hcl", src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			allocs, _ := f.srv.Store().JobAllocs("tiny")
			for _, al := range allocs {
				t.Logf("alloc %s: desired %s, client %s %q", al.ID, al.DesiredStatus, al.ClientStatus, al.ClientDescription)
			}
			n, _ := f.srv.Store().Node(f.agent.NodeID())
			t.Logf("node %+v; sessions %d", n, f.agent.link.sessions.Load())
		}
	}()
	var addr string
	// The agent reports the endpoint once the task listens.
	waitState(t, f.srv, "the tiny task's endpoint", 30*time.Second, func() bool {
		eps := f.srv.Store().Endpoints("tiny-web-tiny")
		if len(eps) != 1 || !eps[0].Healthy {
			return false
		}
		addr = fmt.Sprintf("%s:%d", eps[0].Address, eps[0].Port)
		return true
	})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "hello" {
		t.Fatalf("the tiny task answers %d %q", resp.StatusCode, b)
	}
	return addr
}

// The agent's address changes under a live connection (a NAT rebinding,
// a new network): QUIC migrates the path and the same session goes on —
// no reconnect, no re-registration, the node never marked down — and the
// server can still push to it: a job deployed after the move reaches the
// agent, its module is downloaded over the moved path, and it serves.
func TestLinkSurvivesAddressChange(t *testing.T) {
	f := newLinkFixture(t)
	before := f.relay.UpstreamAddr()
	if err := f.relay.Rebind(); err != nil {
		t.Fatal(err)
	}
	if after := f.relay.UpstreamAddr(); after == before {
		t.Fatalf("rebind kept the address %s", after)
	}
	// Heartbeats keep arriving over the new path (every TTL/3 ≈ 333ms):
	// once the agent has sent twelve, more than three TTLs' worth, the
	// server has received at least ten (the last two may be in flight),
	// the node is still ready and was never marked down.
	beats, sent := f.srv.HeartbeatStats().Beats, f.agent.control.beats.Load()
	waitAgent(t, f.agent, "twelve heartbeats over the new path", 20*time.Second, func() bool { return f.agent.control.beats.Load() >= sent+12 })
	if hb := f.srv.HeartbeatStats(); hb.Beats < beats+10 || hb.NodesDown != 0 || hb.MinMarginMillis <= 0 {
		t.Fatalf("heartbeats after the address change: %+v (%d before), want ten more, none late and no node down", hb, beats)
	}
	node, err := f.srv.Store().Node(f.agent.NodeID())
	if err != nil || node == nil || node.Status != "ready" {
		t.Fatalf("node after the address change: %+v %v, want ready", node, err)
	}
	f.deployTiny(t)
	if n := f.agent.link.sessions.Load(); n != 1 {
		t.Fatalf("the agent registered %d times; the address change should have kept its one session", n)
	}
}

// A reconnect to a server the agent has talked to resumes the TLS session
// (no certificate exchange), and the resumed session is a working one.
func TestReconnectResumesTLS(t *testing.T) {
	f := newLinkFixture(t)
	if n := f.agent.link.resumed.Load(); n != 0 {
		t.Fatalf("the first connection was resumed (%d): it had no ticket", n)
	}
	conn, err := f.agent.link.liveConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.CloseWithError(0, "test: drop the link")
	waitAgent(t, f.agent, "the agent to reconnect", 20*time.Second, func() bool { return f.agent.link.sessions.Load() == 2 })
	if n := f.agent.link.resumed.Load(); n != 1 {
		t.Fatalf("the reconnect did not resume the TLS session (resumed sessions: %d)", n)
	}
	f.deployTiny(t)
}

// A service whose check never passes, with check_restart: the agent
// restarts the task through its restart policy, and the allocation's
// task events, as the coordinator stores them, show why.
func TestCheckRestartRestartsTheTask(t *testing.T) {
	f := newLinkFixture(t)
	mod, err := os.ReadFile(filepath.Join("..", "examples", "tiny", "tiny.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.srv.PushModule(context.Background(), "tiny", "0.1.0", mod); err != nil {
		t.Fatal(err)
	}
	// The task serves on "http"; nothing listens on "admin", so the
	// admin service's tcp check always fails.
	register(t, f.srv, "flaky.hcl", `
job "flaky" {
  group "web" {
    task "tiny" {
      driver = "wasm"
      config {
        module = "tiny@0.1.0"
        mode   = "http"
      }
      restart {
        attempts = 5
        interval = "1m"
        delay    = "100ms"
        mode     = "fail"
      }
      resources {
        network {
          port "http" {}
          port "admin" {}
        }
      }
      service {
        name = "flaky-admin"
        port = "admin"
        check {
          type     = "tcp"
          interval = "1s"
          timeout  = "200ms"
          check_restart {
            limit = 2
            grace = "0s"
          }
        }
      }
    }
  }
}`)
	var events []string
	waitState(t, f.srv, "a check restart in the allocation's events", 30*time.Second, func() bool {
		allocs, _ := f.srv.Store().JobAllocs("flaky")
		if len(allocs) != 1 || allocs[0].TaskStates["tiny"] == nil {
			return false
		}
		ts := allocs[0].TaskStates["tiny"]
		events = events[:0]
		for _, e := range ts.Events {
			events = append(events, e.Type)
		}
		return ts.Restarts >= 1 && slices.Contains(events, "Restart Signaled")
	})
	if !slices.Contains(events, "Restarting") {
		t.Fatalf("events %v: the restart should go through the restart policy", events)
	}
}

// The agent takes the longer heartbeat interval the server sends as the
// cluster grows.
func TestAgentFollowsHeartbeatInterval(t *testing.T) {
	f := newLinkFixture(t)
	every := func() time.Duration { return time.Duration(f.agent.control.beatEvery.Load()) }
	waitAgent(t, f.agent, "the first interval", 10*time.Second, func() bool { return every() > 0 })
	if first := every(); first != 333*time.Millisecond {
		t.Fatalf("registered with an interval of %s, want 333ms (TTL 1s / 3)", first)
	}
	var nodes []sched.Node
	for i := range 299 { // with the agent, 300 nodes: TTL 6s, an interval of 2s
		id := fmt.Sprintf("sim-%d", i)
		nodes = append(nodes, sched.Node{ID: id, Name: id, Datacenter: "dc1", Address: "127.0.0.1", Status: sched.NodeReady, Eligible: true})
	}
	if err := f.srv.RegisterNodes(context.Background(), nodes); err != nil {
		t.Fatal(err)
	}
	// Within a quarter of 2s (smaller changes are not sent), never above.
	waitAgent(t, f.agent, "an interval of 1.6-2s", 10*time.Second, func() bool {
		if d := every(); d > 2*time.Second {
			t.Fatalf("interval %s: more than the TTL allows", d)
		}
		return every() >= 1600*time.Millisecond
	})
}

func register(t *testing.T, srv *coordinator.Server, name, src string) {
	t.Helper()
	job, err := spec.Parse(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
}
