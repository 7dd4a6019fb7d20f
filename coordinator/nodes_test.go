package coordinator

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// fakeAgent speaks the agent protocol over real QUIC: it registers,
// heartbeats until killed, collects pushed allocations and reports status.
type fakeAgent struct {
	t      *testing.T
	id     string
	conn   *quic.Conn
	ctrl   *quic.Stream
	mu     sync.Mutex // serialises writes on ctrl
	latest chan wire.Allocs
	stop   chan struct{}
	wg     sync.WaitGroup
	// autoRun: report every pushed allocation running, and stopped ones
	// complete, as a healthy agent would.
	autoRun bool
	// health, if set, decides the deployment health autoRun reports for
	// an allocation whose deployment asks (wire.Healthy, wire.Unhealthy, or
	// "" for undecided).
	health atomic.Pointer[func(wire.Alloc) string]
}

func connectFakeAgent(t *testing.T, s *Server, id, addr string) *fakeAgent {
	t.Helper()
	return connectAgent(t, s, id, addr, false)
}

func connectAgent(t *testing.T, s *Server, id, addr string, autoRun bool) *fakeAgent {
	t.Helper()
	tc := agentTLS(t, s, id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, s.AgentAddr(), tc, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAgent{t: t, id: id, conn: conn, ctrl: ctrl, latest: make(chan wire.Allocs, 64), stop: make(chan struct{}), autoRun: autoRun}
	wire.Write(ctrl, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: id, Name: id, Address: addr, CPU: 4000, MemoryMB: 4096,
		Drivers: map[string]bool{"docker": true}})
	typ, payload, err := wire.Read(ctrl)
	if err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register %s: %v %v", id, typ, err)
	}
	var ack wire.Registered
	wire.Decode(typ, payload, &ack)
	f.wg.Add(2)
	go func() { // reader
		defer f.wg.Done()
		for {
			typ, payload, err := wire.Read(ctrl)
			if err != nil {
				return
			}
			if typ == wire.TypeAllocs {
				var m wire.Allocs
				wire.Decode(typ, payload, &m)
				if f.autoRun {
					f.mu.Lock()
					for _, a := range m.Allocs {
						status := sched.ClientRunning
						if a.DesiredStatus == sched.DesiredStop {
							status = sched.ClientComplete
						}
						st := wire.AllocStatus{AllocID: a.ID, ClientStatus: status}
						if h := f.health.Load(); h != nil && a.Health != nil && status == sched.ClientRunning {
							if st.Health = (*h)(a); st.Health != "" {
								st.HealthTime = time.Now().UnixNano()
							}
						}
						wire.Write(ctrl, wire.TypeAllocStatus, st)
					}
					f.mu.Unlock()
				}
				select {
				case f.latest <- m:
				default:
				}
			}
		}
	}()
	go func() { // heartbeats, as often as the server asked
		defer f.wg.Done()
		tick := time.NewTicker(time.Duration(ack.HeartbeatMillis) * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
				f.mu.Lock()
				wire.Write(ctrl, wire.TypeHeartbeat, wire.Heartbeat{})
				f.mu.Unlock()
			}
		}
	}()
	t.Cleanup(f.kill)
	return f
}

// kill stops heartbeats and drops the connection, as a dead host would.
func (f *fakeAgent) kill() {
	select {
	case <-f.stop:
		return
	default:
	}
	close(f.stop)
	f.conn.CloseWithError(0, "")
	f.wg.Wait()
}

func (f *fakeAgent) report(allocID, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := wire.Write(f.ctrl, wire.TypeAllocStatus, wire.AllocStatus{AllocID: allocID, ClientStatus: status}); err != nil {
		f.t.Fatalf("report: %v", err)
	}
}

// waitState waits, woken by every commit, until cond holds (bounded).
func waitState(t *testing.T, s *Server, what string, max time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	for {
		ch := s.store.Watch()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", max, what)
		}
	}
}

func dockerJob(id string, d *spec.Disconnect) *spec.Job {
	return &spec.Job{ID: id, Type: "service", Priority: 50, Groups: []*spec.Group{{
		Name: "g", Count: 1, Disconnect: d, Tasks: []*spec.Task{{
			Name: "t", Driver: "docker", Config: spec.TaskConfig{Image: "example/app:1"},
			Resources: spec.Resources{CPU: 100, MemoryMB: 64},
			Restart:   &spec.RestartPolicy{Attempts: 2, Interval: spec.Duration(time.Minute), Delay: spec.Duration(time.Second), Mode: "fail"},
		}},
	}}}
}

