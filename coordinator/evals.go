package coordinator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/strata-run/strata/sched"
)

// evalQueue is the leader's evaluation broker: at most one queued
// evaluation per job (a newer one supersedes it, since every evaluation
// reconciles the job's latest state), at most one in flight per job, and
// the highest job priority first, FIFO within a priority.
type evalQueue struct {
	mu       sync.Mutex
	order    []string         // queued job IDs in arrival order
	pending  map[string]*Eval // job ID -> newest queued eval
	inflight map[string]bool  // jobs a worker is processing
	pri      map[string]int   // queued job ID -> priority, read at push
	blocked  map[string]*Eval // job ID -> eval waiting for capacity
	capIndex uint64           // state index of the last capacity change
	ready    chan struct{}    // wake-up for workers
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
	q.order, q.pending, q.inflight, q.blocked, q.pri = nil, map[string]*Eval{}, map[string]bool{}, map[string]*Eval{}, map[string]int{}
}

func (q *evalQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push enqueues e; a blocked eval waits for unblock instead.
func (q *evalQueue) push(e *Eval) {
	pri := q.priority(e.JobID) // outside the lock: it reads the state
	q.mu.Lock()
	defer q.mu.Unlock()
	if e.Status == EvalBlocked {
		if e.SnapshotIndex >= q.capIndex {
			q.blocked[e.JobID] = e
			return
		}
		// Capacity changed after this plan's snapshot: the unblock came
		// too early for it, so retry now instead of waiting for the next.
		retry := *e
		retry.Status = EvalPending
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
	q.blocked = map[string]*Eval{}
	q.mu.Unlock()
	for _, e := range blocked {
		retry := *e
		retry.Status = EvalPending
		q.push(&retry)
	}
}

// pop waits for the next eval whose job is not in flight, and marks the
// job in flight until done.
func (q *evalQueue) pop(ctx context.Context) (*Eval, error) {
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
func (s *Server) process(ctx context.Context, e *Eval) error {
	for attempt := 1; ; attempt++ {
		snapshot := s.store.Index()
		req, err := s.scheduleRequest(e)
		if err != nil {
			return err
		}
		req.Attempt = snapshot // a re-plan draws new allocation IDs
		plan, err := sched.Schedule(req)
		if err != nil {
			return s.finishEval(e, EvalComplete, nil, fmt.Errorf("scheduler: %w", err))
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
	// Plans are checked one at a time, each against the committed state
	// plus the placements of plans proposed but not yet applied; the lock
	// is released once the plan is proposed, so the next plan is checked
	// while this one commits (Nomad's pipelined plan applier).
	s.planMu.Lock()
	locked := true
	defer func() {
		if locked {
			s.planMu.Unlock()
		}
	}()
	rec, err := s.store.Job(e.JobID)
	if err != nil {
		return 0, err
	}
	// The nodes the plan touches, copied from the shared index so the
	// check can account for the plan's own stops and placements.
	view := map[string]*sched.NodeState{}
	node := func(id string) *sched.NodeState {
		if v, ok := view[id]; ok {
			return v
		}
		var c *sched.NodeState
		if ns := s.store.NodeState(id); ns != nil {
			cp := *ns
			cp.UsedPorts = maps.Clone(ns.UsedPorts)
			s.inflight.addTo(&cp)
			c = &cp
		}
		view[id] = c
		return c
	}
	cmd := &planApplyCmd{}
	// Stops release their capacity to this plan's own placements (a
	// destructive update on a full node replaces in place), as the FSM does.
	for _, a := range plan.Stop {
		cmd.Stop = append(cmd.Stop, allocStop{ID: a.ID, Desc: a.DesiredDesc})
		n := node(a.NodeID)
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
		n := node(p.NodeID)
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
		p.ID = s.allocIDs.next()
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
	payload, err := encodePlanCmd(cmd)
	if err != nil {
		return 0, err
	}
	token := s.inflight.add(cmd.Place)
	defer s.inflight.remove(token)
	f := s.raft.Apply(append([]byte{byte(cmdPlanApply)}, payload...), 30*time.Second)
	s.planMu.Unlock()
	locked = false
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("coordinator: commit plan: %w", err)
	}
	if err, ok := f.Response().(error); ok {
		return 0, err
	}
	return rejected, nil
}

// inflightPlans holds the placements of plans proposed to Raft but not yet
// applied, so the plan applier counts them when checking the next plan.
// Between the FSM publishing a plan and its removal here, its placements
// count twice: that can only make the check reject (the evaluation then
// retries), never overcommit.
type inflightPlans struct {
	mu    sync.Mutex
	next  int
	plans map[int][]*sched.Allocation
	nodes map[string][]*sched.Allocation // the same placements by node
}

func (p *inflightPlans) add(place []*sched.Allocation) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.plans == nil {
		p.plans, p.nodes = map[int][]*sched.Allocation{}, map[string][]*sched.Allocation{}
	}
	p.next++
	p.plans[p.next] = place
	for _, a := range place {
		p.nodes[a.NodeID] = append(p.nodes[a.NodeID], a)
	}
	return p.next
}

func (p *inflightPlans) remove(token int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.plans[token] {
		list := p.nodes[a.NodeID]
		if i := slices.Index(list, a); i >= 0 {
			list = slices.Delete(list, i, i+1)
		}
		if len(list) == 0 {
			delete(p.nodes, a.NodeID)
		} else {
			p.nodes[a.NodeID] = list
		}
	}
	delete(p.plans, token)
}

// addTo adds the in-flight placements on ns's node to ns (a private copy).
func (p *inflightPlans) addTo(ns *sched.NodeState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.nodes[ns.Node.ID] {
		ns.Used = ns.Used.Add(a.Resources)
		for _, port := range a.Ports {
			ns.UsedPorts[port.Value] = true
		}
	}
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
		s.evals.unblock(fx.index)
	}
}
