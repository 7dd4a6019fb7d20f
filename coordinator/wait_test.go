package coordinator

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Tests wait for events, never for time: a server's commits (Store.Watch),
// its leader duties starting (leaderDuties) and Raft's own observations
// (leader and peer changes). Each wait is bounded so a broken test fails
// instead of hanging.

// waitLeading waits until s runs the leader's duties, with the cluster
// CA created.
func waitLeading(t testing.TB, s *Server) {
	t.Helper()
	select {
	case <-s.leaderDuties():
	case <-time.After(10 * time.Second):
		t.Fatal("no leadership within 10s")
	}
	if s.CAPin() == "" {
		t.Fatal("the leader runs its duties without a cluster CA")
	}
}

// clusterEvents returns a channel that receives after any commit on any
// of servers and any Raft leader or peer change they observe. A receive
// may stand for several events: check the state after each.
func clusterEvents(tb testing.TB, servers ...*Server) <-chan struct{} {
	wake := make(chan struct{}, 1)
	done := make(chan struct{})
	tb.Cleanup(func() { close(done) })
	for _, s := range servers {
		obs := make(chan raft.Observation, 16)
		o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
			switch o.Data.(type) {
			case raft.LeaderObservation, raft.PeerObservation:
				return true
			}
			return false
		})
		s.node.raft.RegisterObserver(o)
		tb.Cleanup(func() { s.node.raft.DeregisterObserver(o) })
		go func() {
			watch := s.store.Watch()
			for {
				select {
				case <-done:
					return
				case <-obs:
				case <-watch:
					watch = s.store.Watch() // before waking: a commit from here on wakes us again
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
	}
	return wake
}

// waitFor checks cond after every event until it holds (bounded by max).
func waitFor(tb testing.TB, events <-chan struct{}, what string, max time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-events:
		case <-deadline.C:
			tb.Fatalf("timed out after %s waiting for %s", max, what)
		}
	}
}
