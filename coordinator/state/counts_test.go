package state

import (
	"bytes"
	"maps"
	"testing"

	"github.com/strata-run/strata/sched"
)

// restored counts allocations by status from the state's bytes, as a
// restarted or restored server does (usageIndex.rebuild): the counts the
// batches moved must agree with it.
func restored(t *testing.T, h *harness) map[AllocStatus]int {
	t.Helper()
	sn, err := h.st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = sn.WriteTo(&buf)
	sn.Release()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := openTestStore(t)
	if err := other.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	return other.AllocCounts()
}

// The metrics' allocations by state come from counts kept in memory:
// placements, agents' reports, stops (in separate batches and in one)
// and garbage collection move them as a rebuild from bbolt counts them.
func TestAllocCountsFollowEveryWrite(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 4000, 4096)})
	run := func(d, c string) AllocStatus { return AllocStatus{Desired: d, Client: c} }
	check := func(step string, want map[AllocStatus]int) {
		t.Helper()
		if got := h.st.AllocCounts(); !maps.Equal(got, want) {
			t.Fatalf("%s: counts %v, want %v", step, got, want)
		}
		if got := restored(t, h); !maps.Equal(got, want) {
			t.Fatalf("%s: a rebuild counts %v, want %v", step, got, want)
		}
	}
	check("empty", map[AllocStatus]int{})
	h.must(&PlanApply{Place: []*sched.Allocation{testAlloc("a1", "web", "n1"), testAlloc("a2", "web", "n1"), testAlloc("a3", "web", "n1")}})
	check("placed", map[AllocStatus]int{run(sched.DesiredRun, sched.ClientPending): 3})
	h.must(&AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientRunning}, {AllocID: "a2", ClientStatus: sched.ClientRunning}}})
	check("running", map[AllocStatus]int{run(sched.DesiredRun, sched.ClientPending): 1, run(sched.DesiredRun, sched.ClientRunning): 2})
	// One batch: a4 placed and finished, a1 failed, a2 stopped, a2 reported twice.
	h.must(
		&PlanApply{Place: []*sched.Allocation{testAlloc("a4", "web", "n1")}, Stop: []AllocStop{{ID: "a2", Desc: "test"}}},
		&AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "a4", ClientStatus: sched.ClientComplete}, {AllocID: "a1", ClientStatus: sched.ClientFailed}}},
		&AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "a2", ClientStatus: sched.ClientComplete}}},
	)
	check("one batch", map[AllocStatus]int{
		run(sched.DesiredRun, sched.ClientPending): 1, run(sched.DesiredRun, sched.ClientComplete): 1,
		run(sched.DesiredRun, sched.ClientFailed): 1, run(sched.DesiredStop, sched.ClientComplete): 1,
	})
}

// Garbage collection deletes allocations: they leave the counts.
func TestAllocCountsAfterGC(t *testing.T) {
	h := gcWorld(t)
	before := 0
	for _, n := range h.st.AllocCounts() {
		before += n
	}
	res, _ := h.apply(&SystemGC{KeepVersions: 1})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	got, total := h.st.AllocCounts(), 0
	for _, n := range got {
		total += n
	}
	if collected := res[0].Value.(*GCResult).Allocs; collected == 0 || total != before-collected {
		t.Fatalf("%d allocations before, %d collected, %d counted after", before, collected, total)
	}
	if want := restored(t, h); !maps.Equal(got, want) {
		t.Fatalf("counts after gc %v, a rebuild counts %v", got, want)
	}
}
