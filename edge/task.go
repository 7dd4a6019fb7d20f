package edge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

// defaultRestart is the restart policy of a task without one (Nomad's
// service defaults).
var defaultRestart = &wire.RestartPolicy{Attempts: 2, Interval: 30 * time.Minute, Delay: 15 * time.Second, Mode: "fail"}

// runTask runs one task under its restart policy: each failure to start
// or serve is retried after the policy's delay, at most Attempts times
// within Interval; then mode "fail" fails the task and mode "delay" waits
// for the interval to end and starts counting again.
//
// A task that exits 0 is complete: with untilComplete (a prestart task)
// runTask then returns true; otherwise it waits for the runner to stop.
// It returns false when the task failed for good or the runner stopped.
func (r *allocRunner) runTask(t wire.Task, untilComplete bool) bool {
	policy := t.Restart
	if policy == nil {
		policy = defaultRestart
	}
	tracker := newRestartTracker(policy)
	reattach := r.reattach
	for {
		ran, completed, err := r.runAttempt(&t, reattach)
		reattach = false
		if r.ctx.Err() != nil {
			r.killed(t.Name)
			return false
		}
		if asked := new(restartRequested); errors.As(err, &asked) {
			// Asked for, not a failure: at once, and no attempt spent.
			r.deps.metrics.restarted(reasonRequested)
			r.record(t.Name, "pending", "restarting on request",
				func(h *wire.TaskState, now time.Time) {
					taskEnded(h, now, err)
					taskRestarting(h, now, 0)
				})
			continue
		}
		if completed {
			r.completeTask(t.Name, ran)
			if untilComplete {
				return true
			}
			<-r.ctx.Done() // complete: nothing to restart; wait to be stopped
			return false
		}
		delay, ok := tracker.next(time.Now())
		if !ok {
			r.log.Error("task failed", "task", t.Name, "err", err)
			r.record(t.Name, "failed", fmt.Sprintf("%v; not restarting: %d attempts in %s exhausted", err, policy.Attempts, policy.Interval),
				func(h *wire.TaskState, now time.Time) {
					taskEnded(h, now, err)
					taskNotRestarting(h, now, policy)
				})
			return false
		}
		delay += jitter(delay)
		r.deps.metrics.restarted(reasonFailure)
		r.log.Warn("task failed, restarting", "task", t.Name, "err", err, "in", delay)
		r.record(t.Name, "pending", fmt.Sprintf("restarting in %s after: %v", delay.Round(time.Millisecond), err),
			func(h *wire.TaskState, now time.Time) {
				taskEnded(h, now, err)
				taskRestarting(h, now, delay)
			})
		select {
		case <-r.ctx.Done():
			r.killed(t.Name)
			return false
		case <-time.After(delay):
		}
	}
}

// jitter adds up to 25% of d, as Nomad does, so tasks failing together do
// not restart in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d/4 + 1)
}

// checkRestartError ends an attempt whose check failed
// check_restart.limit times in a row.
type checkRestartError struct{ reason string }

func (e *checkRestartError) Error() string { return e.reason }

