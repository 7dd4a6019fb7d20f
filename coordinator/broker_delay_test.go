package coordinator

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-run/strata/coordinator/state"
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

// A new leader finds the follow-ups in the state: startLeading holds the
// one not yet due (not queued before its time) and queues the one due.
func TestNewLeaderLoadsFollowUps(t *testing.T) {
	st := openStore(t)
	rec := &commandRecorder{t: t, store: st}
	now := time.Now()
	rec.apply(&state.EvalUpsert{Evals: []*structs.Eval{
		{ID: "later", JobID: "a", TriggeredBy: "alloc-failure", Status: structs.EvalPending, WaitUntil: now.Add(time.Hour).UnixNano()},
		{ID: "due", JobID: "b", TriggeredBy: "alloc-failure", Status: structs.EvalPending, WaitUntil: now.Add(-time.Second).UnixNano()},
	}})
	s := newScheduler(st, rec.apply, nil, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.startLeading(); err != nil {
		t.Fatal(err)
	}
	if n := s.broker.delayed.len(); n != 1 {
		t.Fatalf("%d follow-ups held, want the one not due", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if e, err := s.broker.pop(ctx); err != nil || e.ID != "due" {
		t.Fatalf("popped %v, %v; want the due follow-up", e, err)
	}
}
