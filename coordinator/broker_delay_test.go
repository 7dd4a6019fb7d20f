package coordinator

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
)

// TestDelayedEvalsFireWhenDue: an evaluation with a WaitUntil is queued
// exactly when due, the earliest first even when it arrived last, and
// nothing is queued before (the fake clock of synctest advances only
// when every goroutine is blocked, so a busy loop would never let it).
func TestDelayedEvalsFireWhenDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newEvalQueue(func(string) int { return 0 })
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			q.runDelayed(ctx)
		}()
		start := time.Now()
		at := func(d time.Duration) int64 { return start.Add(d).UnixNano() }
		q.push(&structs.Eval{ID: "late", JobID: "b", Status: structs.EvalPending, WaitUntil: at(30 * time.Second)})
		q.push(&structs.Eval{ID: "soon", JobID: "a", Status: structs.EvalPending, WaitUntil: at(5 * time.Second)})
		q.push(&structs.Eval{ID: "soon", JobID: "a", Status: structs.EvalPending, WaitUntil: at(5 * time.Second)}) // again: held once
		q.push(&structs.Eval{ID: "past", JobID: "c", Status: structs.EvalPending, WaitUntil: at(-time.Second)})
		synctest.Wait()
		if n := q.delayed.len(); n != 2 {
			t.Fatalf("%d evaluations held, want 2", n)
		}
		for _, want := range []struct {
			id    string
			after time.Duration
		}{{"past", 0}, {"soon", 5 * time.Second}, {"late", 30 * time.Second}} {
			e, err := q.pop(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != want.id || time.Since(start) != want.after {
				t.Fatalf("popped %s after %s, want %s after %s", e.ID, time.Since(start), want.id, want.after)
			}
			q.done(e.JobID)
		}
		cancel()
		<-done
	})
}

// TestDelayedEvalsReset: a new term drops what the last one held (it
// loads the pending evaluations from the state again).
func TestDelayedEvalsReset(t *testing.T) {
	q := newEvalQueue(func(string) int { return 0 })
	q.push(&structs.Eval{ID: "f", JobID: "j", Status: structs.EvalPending, WaitUntil: time.Now().Add(time.Hour).UnixNano()})
	if q.delayed.len() != 1 {
		t.Fatal("follow-up not held")
	}
	q.reset()
	if q.delayed.len() != 0 {
		t.Fatal("reset kept a held evaluation")
	}
	q.push(&structs.Eval{ID: "f", JobID: "j", Status: structs.EvalPending, WaitUntil: time.Now().Add(time.Hour).UnixNano()})
	if q.delayed.len() != 1 {
		t.Fatal("follow-up not held again after reset")
	}
}