// runAttempt runs one attempt of t through its driver: it starts it (or,
// with reattach, first tries to re-attach to what a previous run of the
// agent left), runs its checks, and waits until it ends, the runner stops
// (then it stops the attempt) or a check_restart ends it. completed: it
// exited 0 after ran. err says why it ended otherwise; nil when the
// runner was stopped.
func (r *allocRunner) runAttempt(t *wire.Task, reattach bool) (ran time.Duration, completed bool, err error) {
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)
	drv, err := r.deps.driver(t.Driver)
	if err != nil {
		return 0, false, err
	}
	ts, err := r.taskSpec(t)
	if err != nil {
		return 0, false, err
	}
	if reattach {
		ts.LogsWritten = logsWritten(r.deps.dataDir, r.alloc.ID, t.Name)
	}
	stdout, stderr, err := openTaskLogs(r.deps.dataDir, r.alloc.ID, t.Name)
	if err != nil {
		return 0, false, err
	}
	defer stdout.Close()
	defer stderr.Close()
	ts.Stdout, ts.Stderr = stdout, stderr

	var h taskHandle
	if reattach {
		if h, err = drv.recover(ctx, ts); err != nil {
			r.log.Info("task not re-attached: starting it", "task", t.Name, "reason", err)
		}
	}
	if h == nil {
		if h, err = drv.start(ctx, ts); err != nil {
			return 0, false, err
		}
	}
	start := time.Now()
	r.started(t.Name, h.describe())
	r.setHandle(t.Name, h, cancel)
	checks := newTaskChecks(ctx, t, r.deps.node.bindAddr, r.alloc.Ports, r.log,
		func(eps []wire.Endpoint) { r.setTask(t.Name, "running", "", eps) },
		func(reason string) {
			r.log.Warn("restarting task", "task", t.Name, "reason", reason)
			r.record(t.Name, "", "", func(h *wire.TaskState, now time.Time) { taskRestartSignaled(h, now, reason) })
			cancel(&checkRestartError{reason: reason})
		})
	checks.start()
	werr := h.wait(ctx)
	checks.stop()
	r.setHandle(t.Name, nil, nil)
	ran = time.Since(start)
	if serr := h.stop(t.KillTimeout); serr != nil {
		r.log.Error("stopping task", "task", t.Name, "err", serr)
	}
	var cr *checkRestartError
	var asked *restartRequested
	switch {
	case r.ctx.Err() != nil:
		return ran, false, nil
	case errors.As(context.Cause(ctx), &cr):
		return ran, false, cr
	case errors.As(context.Cause(ctx), &asked):
		return ran, false, asked
	case werr == nil:
		return ran, true, nil
	}
	return ran, false, werr
}

// logClockSlack covers the coarseness of file times: the kernel stamps a
// write with its coarse clock, one tick (1-10 ms) behind the real time,
// so a file's time can precede the daemon's time of the last line in it.
const logClockSlack = 20 * time.Millisecond

// logsWritten is the instant after which a task's output is not in its
// log files: their last write (plus logClockSlack, so no line is written
// twice; the lines of the last 20 ms before the agent died that it had
// not written yet are lost), or zero if they were never written.
func logsWritten(dataDir, allocID, task string) time.Time {
	var last time.Time
	for _, typ := range []string{"stdout", "stderr"} {
		p, ok := taskLogPath(dataDir, allocID, task, typ)
		if !ok {
			continue
		}
		for _, f := range []string{p, p + ".1"} { // the file rotated away last, if the new one is empty
			if fi, err := os.Stat(f); err == nil && fi.Size() > 0 && fi.ModTime().After(last) {
				last = fi.ModTime()
			}
		}
	}
	if last.IsZero() {
		return last
	}
	return last.Add(logClockSlack)
}

// taskSpec is what t's driver gets: t with its runtime references
// resolved, its environment, and the ports it serves on.
func (r *allocRunner) taskSpec(t *wire.Task) (*taskSpec, error) {
	resolved, err := r.resolveTask(t)
	if err != nil {
		return nil, err
	}
	mounts, err := hostMounts(r.deps.node.volumes, t.VolumeMounts)
	if err != nil {
		return nil, err
	}
	dirs, err := r.taskDirs(t.Name)
	if err != nil {
		return nil, err
	}
	if err := writePayload(dirs, t); err != nil {
		return nil, err
	}
	mounts = append(dirs, mounts...)
	env := r.runtimeVars(t)
	maps.Copy(env, resolved.Env)
	return &taskSpec{
		AllocID: r.alloc.ID, AllocName: r.alloc.Name, JobID: r.alloc.JobID, Group: r.alloc.Group, JobVersion: r.alloc.JobVersion,
		Task: *resolved, Env: env, Ports: r.servedPorts(t), Mounts: mounts,
	}, nil
}

// servedPorts are the allocation's ports a task serves on: its own, then
// those its config.ports names (which may be the group's), each once.
func (r *allocRunner) servedPorts(t *wire.Task) []wire.Port {
	labels := slices.Clone(t.Resources.Ports)
	for _, l := range t.Config.Ports {
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	var out []wire.Port
	for _, l := range labels {
		for _, ap := range r.alloc.Ports {
			if ap.Label == l {
				out = append(out, ap)
			}
		}
	}
	return out
}

// resolveTask returns a copy of t whose env values, args and command have
// their runtime references (${STRATA_PORT_http}, ${node.datacenter},
// ${attr.…}, ${meta.…}) resolved with the job language's own
// spec.Interpolate; a reference the agent cannot resolve fails the task,
// naming it.
func (r *allocRunner) resolveTask(t *wire.Task) (*wire.Task, error) {
	resolve := r.resolver(r.runtimeVars(t))
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
