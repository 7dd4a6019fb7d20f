package coordinator

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
)

// delayedEvals holds the evaluations whose WaitUntil has not come (the
// follow-ups that reschedule failed allocations after their delay), in a
// heap by due time, and hands each to the broker's queue when due. One
// goroutine, run by the leader's scheduler (Run), sleeps on one timer
// until the earliest is due: never a busy loop. They are pending in the
// state, so a new leader loads them again (startLeading).
type delayedEvals struct {
	mu   sync.Mutex
	h    evalHeap
	ids  map[string]bool // eval IDs in h
	wake chan struct{}   // an earlier deadline arrived
}

func newDelayedEvals() *delayedEvals {
	return &delayedEvals{ids: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// add holds e until its WaitUntil; an eval already held is ignored.
func (d *delayedEvals) add(e *structs.Eval) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids[e.ID] {
		return
	}
	d.ids[e.ID] = true
	heap.Push(&d.h, e)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// reset drops every held evaluation (a new term loads them again).
func (d *delayedEvals) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.h, d.ids = nil, map[string]bool{}
}

// len is how many evaluations wait.
func (d *delayedEvals) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.h)
}

// due removes and returns the evaluations due at now, and the time the
// next one is due (zero: none left).
func (d *delayedEvals) due(now time.Time) ([]*structs.Eval, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*structs.Eval
	for len(d.h) > 0 && d.h[0].WaitUntil <= now.UnixNano() {
		e := heap.Pop(&d.h).(*structs.Eval)
		delete(d.ids, e.ID)
		out = append(out, e)
	}
	if len(d.h) == 0 {
		return out, time.Time{}
	}
	return out, time.Unix(0, d.h[0].WaitUntil)
}

// run hands due evaluations to release until ctx ends.
func (d *delayedEvals) run(ctx context.Context, release func(*structs.Eval)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		ready, next := d.due(time.Now())
		for _, e := range ready {
			release(e)
		}
		wait := time.Hour // re-checked when an earlier one arrives
		if !next.IsZero() {
			wait = time.Until(next)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// evalHeap orders evaluations by WaitUntil, then ID.
type evalHeap []*structs.Eval

func (h evalHeap) Len() int { return len(h) }
func (h evalHeap) Less(i, j int) bool {
	if h[i].WaitUntil != h[j].WaitUntil {
		return h[i].WaitUntil < h[j].WaitUntil
	}
	return h[i].ID < h[j].ID
}
func (h evalHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *evalHeap) Push(x any)   { *h = append(*h, x.(*structs.Eval)) }
func (h *evalHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
