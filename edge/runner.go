package edge

import (
	"context"
	"fmt"
	"log/slog"
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

	saveMu sync.Mutex // orders the writes of task states to local state
}

type taskState struct {
	state     string // pending, running, failed, complete
	desc      string
	endpoints []wire.Endpoint
	hist      wire.TaskState // Nomad-style state and events, reported and persisted
	handle    taskHandle     // the running attempt, nil between attempts
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
	for _, t := range r.alloc.Tasks {
		wg.Go(func() { r.runTask(t) })
	}
	wg.Wait()
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
	r.publish()
	if state == "failed" {
		r.cancel() // one failed task fails the allocation: stop its siblings
	}
}

// setHandle records a task's running attempt (nil once it is over), for
// signals and stats.
func (r *allocRunner) setHandle(name string, h taskHandle) {
	r.mu.Lock()
	r.tasks[name].handle = h
	r.mu.Unlock()
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
	for _, t := range r.alloc.Tasks {
		ts := r.tasks[t.Name]
		switch {
		case ts.state == "failed":
			st.ClientStatus = "failed"
		case ts.state == "complete":
			complete++ // a finished command task does not hold the others back
		case ts.state != "running" && st.ClientStatus != "failed":
			st.ClientStatus = "pending"
		}
		if ts.desc != "" {
			descs = append(descs, t.Name+": "+ts.desc)
		}
		st.Endpoints = append(st.Endpoints, ts.endpoints...)
		st.TaskStates[t.Name] = ts.hist.Clone()
	}
	r.mu.Unlock()
	if complete == len(r.alloc.Tasks) {
		st.ClientStatus = "complete"
	}
	st.Description = strings.Join(descs, "; ")
	r.deps.report(st)
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
