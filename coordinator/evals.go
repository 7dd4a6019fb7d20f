package coordinator

import (
	"context"
	"fmt"
	"sync"

	"github.com/strata-run/strata/sched"
)

// evalQueue holds the leader's evaluations waiting for the worker: at most
// one queued per job (a newer eval for the same job supersedes the queued
// one, since every eval reconciles the job's latest state), FIFO across jobs.
type evalQueue struct {
	mu      sync.Mutex
	order   []string         // job IDs in arrival order
	pending map[string]*Eval // job ID -> newest eval
	blocked map[string]*Eval // job ID -> eval waiting for capacity
	ready   chan struct{}    // 1-buffered wake-up
}

func newEvalQueue() *evalQueue {
	q := &evalQueue{ready: make(chan struct{}, 1)}
	q.reset()
	return q
}

func (q *evalQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.order, q.pending, q.blocked = nil, map[string]*Eval{}, map[string]*Eval{}
}

// push enqueues e; a blocked eval waits for unblock instead.
func (q *evalQueue) push(e *Eval) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e.Status == EvalBlocked {
		q.blocked[e.JobID] = e
		return
	}
	delete(q.blocked, e.JobID)
	if _, ok := q.pending[e.JobID]; !ok {
		q.order = append(q.order, e.JobID)
	}
	q.pending[e.JobID] = e
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// unblock moves every blocked eval back to the queue: capacity changed.
func (q *evalQueue) unblock() {
	q.mu.Lock()
	blocked := q.blocked
	q.blocked = map[string]*Eval{}
	q.mu.Unlock()
	for _, e := range blocked {
		retry := *e
		retry.Status = EvalPending
		q.push(&retry)
	}
}

// pop waits for the next eval.
func (q *evalQueue) pop(ctx context.Context) (*Eval, error) {
	for {
		q.mu.Lock()
		if len(q.order) > 0 {
			job := q.order[0]
			q.order = q.order[1:]
			e := q.pending[job]
			delete(q.pending, job)
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

// runWorker processes evaluations until ctx ends (leadership lost).
func (s *Server) runWorker(ctx context.Context) {
	for {
		e, err := s.evals.pop(ctx)
		if err != nil {
			return
		}
		if err := s.process(ctx, e); err != nil {
			s.log.Error("evaluation failed", "eval", e.ID, "job", e.JobID, "err", err)
			continue
		}
	}
}

// maxPlanAttempts bounds how often one eval is re-planned after the
// applier rejected part of its plan.
const maxPlanAttempts = 5

// process schedules one evaluation: snapshot, sched.Schedule, apply the
// plan (partially, if the cluster changed underneath), retry what was
// rejected on a fresh snapshot.
func (s *Server) process(ctx context.Context, e *Eval) error {
	for attempt := 1; ; attempt++ {
		req, err := s.scheduleRequest(e)
		if err != nil {
			return err
		}
		plan, err := sched.Schedule(req)
		if err != nil {
			return s.finishEval(e, EvalComplete, nil, fmt.Errorf("scheduler: %w", err))
		}
		rejected, err := s.applyPlan(plan, e)
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

func (s *Server) scheduleRequest(e *Eval) (*sched.Request, error) {
	rec, err := s.store.Job(e.JobID)
	if err != nil {
		return nil, err
	}
	nodes, err := s.store.NodeStates()
	if err != nil {
		return nil, err
	}
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

// applyPlan is the plan applier: it re-checks every placement against the
// current state of its node (another worker, or a node change, may have
// used the capacity since the snapshot), commits what still fits together
// with the stops and the eval's new status, and returns how many
// placements it rejected.
func (s *Server) applyPlan(plan *sched.Plan, e *Eval) (int, error) {
	nodes, err := s.store.NodeStates()
	if err != nil {
		return 0, err
	}
	byID := make(map[string]*sched.NodeState, len(nodes))
	for _, n := range nodes {
		byID[n.Node.ID] = n
	}
	rec, err := s.store.Job(e.JobID)
	if err != nil {
		return 0, err
	}
	cmd := &planApplyCmd{}
	// Stops release their capacity to this plan's own placements (a
	// destructive update on a full node replaces in place), so apply them
	// to the view first, as the FSM does.
	for _, a := range plan.Stop {
		cmd.Stop = append(cmd.Stop, allocStop{ID: a.ID, Desc: a.DesiredDesc})
		n := byID[a.NodeID]
		if n == nil {
			continue
		}
		cur, err := s.store.Alloc(a.ID)
		if err != nil {
			return 0, err
		}
		if cur == nil || cur.Terminal() {
			continue // already not holding resources in the current state
		}
		n.Used = sched.Resources{CPU: n.Used.CPU - cur.Resources.CPU, MemoryMB: n.Used.MemoryMB - cur.Resources.MemoryMB}
		for _, port := range cur.Ports {
			delete(n.UsedPorts, port.Value)
		}
	}
	rejected := 0
	for _, p := range plan.Place {
		n := byID[p.NodeID]
		if n == nil || rec == nil {
			rejected++
			continue
		}
		if err := sched.Fits(n, p, rec.Job); err != nil {
			s.log.Debug("plan applier rejected placement", "alloc", p.Name, "node", p.NodeName, "reason", err)
			rejected++
			continue
		}
		n.Used = n.Used.Add(p.Resources)
		for _, port := range p.Ports {
			n.UsedPorts[port.Value] = true
		}
		cmd.Place = append(cmd.Place, p)
	}
	status := EvalComplete
	if len(plan.Failed) > 0 {
		status = EvalBlocked
	}
	if rejected > 0 {
		status = EvalPending
	}
	done := *e
	done.Status, done.Failed = status, plan.Failed
	cmd.Eval = &done
	if _, _, err := s.apply(cmdPlanApply, cmd); err != nil {
		return 0, err
	}
	return rejected, nil
}

func (s *Server) finishEval(e *Eval, status string, failed map[string]*sched.Explanation, cause error) error {
	done := *e
	done.Status, done.Failed = status, failed
	if _, _, err := s.apply(cmdEvalUpsert, &evalUpsertCmd{Evals: []*Eval{&done}}); err != nil {
		return err
	}
	return cause
}

// enqueueJobEval creates an evaluation for a job through Raft; the FSM
// hands it to the leader's queue.
func (s *Server) enqueueJobEval(jobID, trigger string) error {
	e := &Eval{ID: newEvalID(), JobID: jobID, TriggeredBy: trigger, Status: EvalPending}
	_, _, err := s.apply(cmdEvalUpsert, &evalUpsertCmd{Evals: []*Eval{e}})
	return err
}

// applied is the FSM's hook: on the leader, queue new evaluations and
// retry blocked ones when capacity grew. On followers it does nothing;
// a new leader loads pending and blocked evaluations from the state.
func (s *Server) applied(fx *effects) {
	if !s.leading.Load() {
		return
	}
	for _, e := range fx.evals {
		s.evals.push(e)
	}
	if fx.capacity {
		s.evals.unblock()
	}
}
