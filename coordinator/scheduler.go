package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-run/strata/coordinator/deploy"
	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// scheduler is the leader's scheduling side: the evaluation broker, the
// workers that turn an evaluation into a plan (package sched, on a
// snapshot of the state) and hand it to the plan applier, and the rules
// that turn what the state machine did into evaluations. It hears of
// every committed batch through applied (the Raft adapter's hook) and
// acts on it only while this server leads.
type scheduler struct {
	store   *state.Store
	apply   applyFunc
	plans   *planApplier
	broker  *evalQueue
	workers int
	log     *slog.Logger

	leading atomic.Bool // the leader's duties run (set before pending evals load)

	mu       sync.Mutex
	triggers map[string]string // job ID -> why it needs an evaluation, not yet proposed
	order    []string          // the jobs of triggers, in arrival order
	wake     chan struct{}     // a trigger arrived
}

func newScheduler(store *state.Store, apply applyFunc, plans *planApplier, workers int, log *slog.Logger) *scheduler {
	s := &scheduler{store: store, apply: apply, plans: plans, workers: workers, log: log,
		triggers: map[string]string{}, wake: make(chan struct{}, 1)}
	s.broker = newEvalQueue(s.jobPriority)
	return s
}

// jobPriority is an evaluation's priority in the broker: its job's.
func (s *scheduler) jobPriority(jobID string) int {
	if rec, err := s.store.Job(jobID); err == nil && rec != nil {
		return rec.Job.Priority
	}
	return 0
}

// startLeading begins a term's scheduling: from here the Raft adapter's
// hook queues new evaluations; the ones already committed are loaded
// here (a duplicate is harmless: one per job).
func (s *scheduler) startLeading() error {
	s.leading.Store(true)
	s.broker.reset()
	// Capacity may have changed while there was no leader: every blocked
	// evaluation planned before now retries once.
	s.broker.unblock(s.store.Index())
	for _, status := range []string{structs.EvalPending, structs.EvalBlocked} {
		evals, err := s.store.Evals(status)
		if err != nil {
			return fmt.Errorf("coordinator: reading evaluations: %w", err)
		}
		for _, e := range evals {
			s.broker.push(e)
		}
	}
	return nil
}

// stopLeading ends the term: the next leader loads what is committed.
func (s *scheduler) stopLeading() {
	s.leading.Store(false)
	s.mu.Lock()
	s.triggers, s.order = map[string]string{}, nil
	s.mu.Unlock()
}

// Run is a leader duty, between startLeading and stopLeading: the
// scheduler workers in parallel (the plan applier serialises commits)
// and the loop that commits evaluations for what the rules found.
func (s *scheduler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.broker.runDelayed(ctx)
	}()
	for range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runWorker(ctx)
		}()
	}
	s.proposeTriggered(ctx)
	wg.Wait()
}

// watching reports whether the hook acts on what it is told (the Raft
// adapter skips finding status changes otherwise).
func (s *scheduler) watching() bool { return s.leading.Load() }

// applied is the Raft adapter's hook, called on the FSM goroutine after
// each batch (it must not block): on the leader it queues new
// evaluations, retries blocked ones when capacity grew, and notes the
// jobs whose allocations' status changes call for an evaluation. On
// followers it does nothing; a new leader loads pending and blocked
// evaluations from the state.
func (s *scheduler) applied(fx *state.Effects, changes []statusChange) {
	if !s.leading.Load() {
		return
	}
	for _, e := range fx.Evals {
		s.broker.push(e)
	}
	if fx.Capacity {
		s.broker.unblock(fx.Index)
	}
	for _, c := range changes {
		if why, ok := evalTrigger(c); ok {
			s.trigger(c.JobID, why)
		}
	}
}

// statusChange is what one committed batch did to the client status of
// an allocation an AllocUpdate named (fsm.go finds them).
type statusChange struct {
	AllocID, JobID string
	Before, After  string // client status before and after the batch
	WasLive        bool   // before the batch: desired to run, and its client status not final
}

// evalTrigger is the rule that turns an allocation's status change into
// an evaluation of its job, and says why.
func evalTrigger(c statusChange) (why string, ok bool) {
	switch {
	case c.Before == sched.ClientUnknown && c.After == sched.ClientRunning:
		// Back from a disconnect: if it was replaced meanwhile, one of
		// the two must stop.
		return "alloc-reconnected", true
	case c.WasLive && (c.After == sched.ClientFailed || c.After == sched.ClientComplete || c.After == sched.ClientLost):
		// A failed or lost allocation is replaced; a finished one frees
		// capacity.
		return "alloc-" + c.After, true
	}
	return "", false
}

