package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

// allocRunner runs one allocation's tasks and reports their state. It
// owns one goroutine per task; stop cancels them and waits.
type allocRunner struct {
	a      *Agent
	alloc  wire.Alloc
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

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
}

// newAllocRunner prepares al's runner; restored are the task states kept
// in local state from before an agent restart, if any.
func newAllocRunner(a *Agent, al wire.Alloc, restored map[string]*wire.TaskState) *allocRunner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &allocRunner{
		a: a, alloc: al, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		log:   a.log.With("alloc", al.Name, "alloc_id", al.ID),
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runTask(t)
		}()
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
	if r.a.local == nil {
		return
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	if err := r.a.local.saveTaskStates(r.alloc.ID, r.taskStates()); err != nil {
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
	r.a.report(st)
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

// defaultRestart is the restart policy of a task without one (Nomad's
// service defaults).
var defaultRestart = &spec.RestartPolicy{Attempts: 2, Interval: spec.Duration(30 * time.Minute), Delay: spec.Duration(15 * time.Second), Mode: "fail"}

// runTask runs one task under its restart policy: each failure to start
// or serve is retried after the policy's delay, at most Attempts times
// within Interval; then mode "fail" fails the task and mode "delay" waits
// for the interval to end and starts counting again.
func (r *allocRunner) runTask(t *spec.Task) {
	policy := t.Restart
	if policy == nil {
		policy = defaultRestart
	}
	tracker := newRestartTracker(policy)
	for {
		err := r.runTaskOnce(t)
		if r.ctx.Err() != nil {
			r.killed(t.Name)
			return
		}
		delay, ok := tracker.next(time.Now())
		if !ok {
			r.log.Error("task failed", "task", t.Name, "err", err)
			r.record(t.Name, "failed", fmt.Sprintf("%v; not restarting: %d attempts in %s exhausted", err, policy.Attempts, policy.Interval),
				func(h *wire.TaskState, now time.Time) {
					taskEnded(h, now, err)
					taskNotRestarting(h, now, policy)
				})
			return
		}
		delay += jitter(delay)
		r.log.Warn("task failed, restarting", "task", t.Name, "err", err, "in", delay)
		r.record(t.Name, "pending", fmt.Sprintf("restarting in %s after: %v", delay.Round(time.Millisecond), err),
			func(h *wire.TaskState, now time.Time) {
				taskEnded(h, now, err)
				taskRestarting(h, now, delay)
			})
		select {
		case <-r.ctx.Done():
			r.killed(t.Name)
			return
		case <-time.After(delay):
		}
	}
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
// the caller's next setTask (or its checks' first publish) does, so a
// start costs one status report, as before events.
func (r *allocRunner) started(name, msg string) {
	r.mu.Lock()
	taskStarted(&r.tasks[name].hist, time.Now(), msg)
	r.mu.Unlock()
	r.persist()
}

// jitter adds up to 25% of d, as Nomad does, so tasks failing together do
// not restart in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d/4 + 1)
}

// runTaskOnce runs one attempt of the task: until it fails, the runner is
// stopped, or (command mode, a container) it completes. See
// wasm_driver.go and docker_driver.go.
func (r *allocRunner) runTaskOnce(t *spec.Task) error {
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)
	at := attempt{ctx: ctx, restart: cancel}
	var err error
	switch t.Driver {
	case "wasm":
		err = r.runWasmTask(at, t)
	case "docker":
		err = r.runDockerTask(at, t)
	default:
		return fmt.Errorf("driver %q is not available on this agent", t.Driver)
	}
	var cr *checkRestartError
	if r.ctx.Err() == nil && errors.As(context.Cause(ctx), &cr) {
		return cr // the driver saw a cancelled attempt; the check said why
	}
	return err
}

// attempt is one run of a task: drivers run under ctx, and the task's
// checks end it early with restart (check_restart).
type attempt struct {
	ctx     context.Context
	restart context.CancelCauseFunc
}

// checkRestartError ends an attempt whose check failed
// check_restart.limit times in a row.
type checkRestartError struct{ reason string }

func (e *checkRestartError) Error() string { return e.reason }

// taskPorts are the allocation's ports that the task declared.
func (r *allocRunner) taskPorts(t *spec.Task) []wire.Port {
	var out []wire.Port
	for _, p := range t.Ports() {
		for _, ap := range r.alloc.Ports {
			if ap.Label == p.Label {
				out = append(out, ap)
			}
		}
	}
	return out
}

// runtimeVars are the variables a task sees and its env and args may
// reference: Strata's, and Nomad's names for the same values.
func (r *allocRunner) runtimeVars(t *spec.Task, ports []wire.Port) map[string]string {
	vars := map[string]string{
		"STRATA_ALLOC_ID":   r.alloc.ID,
		"STRATA_ALLOC_NAME": r.alloc.Name,
		"STRATA_JOB_NAME":   r.alloc.JobID,
		"STRATA_GROUP_NAME": r.alloc.Group,
		"STRATA_TASK_NAME":  t.Name,
	}
	for _, p := range ports {
		vars["STRATA_PORT_"+p.Label] = strconv.Itoa(p.Value)
		vars["STRATA_ADDR_"+p.Label] = net.JoinHostPort(r.a.cfg.BindAddr, strconv.Itoa(p.Value))
		vars["NOMAD_HOST_PORT_"+p.Label] = strconv.Itoa(p.Value)
		vars["NOMAD_IP_"+p.Label] = r.a.cfg.BindAddr
	}
	for k, v := range maps.Clone(vars) {
		if rest, ok := strings.CutPrefix(k, "STRATA_"); ok {
			vars["NOMAD_"+rest] = v
		}
	}
	return vars
}

// taskEnv is the task's env (already resolved) plus the runtime variables.
func (r *allocRunner) taskEnv(t *spec.Task, ports []wire.Port) map[string]string {
	env := r.runtimeVars(t, ports)
	for k, v := range t.Env {
		env[k] = v
	}
	return env
}

// resolveTask returns a copy of t whose env values, args and command have their
// runtime references (${STRATA_PORT_http}, ${node.datacenter},
// ${attr.…}, ${meta.…}) resolved with spec.Interpolate; a reference the
// agent cannot resolve fails the task, naming it.
func (r *allocRunner) resolveTask(t *spec.Task, ports []wire.Port) (*spec.Task, error) {
	vars := r.runtimeVars(t, ports)
	resolve := func(ref string) (string, bool) {
		if v, ok := vars[ref]; ok {
			return v, true
		}
		switch {
		case ref == "node.datacenter":
			return r.a.cfg.Datacenter, true
		case ref == "node.unique.name":
			return r.a.cfg.NodeName, true
		case ref == "node.unique.id":
			return r.a.nodeID, true
		case strings.HasPrefix(ref, "attr."):
			v, ok := r.a.fp.attributes[strings.TrimPrefix(ref, "attr.")]
			return v, ok
		case strings.HasPrefix(ref, "meta."):
			v, ok := r.a.cfg.Meta[strings.TrimPrefix(ref, "meta.")]
			return v, ok
		}
		return "", false
	}
	c := *t
	c.Env = make(map[string]string, len(t.Env))
	for k, v := range t.Env {
		out, err := spec.Interpolate(v, resolve)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", k, err)
		}
		c.Env[k] = out
	}
	c.Config.Args = make([]string, len(t.Config.Args))
	for i, a := range t.Config.Args {
		out, err := spec.Interpolate(a, resolve)
		if err != nil {
			return nil, fmt.Errorf("args[%d]: %w", i, err)
		}
		c.Config.Args[i] = out
	}
	command, err := spec.Interpolate(t.Config.Command, resolve)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	c.Config.Command = command
	return &c, nil
}
