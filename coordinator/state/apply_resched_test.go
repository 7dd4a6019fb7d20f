package state

import (
	"reflect"
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// TestRescheduleChain follows one failed allocation through the FSM: its
// failure time is stamped, a plan asks for a follow-up evaluation (kept
// pending with its WaitUntil, so a new leader finds it) and marks the
// allocation with it; the plan that reschedules it places a replacement
// linked to it and stops it in the same transaction; replaying the log on
// a fresh store gives the same state.
func TestRescheduleChain(t *testing.T) {
	h := newHarness(t)
	const failedAt, due = int64(1_000), int64(5_000_001_000)
	h.must(&NodeRegister{Node: testNode("n1", 1000, 1000)}, &JobRegister{Job: testJob("web", "m@1"), EvalID: "e0"},
		&PlanApply{Place: []*sched.Allocation{testAlloc("a1", "web", "n1")}, Eval: &structs.Eval{ID: "e0", JobID: "web", Status: structs.EvalComplete}})
	h.must(&AllocUpdate{NodeID: "n1", Time: failedAt, Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientFailed}}})
	a1, err := h.st.Alloc("a1")
	if err != nil || a1.FinishedAt != failedAt {
		t.Fatalf("failed allocation %+v, %v: want FinishedAt %d", a1, err, failedAt)
	}

	fx := h.must(&PlanApply{Eval: &structs.Eval{ID: "e1", JobID: "web", Status: structs.EvalComplete},
		FollowUps: []FollowUp{{EvalID: "f1", WaitUntil: due, AllocIDs: []string{"a1"}}}})
	var queued *structs.Eval
	for _, e := range fx.Evals {
		if e.ID == "f1" {
			queued = e
		}
	}
	if queued == nil || queued.WaitUntil != due || queued.Status != structs.EvalPending || queued.JobID != "web" {
		t.Fatalf("effects' evaluations %+v: want f1 pending until %d", fx.Evals, due)
	}
	pending, err := h.st.Evals(structs.EvalPending)
	if err != nil || len(pending) != 1 || pending[0].ID != "f1" || pending[0].WaitUntil != due {
		t.Fatalf("pending evaluations %+v, %v: want f1 with its WaitUntil", pending, err)
	}
	if a1, _ = h.st.Alloc("a1"); a1.FollowupEvalID != "f1" || a1.DesiredStatus != sched.DesiredRun {
		t.Fatalf("allocation %+v: want FollowupEvalID f1, still desired to run", a1.Allocation)
	}

	// A second plan asking again leaves the first follow-up in place.
	h.must(&PlanApply{Eval: &structs.Eval{ID: "e2", JobID: "web", Status: structs.EvalComplete},
		FollowUps: []FollowUp{{EvalID: "f2", WaitUntil: due, AllocIDs: []string{"a1"}}}})
	if a1, _ = h.st.Alloc("a1"); a1.FollowupEvalID != "f1" {
		t.Fatalf("FollowupEvalID %q after a second follow-up, want f1", a1.FollowupEvalID)
	}

	repl := testAlloc("a2", "web", "n1")
	repl.PreviousAllocation = "a1"
	repl.RescheduleTracker = &sched.RescheduleTracker{Events: []sched.RescheduleEvent{{RescheduleTime: due, PrevAllocID: "a1", PrevNodeID: "n1", Delay: 5e9}}}
	h.must(&PlanApply{Place: []*sched.Allocation{repl}, Eval: &structs.Eval{ID: "f1", JobID: "web", Status: structs.EvalComplete}})
	a1, _ = h.st.Alloc("a1")
	if a1.NextAllocation != "a2" || a1.DesiredStatus != sched.DesiredStop || a1.DesiredDesc != sched.DescRescheduled || a1.ClientStatus != sched.ClientFailed {
		t.Fatalf("replaced allocation %+v: want NextAllocation a2, stopped as rescheduled, still failed", a1.Allocation)
	}
	a2, _ := h.st.Alloc("a2")
	if a2.PreviousAllocation != "a1" || a2.RescheduleTracker == nil || len(a2.RescheduleTracker.Events) != 1 || a2.RescheduleTracker.Events[0].Delay != 5e9 {
		t.Fatalf("replacement %+v: want PreviousAllocation a1 and its tracker", a2.Allocation)
	}

	// Replay: a follower (or a restarted server) builds the same state.
	replay := newHarness(t)
	if _, _, err := replay.st.Apply(h.log); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpStore(t, replay.st), dumpStore(t, h.st); !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed state differs:\n got %+v\nwant %+v", got, want)
	}
}

func TestFollowUpRefusals(t *testing.T) {
	h := newHarness(t)
	if err := h.refused(&PlanApply{FollowUps: []FollowUp{{EvalID: "f", AllocIDs: []string{"a"}}}}); err == nil {
		t.Fatal("follow-up without the plan's evaluation applied")
	}
	h.refused(&PlanApply{Eval: &structs.Eval{ID: "e", JobID: "j"}, FollowUps: []FollowUp{{AllocIDs: []string{"a"}}}})
	if evals, _ := h.st.Evals(structs.EvalPending); len(evals) != 0 {
		t.Fatalf("a refused plan wrote evaluations %+v", evals)
	}
}
