package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// startInProcessCluster starts n servers on real loopback sockets, each
// told only of the previous one (s2 -> s1, s3 -> s2, ...), all expecting
// n: they must find each other transitively. opts change each server's
// configuration.
func startInProcessCluster(tb testing.TB, n int, opts ...func(*Config)) []*Server {
	tb.Helper()
	var servers []*Server
	for i := range n {
		cfg := Config{DataDir: tb.TempDir(), BootstrapExpect: n}
		if i > 0 {
			cfg.Join = []string{servers[i-1].RaftAddr()}
		}
		for _, o := range opts {
			o(&cfg)
		}
		s, err := New(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		servers = append(servers, s)
	}
	tb.Cleanup(func() {
		var wg sync.WaitGroup
		for _, s := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				s.Shutdown(ctx)
			}()
		}
		wg.Wait()
	})
	events := clusterEvents(tb, servers...)
	waitFor(tb, events, fmt.Sprintf("a %d-server cluster with a leader", n), 30*time.Second, func() bool {
		l := leaderOf(servers)
		if l == nil {
			return false
		}
		for _, s := range servers {
			if s.Leader() != l.RaftAddr() {
				return false
			}
		}
		peers, _ := l.RaftPeers()
		return len(peers) == n
	})
	return servers
}

func leaderOf(servers []*Server) *Server {
	for _, s := range servers {
		if s.IsLeader() {
			return s
		}
	}
	return nil
}

// Three servers bootstrap from a chain of -join addresses; a write through
// a follower is forwarded to the leader and readable on the follower.
func TestInProcessClusterForwardsWrites(t *testing.T) {
	servers := startInProcessCluster(t, 3)
	leader := leaderOf(servers)
	var follower *Server
	for _, s := range servers {
		if s != leader {
			follower = s
			break
		}
	}
	resp, err := follower.RegisterJob(dockerJob("via-follower", nil))
	if err != nil {
		t.Fatalf("register through a follower: %v", err)
	}
	if !resp.Changed || resp.EvalID == "" {
		t.Fatalf("response %+v, want a new job with an evaluation", resp)
	}
	// Read-your-write on the follower that forwarded it.
	if rec, err := follower.Store().Job("via-follower"); err != nil || rec == nil {
		t.Fatalf("the forwarding follower cannot read the write it acknowledged: %v %v", rec, err)
	}
	// The evaluation ran on the leader (no nodes: blocked with a reason).
	waitState(t, leader, "evaluation", 10*time.Second, func() bool {
		e, _ := leader.Store().Eval(resp.EvalID)
		return e != nil && e.Status == structs.EvalBlocked
	})
	// One cluster CA for every server: agents pin one fingerprint.
	for _, s := range servers {
		waitState(t, s, "the CA replicated", 10*time.Second, func() bool { return s.CAPin() != "" })
		if s.CAPin() != leader.CAPin() {
			t.Fatalf("server CA pins differ: %q vs leader %q", s.CAPin(), leader.CAPin())
		}
	}
	// A refusal by the leader reaches the caller with its sentinel intact.
	if _, _, err := follower.node.apply(&state.JobStop{JobID: "no-such-job"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forwarded stop of a missing job = %v, want ErrNotFound", err)
	}
	peers, _ := follower.RaftPeers()
	if len(peers) != 3 || !slices.ContainsFunc(peers, func(p structs.Peer) bool { return p.Leader }) {
		t.Fatalf("peers = %+v", peers)
	}
}

// BenchmarkRaftWrites3Servers: job-status writes (allocation client
// updates, what agents send most) committed through a 3-server Raft
// cluster on loopback, from 256 concurrent writers; reports writes/s and
// latency percentiles. Run: go test -run '^$' -bench RaftWrites -benchtime 20000x ./coordinator
func BenchmarkRaftWrites3Servers(b *testing.B) {
	servers := startInProcessCluster(b, 3)
	leader := leaderOf(servers)
	// One placed allocation per writer to update.
	const writers = 256
	var place []*sched.Allocation
	for i := range writers {
		place = append(place, &sched.Allocation{ID: fmt.Sprintf("a%03d", i), JobID: "bench", Group: "g", NodeID: "n1",
			DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientPending})
	}
	if _, _, err := leader.node.apply(&state.PlanApply{Place: place}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses := []string{sched.ClientRunning, sched.ClientPending}
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				_, _, err := leader.node.apply(&state.AllocUpdate{NodeID: "n1", Updates: []state.ClientUpdate{{
					AllocID: place[w].ID, ClientStatus: statuses[i%2], Description: fmt.Sprint(i)}}})
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d writes failed", failed.Load())
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// A server started later with -join is added to the running cluster;
// remove-peer takes a server out.
func TestLateJoinAndRemovePeer(t *testing.T) {
	servers := startInProcessCluster(t, 3)
	late, err := New(Config{DataDir: t.TempDir(), Join: []string{servers[2].RaftAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		late.Shutdown(ctx)
	})
	hasPeers := func(s *Server, n int) bool {
		peers, err := s.RaftPeers()
		return err == nil && len(peers) == n
	}
	events := clusterEvents(t, append(servers, late)...)
	waitFor(t, events, "the late server added", 30*time.Second, func() bool {
		l := leaderOf(servers)
		return l != nil && hasPeers(l, 4) && hasPeers(late, 4)
	})
	// Writes reach the late server's state.
	if _, err := late.RegisterJob(dockerJob("from-late", nil)); err != nil {
		t.Fatalf("write through the late server: %v", err)
	}
	// Remove it, by ID, through a follower.
	var follower *Server
	for _, s := range servers {
		if !s.IsLeader() {
			follower = s
		}
	}
	if err := follower.RemovePeer(late.cfg.NodeID); err != nil {
		t.Fatal(err)
	}
	if !hasPeers(leaderOf(servers), 3) {
		peers, _ := leaderOf(servers).RaftPeers()
		t.Fatalf("after remove-peer: %+v", peers)
	}
	if err := follower.RemovePeer("no-such-server"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing an unknown server = %v, want ErrNotFound", err)
	}
}

// A module pushed to one server is copied by another when it needs it,
// byte for byte (the digest is checked).
func TestBlobCopiedFromPeer(t *testing.T) {
	servers := startInProcessCluster(t, 2)
	b, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	var holder, other *Server
	for _, s := range servers {
		if s.IsLeader() {
			holder = s
		} else {
			other = s
		}
	}
	m, _, err := holder.PushModule(context.Background(), "tiny", "1.0.0", b)
	if err != nil {
		t.Fatal(err)
	}
	if other.blobs.Has(m.Digest) {
		t.Fatal("the follower has the blob before asking for it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := other.agents.copier.fetch(ctx, m.Digest); err != nil {
		t.Fatalf("copying the module from the leader: %v", err)
	}
	f, size, err := other.blobs.Open(m.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if size != int64(len(b)) || !bytes.Equal(got, b) {
		t.Fatalf("copied %d bytes, want the %d pushed", len(got), len(b))
	}
}