func liveAllocs(t *testing.T, s *Server, job string) []*structs.Alloc {
	allocs, err := s.store.JobAllocs(job)
	if err != nil {
		t.Fatal(err)
	}
	var out []*structs.Alloc
	for _, a := range allocs {
		if !a.Terminal() {
			out = append(out, a)
		}
	}
	return out
}

// fastHeartbeats shortens the heartbeat settings for tests.
// (Short enough to keep the tests quick, long enough for a loaded CI machine.)
var fastHeartbeats = Config{MinHeartbeatTTL: time.Second, HeartbeatGrace: time.Second, FailoverGrace: 200 * time.Millisecond}

func startHeartbeatServer(t *testing.T, hb Config) *Server {
	t.Helper()
	s, err := New(Config{DataDir: t.TempDir(), Bootstrap: true, DevMode: true,
		MinHeartbeatTTL: hb.MinHeartbeatTTL, HeartbeatGrace: hb.HeartbeatGrace, FailoverGrace: hb.FailoverGrace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	waitLeading(t, s)
	return s
}

// A node that stops heartbeating is marked down, its allocation lost and
// replaced on another node.
func TestDeadNodeWorkIsReplaced(t *testing.T) {
	deadNodeScenario(t, fastHeartbeats)
}

// The same with the default settings (TTL 5s, grace 3s): the figure for
// the note. It takes ~9s.
func TestDeadNodeWorkIsReplacedDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the default heartbeat TTL")
	}
	deadNodeScenario(t, Config{})
}

func deadNodeScenario(t *testing.T, hb Config) {
	s := startHeartbeatServer(t, hb)
	a := connectFakeAgent(t, s, "node-a", "127.0.0.1")
	b := connectFakeAgent(t, s, "node-b", "127.0.0.2")
	agents := map[string]*fakeAgent{"node-a": a, "node-b": b}
	if _, err := s.RegisterJob(dockerJob("web", nil)); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "placement", 10*time.Second, func() bool { return len(liveAllocs(t, s, "web")) == 1 })
	first := liveAllocs(t, s, "web")[0]
	victim, survivor := agents[first.NodeID], agents[map[string]string{"node-a": "node-b", "node-b": "node-a"}[first.NodeID]]
	victim.report(first.ID, sched.ClientRunning)
	waitState(t, s, "running", 10*time.Second, func() bool {
		al, _ := s.store.Alloc(first.ID)
		return al.ClientStatus == sched.ClientRunning
	})

	start := time.Now()
	victim.kill()
	waitState(t, s, "replacement", 30*time.Second, func() bool {
		live := liveAllocs(t, s, "web")
		return len(live) == 1 && live[0].NodeID == survivor.id
	})
	t.Logf("dead node to replacement placed: %s (TTL %s + grace %s)", time.Since(start).Round(time.Millisecond), s.cfg.MinHeartbeatTTL, s.cfg.HeartbeatGrace)
	if n, _ := s.store.Node(victim.id); n.Status != sched.NodeDown {
		t.Fatalf("node status %s, want down", n.Status)
	}
	if hb := s.HeartbeatStats(); hb.NodesDown != 1 || hb.Beats == 0 || hb.MinMarginMillis <= 0 {
		t.Fatalf("heartbeat stats %+v: want one node down and the survivor's beats on time", hb)
	}
	if al, _ := s.store.Alloc(first.ID); al.ClientStatus != sched.ClientLost {
		t.Fatalf("original alloc %s, want lost", al.ClientStatus)
	}
	if eps := s.store.Endpoints("web-g-t"); len(eps) != 0 {
		t.Fatalf("a lost allocation is still discoverable: %+v", eps)
	}
}

// Nodes registered after the leader started are told a longer TTL as
// the cluster grows (heartbeatTTL); their deadlines must grow with it, or
// an agent beating at the interval it was given is marked down.
func TestHeartbeatDeadlineGrowsWithTheCluster(t *testing.T) {
	s := startHeartbeatServer(t, Config{})
	nodes := make([]sched.Node, 600)
	for i := range nodes {
		nodes[i] = sched.Node{ID: fmt.Sprintf("n%03d", i), Name: fmt.Sprintf("n%03d", i), Datacenter: "dc1",
			Address: "127.0.0.1", Status: sched.NodeReady, Eligible: true}
	}
	if err := s.RegisterNodes(context.Background(), nodes); err != nil {
		t.Fatal(err)
	}
	ttl := time.Duration(s.HeartbeatStats().TTLMillis) * time.Millisecond
	if ttl <= s.cfg.MinHeartbeatTTL {
		t.Fatalf("TTL for %d nodes = %s: the test needs more nodes", len(nodes), ttl)
	}
	before := time.Now()
	s.Heartbeat(context.Background(), "n000")
	s.detector.mu.Lock()
	deadline, _ := s.detector.hb.deadline("n000")
	s.detector.mu.Unlock()
	if want := before.Add(ttl + s.cfg.HeartbeatGrace); deadline.Before(want) {
		t.Fatalf("deadline %s after the heartbeat, want at least the TTL agents are told (%s) + grace", deadline.Sub(before), ttl)
	}
}

