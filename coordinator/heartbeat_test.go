package coordinator

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// The failure detector's state machine, stepped with explicit times.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testHeartbeats() *heartbeats {
	return &heartbeats{minTTL: 5 * time.Second, grace: 3 * time.Second, failover: 10 * time.Second}
}

func TestHeartbeatsTTLGrowsWithTheCluster(t *testing.T) {
	h := testHeartbeats()
	for _, c := range []struct {
		nodes int
		want  time.Duration
	}{
		{0, 5 * time.Second}, {250, 5 * time.Second}, {251, 5020 * time.Millisecond}, {1000, 20 * time.Second}, {5000, 100 * time.Second},
	} {
		if got := h.ttlFor(c.nodes); got != c.want {
			t.Errorf("ttlFor(%d) = %s, want %s (at most %v beats/s)", c.nodes, got, c.want, maxHeartbeatsPerSecond)
		}
	}
}

// A new leader gives every ready node the failover grace on top of its
// TTL: nobody is down before then, everybody who stays silent is down
// after, each once.
func TestHeartbeatsFailoverGraceAtStart(t *testing.T) {
	h := testHeartbeats()
	h.start(t0, []string{"b", "a", "c"}, 3)
	if down, _ := h.step(t0.Add(18 * time.Second)); len(down) != 0 {
		t.Fatalf("down at TTL + grace + failover grace: %v", down)
	}
	h.beat("b", t0.Add(18*time.Second), 3) // b found the new leader in time
	if down, _ := h.step(t0.Add(18*time.Second + time.Millisecond)); !slices.Equal(down, []string{"a", "c"}) {
		t.Fatalf("down after the failover grace: %v, want [a c] (sorted)", down)
	}
	if down, _ := h.step(t0.Add(time.Hour)); !slices.Equal(down, []string{"b"}) {
		t.Fatalf("down later: %v, want b only (a and c were reported once)", down)
	}
}

// A beat re-arms the node at TTL + grace from the beat, and counts how
// close to its deadline it came.
func TestHeartbeatsBeatRearmsAndCountsMargins(t *testing.T) {
	h := testHeartbeats()
	h.start(t0, []string{"n"}, 1)
	h.beat("n", t0.Add(10*time.Second), 1) // 8s before the 18s deadline
	if d, _ := h.deadline("n"); !d.Equal(t0.Add(18 * time.Second)) {
		t.Fatalf("deadline after a beat at 10s: %s, want 18s (TTL 5s + grace 3s)", d.Sub(t0))
	}
	h.beat("n", t0.Add(17*time.Second), 1) // 1s before
	if down, _ := h.step(t0.Add(25 * time.Second)); len(down) != 0 {
		t.Fatalf("down before its new deadline: %v", down)
	}
	st := h.statsFor(1)
	if st.Beats != 2 || st.MinMarginMillis != 1000 || st.TTLMillis != 5000 || st.GraceMillis != 3000 {
		t.Fatalf("stats %+v: want 2 beats, the closest 1000ms before its deadline, TTL 5000, grace 3000", st)
	}
	// A node that beats after its deadline (it was down meanwhile) counts
	// a negative margin.
	h.beat("n", t0.Add(30*time.Second), 1)
	if st := h.statsFor(1); st.MinMarginMillis != -5000 {
		t.Fatalf("min margin %dms after a late beat, want -5000", st.MinMarginMillis)
	}
}

// Agents are told the TTL for the cluster's size when they register and
// keep it; a cluster that grew must give every node the longest TTL seen,
// and a cluster that shrank must not take it back.
func TestHeartbeatsDeadlineFollowsTheLongestTTL(t *testing.T) {
	h := testHeartbeats()
	h.start(t0, nil, 10)
	h.beat("n", t0, 1000) // the cluster grew to 1000 nodes: TTL 20s
	if d, _ := h.deadline("n"); !d.Equal(t0.Add(23 * time.Second)) {
		t.Fatalf("deadline %s, want 23s (TTL for 1000 nodes + grace)", d.Sub(t0))
	}
	h.beat("n", t0.Add(time.Second), 10) // and shrank again
	if d, _ := h.deadline("n"); !d.Equal(t0.Add(24 * time.Second)) {
		t.Fatalf("deadline %s after the cluster shrank, want 24s: the TTL never shrinks in a term", d.Sub(t0))
	}
}

// Unknown allocations are lost when their lost_after passes, each once;
// nothing is armed or reported while another server leads.
func TestHeartbeatsLostAfterAndLeadership(t *testing.T) {
	h := testHeartbeats()
	h.loseAt("early", t0) // not leading: ignored
	h.beat("n", t0, 1)
	if _, armed := h.deadline("n"); armed {
		t.Fatal("a beat armed a deadline while not leading")
	}
	h.start(t0, nil, 0)
	for i := range 3 {
		h.loseAt(fmt.Sprintf("a%d", i), t0.Add(time.Duration(i)*time.Hour))
	}
	if _, lost := h.step(t0.Add(90 * time.Minute)); !slices.Equal(lost, []string{"a0", "a1"}) {
		t.Fatalf("lost at 1h30: %v, want [a0 a1]", lost)
	}
	if _, lost := h.step(t0.Add(90 * time.Minute)); len(lost) != 0 {
		t.Fatalf("lost again: %v", lost)
	}
	h.stop()
	if down, lost := h.step(t0.Add(10 * time.Hour)); len(down)+len(lost) != 0 {
		t.Fatalf("after stop: down %v, lost %v; want nothing (another server leads)", down, lost)
	}
}
