package coordinator

import (
	"context"
	"sync"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
)

// evalQueue is the leader's evaluation broker: at most one queued
// evaluation per job (a newer one supersedes it, since every evaluation
// reconciles the job's latest state), at most one in flight per job, and
// the highest job priority first, FIFO within a priority.
type evalQueue struct {
	mu       sync.Mutex
	order    []string                 // queued job IDs in arrival order
	pending  map[string]*structs.Eval // job ID -> newest queued eval
	inflight map[string]bool          // jobs a worker is processing
	pri      map[string]int           // queued job ID -> priority, read at push
	blocked  map[string]*structs.Eval // job ID -> eval waiting for capacity
	capIndex uint64                   // state index of the last capacity change
	ready    chan struct{}            // wake-up for workers
	priority func(jobID string) int
	delayed  *delayedEvals // evals whose WaitUntil has not come

	// acked, if set, is told how long each evaluation took from entering
	// the queue (the first of those superseding each other) until its
	// worker's done; since holds when each queued job's came, taken the
	// same for the jobs in flight.
	acked        func(time.Duration)
	since, taken map[string]time.Time
}

func newEvalQueue(priority func(string) int) *evalQueue {
	q := &evalQueue{ready: make(chan struct{}, 1), priority: priority, delayed: newDelayedEvals()}
	q.reset()
	return q
}

func (q *evalQueue) reset() {
	q.delayed.reset()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.order, q.pending, q.inflight, q.blocked, q.pri = nil, map[string]*structs.Eval{}, map[string]bool{}, map[string]*structs.Eval{}, map[string]int{}
	q.since, q.taken = map[string]time.Time{}, map[string]time.Time{}
}

func (q *evalQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push enqueues e; a blocked eval waits for unblock instead, and one
// whose WaitUntil has not come waits for it (runDelayed).
func (q *evalQueue) push(e *structs.Eval) {
	if e.Status == structs.EvalPending && e.WaitUntil > time.Now().UnixNano() {
		q.delayed.add(e)
		return
	}
	pri := q.priority(e.JobID) // outside the lock: it reads the state
	q.mu.Lock()
	defer q.mu.Unlock()
	if e.Status == structs.EvalBlocked {
		if e.SnapshotIndex >= q.capIndex {
			q.blocked[e.JobID] = e
			return
		}
		// Capacity changed after this plan's snapshot: the unblock came
		// too early for it, so retry now instead of waiting for the next.
		retry := *e
		retry.Status = structs.EvalPending
		e = &retry
	}
	delete(q.blocked, e.JobID)
	if _, ok := q.pending[e.JobID]; !ok {
		q.order = append(q.order, e.JobID)
		if q.acked != nil {
			q.since[e.JobID] = time.Now()
		}
	}
	q.pending[e.JobID] = e
	q.pri[e.JobID] = pri
	q.wake()
}

// runDelayed queues each delayed evaluation when due, until ctx ends.
func (q *evalQueue) runDelayed(ctx context.Context) {
	q.delayed.run(ctx, q.push)
}

// unblock moves every blocked eval back to the queue: capacity changed
// at state index index.
func (q *evalQueue) unblock(index uint64) {
	q.mu.Lock()
	q.capIndex = max(q.capIndex, index)
	blocked := q.blocked
	q.blocked = map[string]*structs.Eval{}
	q.mu.Unlock()
	for _, e := range blocked {
		retry := *e
		retry.Status = structs.EvalPending
		q.push(&retry)
	}
}

// pop waits for the next eval whose job is not in flight, and marks the
// job in flight until done.
func (q *evalQueue) pop(ctx context.Context) (*structs.Eval, error) {
	for {
		q.mu.Lock()
		best, bestPri := -1, 0
		for i, job := range q.order {
			if q.inflight[job] {
				continue
			}
			if p := q.pri[job]; best < 0 || p > bestPri {
				best, bestPri = i, p
			}
		}
		if best >= 0 {
			job := q.order[best]
			q.order = append(q.order[:best], q.order[best+1:]...)
			e := q.pending[job]
			delete(q.pending, job)
			delete(q.pri, job)
			q.inflight[job] = true
			if t, ok := q.since[job]; ok {
				q.taken[job] = t
				delete(q.since, job)
			}
			if len(q.order) > 0 {
				q.wake() // another worker may take the next one
			}
			q.mu.Unlock()
			return e, nil
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.ready:
		}
	}
}

// done releases a job popped by pop.
func (q *evalQueue) done(jobID string) {
	q.mu.Lock()
	delete(q.inflight, jobID)
	more := len(q.order) > 0
	since, timed := q.taken[jobID]
	delete(q.taken, jobID)
	q.mu.Unlock()
	if timed {
		q.acked(time.Since(since))
	}
	if more {
		q.wake()
	}
}
