package edge

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// runnerDeps is what an allocation runner needs from the agent, as small
// functions and plain data: a runner holds no pointer back to the agent.
type runnerDeps struct {
	// report records an allocation's status in the outbox.
	report func(wire.AllocStatus)
	// saveStates keeps an allocation's task states in local state, so
	// they survive an agent restart; nil keeps nothing.
	saveStates func(allocID string, states map[string]*wire.TaskState) error
	// driver returns the driver of that name, or why this agent has none.
	driver func(name string) (driver, error)
	// node is what runtime references resolve against.
	node nodeInfo
	// dataDir holds the task log files (allocs/<alloc>/logs/).
	dataDir string
	log     *slog.Logger
	metrics *agentMetrics // restarts
}

// nodeInfo is the node as tasks see it: their runtime references
// (${node.datacenter}, ${attr.…}, ${meta.…}) and the address they serve on.
type nodeInfo struct {
	id, name, datacenter, bindAddr string
	attributes, meta               map[string]string
	volumes                        map[string]HostVolume // checked by checkHostVolumes
}

// allocRunner runs one allocation's tasks and reports their state. It
// owns one goroutine per task; stop cancels them and waits.
type allocRunner struct {
	deps  *runnerDeps
	alloc wire.Alloc
	// reattach: the runner was made from local state after an agent
	// restart, so each task first tries to re-attach to what the previous
	// run left running.
	reattach bool
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}

	mu         sync.Mutex
	tasks      map[string]*taskState
	stopReason string // why the runner was stopped, for Killed events
	// canary: an unpromoted canary (its endpoints carry canary tags); the
	// servers clear it at promotion (update).
	canary bool
	// draining: the allocation is stopping; its services are deregistered
	// for the shutdown delay before its tasks are stopped.
	draining bool
	// health decides the allocation's deployment health (nil when its
	// deployment does not ask); healthPoke wakes healthLoop when what it
	// waits for may have moved.
	health     *deployHealth
	healthPoke chan struct{}
	// changed is told whenever a task's state changes (waitRunning).
	changed notifier

	saveMu sync.Mutex // orders the writes of task states to local state
}

type taskState struct {
	state     string // pending, running, failed, complete
	desc      string
	endpoints []wire.Endpoint
	hist      wire.TaskState // Nomad-style state and events, reported and persisted
	handle    taskHandle     // the running attempt, nil between attempts
	// restart ends the running attempt with a cause (nil between
	// attempts): a restart asked for, which runTask does at once.
	restart context.CancelCauseFunc
}

// newAllocRunner prepares al's runner; restored are the task states kept
// in local state from before an agent restart, if any.
func newAllocRunner(deps *runnerDeps, al wire.Alloc, restored map[string]*wire.TaskState, reattach bool) *allocRunner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &allocRunner{
		deps: deps, alloc: al, reattach: reattach, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		log:   deps.log.With("alloc", al.Name, "alloc_id", al.ID),
		tasks: map[string]*taskState{},
	}
	now := time.Now()
	r.canary = al.Canary
	if hp := al.Health; hp != nil {
		r.health = newDeployHealth(hp.Mode != wire.HealthTaskStates, hp.MinHealthyTime, hp.HealthyDeadline, now)
		r.healthPoke = make(chan struct{}, 1)
	}
	for _, t := range al.Tasks {
		ts := &taskState{state: "pending", desc: "received"}
		if old := restored[t.Name]; old != nil {
			ts.hist = *old.Clone()
		}
		taskReceived(&ts.hist, now, restored[t.Name] != nil)
		r.tasks[t.Name] = ts
	}
	return r
}

func (r *allocRunner) run() {
	defer close(r.done)
	r.persist()
	r.publish()
	var wg sync.WaitGroup
	defer wg.Wait()
	if r.health != nil {
		wg.Go(r.healthLoop)
	}
	phases := lifecyclePhases(r.alloc.Tasks)
	start := func(tasks []wire.Task) {
		for _, t := range tasks {
			wg.Go(func() { r.runTask(t, false) })
		}
	}
	// Nomad's task lifecycle: prestart sidecars first; prestart tasks
	// run to completion before the main tasks start; poststart tasks
	// start once every main task runs.
	start(phases.prestartSidecars)
	if !r.runToCompletion(phases.prestart) {
		// A prestart task failed (the allocation failed) or the runner
		// stopped: the other tasks never start; a stop is their Killed.
		if r.ctx.Err() != nil {
			for _, t := range append(phases.main, phases.poststart...) {
				r.killed(t.Name)
			}
		}
		return
	}
	start(phases.main)
	if len(phases.poststart) > 0 {
		wg.Go(func() {
			if r.waitRunning(phases.main) {
				start(phases.poststart)
			}
		})
	}
}

