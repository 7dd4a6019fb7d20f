package coordinator

import (
	"context"
	"fmt"
	"sync"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
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
}

func newEvalQueue(priority func(string) int) *evalQueue {
	q := &evalQueue{ready: make(chan struct{}, 1), priority: priority}
	q.reset()
	return q
}

func (q *evalQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.order, q.pending, q.inflight, q.blocked, q.pri = nil, map[string]*structs.Eval{}, map[string]bool{}, map[string]*structs.Eval{}, map[string]int{}
}

func (q *evalQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push enqueues e; a blocked eval waits for unblock instead.
func (q *evalQueue) push(e *structs.Eval) {
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
	}
	q.pending[e.JobID] = e
	q.pri[e.JobID] = pri
	q.wake()
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
	q.mu.Unlock()
	if more {
		q.wake()
	}
}

// runWorker processes evaluations until ctx ends (leadership lost).
func (s *Server) runWorker(ctx context.Context) {
	for {
		e, err := s.evals.pop(ctx)
		if err != nil {
			return
		}
		err = s.process(ctx, e)
		s.evals.done(e.JobID)
		if err != nil {
			s.log.Error("evaluation failed", "eval", e.ID, "job", e.JobID, "err", err)
		}
	}
}

// maxPlanAttempts bounds how often one eval is re-planned after the
// applier rejected part of its plan.
const maxPlanAttempts = 5

// process schedules one evaluation: snapshot, sched.Schedule, apply the
// plan (partially, if the cluster changed underneath), retry what was
// rejected on a fresh snapshot.
func (s *Server) process(ctx context.Context, e *structs.Eval) error {
	for attempt := 1; ; attempt++ {
		snapshot := s.store.Index()
		req, err := s.scheduleRequest(e)
		if err != nil {
			return err
		}
		req.Attempt = snapshot // a re-plan draws new allocation IDs
		plan, err := sched.Schedule(req)
		if err != nil {
			return s.finishEval(e, structs.EvalComplete, nil, fmt.Errorf("scheduler: %w", err))
		}
		planned := *e
		planned.SnapshotIndex = snapshot
		rejected, err := s.applyPlan(plan, &planned)
		if err != nil {
			return err
		}
		if rejected == 0 {
			return nil
		}
		if attempt == maxPlanAttempts || ctx.Err() != nil {
			s.log.Warn("plan still conflicts after retries; eval left pending", "eval", e.ID, "rejected", rejected)
			s.evals.push(e)
			return nil
		}
	}
}

func (s *Server) scheduleRequest(e *structs.Eval) (*sched.Request, error) {
	rec, err := s.store.Job(e.JobID)
	if err != nil {
		return nil, err
	}
	nodes := s.store.NodeStates()
	allocs, err := s.store.JobAllocs(e.JobID)
	if err != nil {
		return nil, err
	}
	req := &sched.Request{EvalID: e.ID, Nodes: nodes}
	for _, a := range allocs {
		a := a.Allocation
		req.Existing = append(req.Existing, &a)
	}
	if rec == nil {
		req.Stopped = true
		return req, nil
	}
	req.Job, req.JobVersion, req.Stopped = rec.Job, rec.Version, rec.Stopped
	return req, nil
}

func (s *Server) finishEval(e *structs.Eval, status string, failed map[string]*sched.Explanation, cause error) error {
	done := *e
	done.Status, done.Failed = status, failed
	if _, _, err := s.apply(&state.EvalUpsert{Evals: []*structs.Eval{&done}}); err != nil {
		return err
	}
	return cause
}

// enqueueJobEval creates an evaluation for a job through Raft; the FSM
// hands it to the leader's queue.
func (s *Server) enqueueJobEval(jobID, trigger string) error {
	e := &structs.Eval{ID: newEvalID(), JobID: jobID, TriggeredBy: trigger, Status: structs.EvalPending}
	_, _, err := s.apply(&state.EvalUpsert{Evals: []*structs.Eval{e}})
	return err
}

// applied is the FSM's hook: on the leader, queue new evaluations and
// retry blocked ones when capacity grew. On followers it does nothing;
// a new leader loads pending and blocked evaluations from the state.
func (s *Server) applied(fx *state.Effects) {
	if !s.leading.Load() {
		return
	}
	for _, e := range fx.Evals {
		s.evals.push(e)
	}
	if fx.Capacity {
		s.evals.unblock(fx.Index)
	}
}