// trigger notes that a job needs an evaluation (the first reason wins
// until it is proposed).
func (s *scheduler) trigger(jobID, why string) {
	s.mu.Lock()
	if _, ok := s.triggers[jobID]; !ok {
		s.triggers[jobID] = why
		s.order = append(s.order, jobID)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// proposeTriggered commits an evaluation for each triggered job, all
// that are waiting in one write, until ctx ends. Committed, they come
// back through applied as the batch's evaluations.
func (s *scheduler) proposeTriggered(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		var evals []*structs.Eval
		for _, job := range s.order {
			evals = append(evals, &structs.Eval{ID: newEvalID(), JobID: job, TriggeredBy: s.triggers[job], Status: structs.EvalPending})
		}
		s.triggers, s.order = map[string]string{}, nil
		s.mu.Unlock()
		if len(evals) == 0 {
			continue
		}
		if _, _, err := s.apply(&state.EvalUpsert{Evals: evals}); err != nil {
			s.log.Error("committing evaluations for allocation changes", "evals", len(evals), "err", err)
		}
	}
}

// runWorker processes evaluations until ctx ends (leadership lost).
func (s *scheduler) runWorker(ctx context.Context) {
	for {
		e, err := s.broker.pop(ctx)
		if err != nil {
			return
		}
		err = s.process(ctx, e)
		s.broker.done(e.JobID)
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
func (s *scheduler) process(ctx context.Context, e *structs.Eval) error {
	for attempt := 1; ; attempt++ {
		snapshot := s.store.Index()
		req, err := scheduleRequest(s.store, e, time.Now())
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
		rejected, err := s.plans.apply(plan, &planned)
		if err != nil {
			return err
		}
		if rejected == 0 {
			return nil
		}
		if attempt == maxPlanAttempts || ctx.Err() != nil {
			s.log.Warn("plan still conflicts after retries; eval left pending", "eval", e.ID, "rejected", rejected)
			s.broker.push(e)
			return nil
		}
	}
}

// scheduleRequest is what the scheduler is asked for an evaluation at
// now: the job as the state has it, every node with its usage, the job's
// allocations, the older versions they run, and the version's deployment
// (whether a group's next batch must wait for its stagger is decided here,
// with the clock the scheduler does not read).
func scheduleRequest(store *state.Store, e *structs.Eval, now time.Time) (*sched.Request, error) {
	rec, err := store.Job(e.JobID)
	if err != nil {
		return nil, err
	}
	nodes := store.NodeStates()
	allocs, err := store.JobAllocs(e.JobID)
	if err != nil {
		return nil, err
	}
	req := &sched.Request{EvalID: e.ID, Nodes: nodes, Now: now.UnixNano()}
	for _, a := range allocs {
		a := a.Allocation
		req.Existing = append(req.Existing, &a)
	}
	if rec == nil {
		req.Stopped = true
		return req, nil
	}
	// A periodic job is a template: its children are placed, never it.
	req.Job, req.JobVersion, req.Stopped = rec.Job, rec.Version, rec.Stopped || rec.Job.IsTemplate()
	if req.Stopped {
		return req, nil
	}
	for _, a := range req.Existing {
		if a.JobVersion == rec.Version || a.Terminal() || req.Versions[a.JobVersion] != nil {
			continue
		}
		old, err := store.JobVersion(e.JobID, a.JobVersion)
		if err != nil {
			return nil, err
		}
		if old != nil {
			if req.Versions == nil {
				req.Versions = map[uint64]*spec.Job{}
			}
			req.Versions[a.JobVersion] = old
		}
	}
	d, err := store.LatestDeployment(e.JobID)
	if err != nil {
		return nil, err
	}
	if d != nil && d.JobVersion == rec.Version {
		req.Deployment = &sched.Deployment{ID: d.ID, Active: d.Active(), Groups: map[string]*sched.DeploymentGroup{}}
		for name, g := range d.Groups {
			req.Deployment.Groups[name] = &sched.DeploymentGroup{Promoted: g.Promoted, Hold: deploy.Hold(g, now.UnixNano())}
		}
	}
	return req, nil
}

func (s *scheduler) finishEval(e *structs.Eval, status string, failed map[string]*sched.Explanation, cause error) error {
	done := *e
	done.Status, done.Failed = status, failed
	if _, _, err := s.apply(&state.EvalUpsert{Evals: []*structs.Eval{&done}}); err != nil {
		return err
	}
	return cause
}
