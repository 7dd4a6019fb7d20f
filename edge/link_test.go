package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/internal/netfault"
	"github.com/strata-run/strata/internal/testutil"
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

func newLinkFixture(t *testing.T, opts ...func(*Config)) *linkFixture {
	t.Helper()
	logger := testLogger(t)
	srv, err := coordinator.New(coordinator.Config{DataDir: t.TempDir(), Bootstrap: true, DevMode: true,
		MinHeartbeatTTL: time.Second, HeartbeatGrace: time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	for deadline := time.Now().Add(10 * time.Second); !srv.IsLeader() || srv.CAPin() == ""; {
		if time.Now().After(deadline) {
			t.Fatal("no leader within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tok, err := srv.CreateJoinToken(coordinator.JoinTokenRequest{})
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

// testLogger shows the agent's log when a test fails.
func testLogger(t *testing.T) *slog.Logger {
	var buf testutil.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func waitFor(t *testing.T, what string, max time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(max); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", max, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	var addr string
	defer func() {
		if t.Failed() {
			allocs, _ := f.srv.Store().JobAllocs("tiny")
			for _, al := range allocs {
				t.Logf("alloc %s: desired %s, client %s %q", al.ID, al.DesiredStatus, al.ClientStatus, al.ClientDescription)
			}
			n, _ := f.srv.Store().Node(f.agent.NodeID())
			f.agent.runMu.Lock()
			t.Logf("node %s; agent runners %d; sessions %d", n.Status, len(f.agent.runners), f.agent.sessions.Load())
			f.agent.runMu.Unlock()
		}
	}()
	waitFor(t, "the tiny task to serve", 30*time.Second, func() bool {
		eps := f.srv.Store().Endpoints("tiny-web-tiny")
		if len(eps) != 1 {
			return false
		}
		addr = fmt.Sprintf("%s:%d", eps[0].Address, eps[0].Port)
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && len(b) > 0
	})
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
	// wait for ten, more than three TTLs' worth, then the node must still
	// be ready and never have been marked down.
	beats := f.srv.HeartbeatStats().Beats
	waitFor(t, "ten heartbeats over the new path", 20*time.Second, func() bool { return f.srv.HeartbeatStats().Beats >= beats+10 })
	if hb := f.srv.HeartbeatStats(); hb.NodesDown != 0 || hb.MinMarginMillis <= 0 {
		t.Fatalf("heartbeats after the address change: %+v, want none late and no node down", hb)
	}
	node, err := f.srv.Store().Node(f.agent.NodeID())
	if err != nil || node == nil || node.Status != "ready" {
		t.Fatalf("node after the address change: %+v %v, want ready", node, err)
	}
	f.deployTiny(t)
	if n := f.agent.sessions.Load(); n != 1 {
		t.Fatalf("the agent registered %d times; the address change should have kept its one session", n)
	}
}

// A reconnect to a server the agent has talked to resumes the TLS session
// (no certificate exchange), and the resumed session is a working one.
func TestReconnectResumesTLS(t *testing.T) {
	f := newLinkFixture(t)
	if n := f.agent.resumed.Load(); n != 0 {
		t.Fatalf("the first connection was resumed (%d): it had no ticket", n)
	}
	conn, err := f.agent.liveConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.CloseWithError(0, "test: drop the link")
	waitFor(t, "the agent to reconnect", 20*time.Second, func() bool { return f.agent.sessions.Load() == 2 })
	if n := f.agent.resumed.Load(); n != 1 {
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
	job, err := spec.Parse("flaky.hcl", []byte(`
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
}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
	var events []string
	waitFor(t, "a check restart in the allocation's events", 30*time.Second, func() bool {
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
	waitFor(t, "the first interval", 10*time.Second, func() bool { return f.agent.beatEvery.Load() > 0 })
	if first := time.Duration(f.agent.beatEvery.Load()); first != 333*time.Millisecond {
		t.Fatalf("registered with an interval of %s, want 333ms (TTL 1s / 3)", first)
	}
	var nodes []sched.Node
	for i := range 300 { // TTL 6s: an interval of 2s
		id := fmt.Sprintf("sim-%d", i)
		nodes = append(nodes, sched.Node{ID: id, Name: id, Datacenter: "dc1", Address: "127.0.0.1", Status: sched.NodeReady, Eligible: true})
	}
	if err := f.srv.RegisterNodes(context.Background(), nodes); err != nil {
		t.Fatal(err)
	}
	// Within a quarter of 2s (smaller changes are not sent), never above.
	waitFor(t, "an interval of 1.6-2s", 10*time.Second, func() bool {
		d := time.Duration(f.agent.beatEvery.Load())
		if d > 2*time.Second {
			t.Fatalf("interval %s: more than the TTL allows", d)
		}
		return d >= 1600*time.Millisecond
	})
}