// With disconnect { lost_after = "1h" replace = false } the allocation
// turns unknown, is not replaced, and comes back when its node does.
func TestDisconnectedNodeKeepsItsWork(t *testing.T) {
	s := startHeartbeatServer(t, fastHeartbeats)
	f := false
	a := connectFakeAgent(t, s, "node-a", "127.0.0.1")
	if _, err := s.RegisterJob(dockerJob("edge", &spec.Disconnect{LostAfter: spec.Duration(time.Hour), Replace: &f})); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "placement", 10*time.Second, func() bool { return len(liveAllocs(t, s, "edge")) == 1 })
	orig := liveAllocs(t, s, "edge")[0]
	// A second node is there to take a replacement, should one be made.
	connectFakeAgent(t, s, "node-b", "127.0.0.2")
	a.report(orig.ID, sched.ClientRunning)
	a.kill()
	waitState(t, s, "unknown", 20*time.Second, func() bool {
		al, _ := s.store.Alloc(orig.ID)
		return al.ClientStatus == sched.ClientUnknown
	})
	// The node-down evaluation has run and placed nothing.
	waitState(t, s, "node-down evaluation done", 10*time.Second, func() bool {
		evals, _ := s.store.Evals(structs.EvalPending)
		return len(evals) == 0
	})
	if live := liveAllocs(t, s, "edge"); len(live) != 1 || live[0].ID != orig.ID {
		t.Fatalf("while disconnected: live allocs %d; want only the original", len(live))
	}

	// The node comes back and reports its task still running.
	back := connectFakeAgent(t, s, "node-a", "127.0.0.1")
	back.report(orig.ID, sched.ClientRunning)
	waitState(t, s, "original running again", 10*time.Second, func() bool {
		al, _ := s.store.Alloc(orig.ID)
		n, _ := s.store.Node("node-a")
		return al.ClientStatus == sched.ClientRunning && n.Status == sched.NodeReady
	})
	waitState(t, s, "reconnect evaluation done", 10*time.Second, func() bool {
		pending, _ := s.store.Evals(structs.EvalPending)
		done, _ := s.store.Evals(structs.EvalComplete)
		return len(pending) == 0 && slices.ContainsFunc(done, func(e *structs.Eval) bool { return e.TriggeredBy == "alloc-reconnected" })
	})
	if live := liveAllocs(t, s, "edge"); len(live) != 1 || live[0].ID != orig.ID {
		t.Fatalf("after reconnect: %d live allocations; want exactly the original", len(live))
	}
}

// Draining a node moves its allocations elsewhere one at a time
// (max_parallel = 1): never more than one copy is down, the node ends
// empty and ineligible.
func TestNodeDrainRespectsMaxParallel(t *testing.T) {
	s := startHeartbeatServer(t, Config{})
	connectAgent(t, s, "node-a", "127.0.0.1", true)
	job := dockerJob("web", nil)
	job.Groups[0].Count = 3
	job.Update = &spec.Update{MaxParallel: 1}
	if _, err := s.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
	running := func() (onA, onB, total int) {
		for _, a := range liveAllocs(t, s, "web") {
			if a.ClientStatus != sched.ClientRunning {
				continue
			}
			total++
			if a.NodeID == "node-a" {
				onA++
			} else {
				onB++
			}
		}
		return
	}
	waitState(t, s, "3 running on node-a", 10*time.Second, func() bool { a, _, _ := running(); return a == 3 })
	connectAgent(t, s, "node-b", "127.0.0.2", true)

	if _, err := s.DrainNode("node-a", true, 0); err != nil {
		t.Fatal(err)
	}
	minRunning := 3
	waitState(t, s, "all moved to node-b", 30*time.Second, func() bool {
		_, b, total := running()
		minRunning = min(minRunning, total)
		return b == 3
	})
	if minRunning < 2 {
		t.Fatalf("at some point only %d of 3 copies ran: max_parallel 1 was not respected", minRunning)
	}
	waitState(t, s, "drain complete", 10*time.Second, func() bool {
		n, _ := s.store.Node("node-a")
		return n.Drain == nil
	})
	if n, _ := s.store.Node("node-a"); n.Eligible {
		t.Fatal("a drained node must stay ineligible")
	}
}
