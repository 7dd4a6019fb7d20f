package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
)

func TestEvalQueuePriorityAndInFlight(t *testing.T) {
	pri := map[string]int{"low": 10, "high": 90, "mid": 50}
	q := newEvalQueue(func(job string) int { return pri[job] })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q.push(&structs.Eval{ID: "1", JobID: "low", Status: structs.EvalPending})
	q.push(&structs.Eval{ID: "2", JobID: "mid", Status: structs.EvalPending})
	q.push(&structs.Eval{ID: "3", JobID: "high", Status: structs.EvalPending})
	q.push(&structs.Eval{ID: "4", JobID: "mid", Status: structs.EvalPending}) // supersedes 2
	var got []string
	for range 3 {
		e, err := q.pop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.ID)
	}
	if got[0] != "3" || got[1] != "4" || got[2] != "1" {
		t.Fatalf("pop order = %v, want [3 4 1] (priority, newest eval per job)", got)
	}
	// "high" is in flight: a new eval for it waits until done.
	q.push(&structs.Eval{ID: "5", JobID: "high", Status: structs.EvalPending})
	q.push(&structs.Eval{ID: "6", JobID: "low", Status: structs.EvalPending})
	q.done("low")
	e, _ := q.pop(ctx)
	if e.ID != "6" {
		t.Fatalf("popped %s while job high is in flight; want 6", e.ID)
	}
	if e, err := q.pop(shortCtx(t)); err == nil {
		t.Fatalf("popped %s for a job still in flight", e.ID)
	}
	q.done("high")
	if e, err := q.pop(ctx); err != nil || e.ID != "5" {
		t.Fatalf("after done: %v %v, want 5", e, err)
	}
	// Blocked evals wait for capacity.
	q.done("high")
	q.push(&structs.Eval{ID: "7", JobID: "mid", Status: structs.EvalBlocked})
	if e, err := q.pop(shortCtx(t)); err == nil {
		t.Fatalf("popped blocked eval %s", e.ID)
	}
	q.done("mid")
	q.unblock(1)
	if e, err := q.pop(ctx); err != nil || e.ID != "7" || e.Status != structs.EvalPending {
		t.Fatalf("unblocked = %+v %v", e, err)
	}
}

// shortCtx bounds a pop that must find nothing.
func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// A plan made on a snapshot older than the last capacity change comes
// back blocked after the unblock already ran: it must retry, not wait.
func TestBlockedEvalAfterCapacityChangeRetries(t *testing.T) {
	q := newEvalQueue(func(string) int { return 50 })
	q.unblock(7) // a node registered at index 7
	q.push(&structs.Eval{ID: "late", JobID: "j", Status: structs.EvalBlocked, SnapshotIndex: 5})
	if e, err := q.pop(shortCtx(t)); err != nil || e.ID != "late" || e.Status != structs.EvalPending {
		t.Fatalf("blocked eval planned before the capacity change: %+v %v; want it retried", e, err)
	}
	q.done("j")
	q.push(&structs.Eval{ID: "current", JobID: "j", Status: structs.EvalBlocked, SnapshotIndex: 8})
	if e, err := q.pop(shortCtx(t)); err == nil {
		t.Fatalf("blocked eval planned after the capacity change was retried: %+v", e)
	}
}