// phases are an allocation's tasks by lifecycle hook.
type phases struct {
	prestartSidecars, prestart, main, poststart []wire.Task
}

func lifecyclePhases(tasks []wire.Task) phases {
	var p phases
	for _, t := range tasks {
		switch {
		case t.Lifecycle == nil:
			p.main = append(p.main, t)
		case t.Lifecycle.Hook == wire.HookPrestart && t.Lifecycle.Sidecar:
			p.prestartSidecars = append(p.prestartSidecars, t)
		case t.Lifecycle.Hook == wire.HookPrestart:
			p.prestart = append(p.prestart, t)
		case t.Lifecycle.Hook == wire.HookPoststart:
			p.poststart = append(p.poststart, t)
		default:
			// The servers refuse other hooks (poststop) at validation.
			p.main = append(p.main, t)
		}
	}
	return p
}

// runToCompletion runs tasks side by side until each has exited 0; false
// when one failed for good or the runner stopped. None is true at once.
func (r *allocRunner) runToCompletion(tasks []wire.Task) bool {
	if len(tasks) == 0 {
		return true
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := true
	for _, t := range tasks {
		wg.Go(func() {
			if !r.runTask(t, true) {
				mu.Lock()
				ok = false
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok && r.ctx.Err() == nil
}

// waitRunning waits until every one of tasks runs (or has completed);
// false if the runner stopped first.
func (r *allocRunner) waitRunning(tasks []wire.Task) bool {
	for {
		changed := r.changed.wait()
		r.mu.Lock()
		all := true
		for _, t := range tasks {
			if st := r.tasks[t.Name].state; st != "running" && st != "complete" {
				all = false
			}
		}
		r.mu.Unlock()
		if all {
			return true
		}
		select {
		case <-r.ctx.Done():
			return false
		case <-changed:
		}
	}
}

// update takes a newer copy of the allocation from the servers: a
// promoted canary's flag is cleared (its endpoints get their usual tags).
// What it runs does not change: an in-place update moves it to a job
// version whose group runs the same tasks, and an allocation that must
// run something else is replaced, never changed.
func (r *allocRunner) update(al wire.Alloc) {
	r.mu.Lock()
	changed := r.canary != al.Canary
	r.canary = al.Canary
	r.mu.Unlock()
	if changed {
		r.log.Info("canary promoted: services take their usual tags")
		r.publish()
	}
}

// shutdown stops the allocation without a failed request: its services
// are deregistered first, then it waits its tasks' longest shutdown
// delay (or until hurry closes: the agent itself is stopping), then its
// tasks are stopped (an http task drains its requests within its
// kill_timeout).
func (r *allocRunner) shutdown(reason string, hurry <-chan struct{}) {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	var delay time.Duration
	for _, t := range r.alloc.Tasks {
		delay = max(delay, t.ShutdownDelay)
	}
	r.publish() // the deregistration: no endpoints
	if delay > 0 {
		r.log.Info("services deregistered; stopping after the shutdown delay", "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-hurry:
			t.Stop()
		}
	}
	r.stop(reason)
}

// healthLoop steps the deployment health tracker when nothing else does:
// at the end of min_healthy_time and at healthy_deadline; publish steps
// it on every change and pokes this loop.
func (r *allocRunner) healthLoop() {
	for {
		r.mu.Lock()
		at := r.health.next()
		r.mu.Unlock()
		if at.IsZero() {
			return // decided
		}
		t := time.NewTimer(time.Until(at))
		select {
		case <-r.ctx.Done():
			t.Stop()
			return
		case <-r.healthPoke:
			t.Stop()
			continue
		case <-t.C:
		}
		r.publish()
	}
}

// stop ends every task and waits for them; reason goes into their Killed
// events.
func (r *allocRunner) stop(reason string) {
	r.mu.Lock()
	if r.stopReason == "" {
		r.stopReason = reason
	}
	r.mu.Unlock()
	r.cancel()
	<-r.done
}

// setTask sets a task's allocation-level state (no event).
func (r *allocRunner) setTask(name, state, desc string, eps []wire.Endpoint) {
	r.mu.Lock()
	ts := r.tasks[name]
	ts.state, ts.desc, ts.endpoints = state, desc, eps
	if state == "failed" && r.stopReason == "" {
		r.stopReason = fmt.Sprintf("sibling task %q failed", name)
	}
	r.mu.Unlock()
	r.changed.notify()
	r.publish()
	if state == "failed" {
		r.cancel() // one failed task fails the allocation: stop its siblings
	}
}

// setHandle records a task's running attempt and what ends it (nil once
// it is over), for signals, stats and restarts.
func (r *allocRunner) setHandle(name string, h taskHandle, restart context.CancelCauseFunc) {
	r.mu.Lock()
	r.tasks[name].handle, r.tasks[name].restart = h, restart
	r.mu.Unlock()
}

// restartRequested ends an attempt a user asked to restart (Nomad's
// `alloc restart`): runTask starts the task again at once, and it is not
// a failure, so the restart policy's attempts are not spent.
type restartRequested struct{}

func (*restartRequested) Error() string { return "restart requested" }

// restartTasks restarts the named task, or every running task for "",
// and returns the tasks it restarted. A task that is not running (not
// started yet, waiting to restart, finished) cannot be restarted.
func (r *allocRunner) restartTasks(task string) ([]string, error) {
	r.mu.Lock()
	var names []string
	var ends []context.CancelCauseFunc
	if task != "" {
		ts := r.tasks[task]
		switch {
		case ts == nil:
			r.mu.Unlock()
			return nil, fmt.Errorf("allocation %s has no task %q", r.alloc.ID, task)
		case ts.restart == nil:
			r.mu.Unlock()
			return nil, fmt.Errorf("task %q of allocation %s is not running now", task, r.alloc.ID)
		}
		names, ends = []string{task}, []context.CancelCauseFunc{ts.restart}
	} else {
		for _, name := range slices.Sorted(maps.Keys(r.tasks)) {
			if end := r.tasks[name].restart; end != nil {
				names, ends = append(names, name), append(ends, end)
			}
		}
		if len(names) == 0 {
			r.mu.Unlock()
			return nil, fmt.Errorf("no task of allocation %s is running now", r.alloc.ID)
		}
	}
	r.mu.Unlock()
	for i, name := range names {
		r.log.Info("restarting task on request", "task", name)
		r.record(name, "", "", func(h *wire.TaskState, now time.Time) { taskRestartSignaled(h, now, "User requested restart") })
		ends[i](&restartRequested{})
	}
	return names, nil
}

// handle is a task's running attempt, or an error saying why there is none.
func (r *allocRunner) handle(name string) (taskHandle, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.tasks[name]
	if ts == nil {
		return nil, fmt.Errorf("allocation %s has no task %q", r.alloc.ID, name)
	}
	if ts.handle == nil {
		return nil, fmt.Errorf("task %q of allocation %s is not running now", name, r.alloc.ID)
	}
	return ts.handle, nil
}

// record applies an event to a task's history (and, if state != "", sets
// its allocation-level state and description as setTask does), then
// persists and reports it.
func (r *allocRunner) record(name, state, desc string, event func(h *wire.TaskState, now time.Time)) {
	r.mu.Lock()
	ts := r.tasks[name]
	event(&ts.hist, time.Now())
	r.mu.Unlock()
	r.persist()
	if state != "" {
		r.setTask(name, state, desc, nil)
		return
	}
	r.publish()
}

// taskStates is a deep copy of every task's history.
func (r *allocRunner) taskStates() map[string]*wire.TaskState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*wire.TaskState, len(r.tasks))
	for name, ts := range r.tasks {
		out[name] = ts.hist.Clone()
	}
	return out
}

// persist writes the task histories to local state, so they survive an
// agent restart. Events are rare (a restart waits at least its delay), so
// one bbolt write per event is cheap.
func (r *allocRunner) persist() {
	if r.deps.saveStates == nil {
		return
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	if err := r.deps.saveStates(r.alloc.ID, r.taskStates()); err != nil {
		r.log.Warn("saving task states", "err", err)
	}
}

// publish reports the allocation's combined state: failed if any task
// failed, running when every task runs, pending otherwise.
func (r *allocRunner) publish() {
	if r.ctx.Err() != nil && !r.anyFailed() {
		return // being stopped: the agent reports the stop
	}
	r.mu.Lock()
	st := wire.AllocStatus{AllocID: r.alloc.ID, ClientStatus: "running", TaskStates: map[string]*wire.TaskState{}}
	var descs []string
	complete := 0
	in := healthInput{tasksRunning: true, checksPassing: true}
	for _, t := range r.alloc.Tasks {
		ts := r.tasks[t.Name]
		switch {
		case ts.state == "failed":
			st.ClientStatus = "failed"
			in.taskFailed = true
		case ts.state == "complete":
			complete++ // a finished command task does not hold the others back
		case ts.state != "running" && st.ClientStatus != "failed":
			st.ClientStatus = "pending"
		}
		if ts.state != "running" && ts.state != "complete" {
			in.tasksRunning = false
		}
		if ts.desc != "" {
			descs = append(descs, t.Name+": "+ts.desc)
		}
		for _, e := range ts.endpoints {
			in.checksPassing = in.checksPassing && e.Healthy
			if !r.draining {
				st.Endpoints = append(st.Endpoints, r.tagged(t, e))
			}
		}
		st.TaskStates[t.Name] = ts.hist.Clone()
	}
	r.observeHealth(&st, in)
	r.mu.Unlock()
	if complete == len(r.alloc.Tasks) {
		st.ClientStatus = "complete"
	}
	st.Description = strings.Join(descs, "; ")
	r.deps.report(st)
}

// tagged is an endpoint as the registry must show it: an unpromoted
// canary's carries its service's canary tags and the canary flag.
// Called with r.mu held.
func (r *allocRunner) tagged(t wire.Task, e wire.Endpoint) wire.Endpoint {
	if !r.canary {
		return e
	}
	for _, s := range t.Services {
		if s.Name == e.Service && len(s.CanaryTags) > 0 {
			e.Tags = s.CanaryTags
		}
	}
	e.Canary = true
	return e
}

// observeHealth steps the deployment health tracker with what publish
// sees, and puts its result, once decided, in every report. Called with
// r.mu held.
func (r *allocRunner) observeHealth(st *wire.AllocStatus, in healthInput) {
	h := r.health
	if h == nil {
		return
	}
	before := h.since
	res, decided := h.observe(time.Now(), in)
	if decided {
		r.log.Info("deployment health decided", "health", res.String(), "at", h.at)
	}
	if decided || !before.Equal(h.since) {
		select {
		case r.healthPoke <- struct{}{}:
		default:
		}
	}
	switch res {
	case healthHealthy:
		st.Health, st.HealthTime = wire.Healthy, h.at.UnixNano()
	case healthUnhealthy:
		st.Health, st.HealthTime = wire.Unhealthy, h.at.UnixNano()
	}
}

func (r *allocRunner) anyFailed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ts := range r.tasks {
		if ts.state == "failed" {
			return true
		}
	}
	return false
}

// killed records that a stopped runner ended a task that was not dead.
func (r *allocRunner) killed(name string) {
	r.mu.Lock()
	reason := r.stopReason
	if reason == "" {
		reason = "stopped"
	}
	changed := taskKilled(&r.tasks[name].hist, time.Now(), reason)
	r.mu.Unlock()
	if changed {
		r.persist()
		r.publish() // reported only when a sibling failed; a stop is reported by the agent
	}
}

// started records that an attempt of a task runs. It does not report:
// the task's checks' first publish does, so a start costs one status
// report.
func (r *allocRunner) started(name, msg string) {
	r.mu.Lock()
	taskStarted(&r.tasks[name].hist, time.Now(), msg)
	r.mu.Unlock()
	r.persist()
}

// completeTask marks a task complete; publish reports the allocation
// complete once every task is.
func (r *allocRunner) completeTask(name string, ran time.Duration) {
	desc := fmt.Sprintf("exited 0 after %s", ran.Round(time.Millisecond))
	r.log.Info("task complete", "task", name, "desc", desc)
	r.record(name, "complete", desc, func(h *wire.TaskState, now time.Time) { taskCompleted(h, now, ran) })
}
