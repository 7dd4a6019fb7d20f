package edge

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/wasmhost"
)

// Task events: what happened to each task, with Nomad's event names, kept
// in a wire.TaskState (newest wire.MaxTaskEvents). These functions are the
// whole state machine of a task's reported state; they do no I/O and take
// the time from the caller. The runner calls them, then persists the state
// in local state and reports it with the allocation's status.

func eventAt(now time.Time, typ, msg string) wire.TaskEvent {
	return wire.TaskEvent{Type: typ, Time: now.UnixNano(), Message: msg}
}

// taskReceived starts a task's history, or continues one restored from
// local state after the agent restarted.
func taskReceived(ts *wire.TaskState, now time.Time, restored bool) {
	msg := "Task received by the agent"
	if restored {
		msg = "Task restored from local state after an agent restart"
	}
	ts.State = wire.TaskPending
	ts.Append(eventAt(now, wire.EventReceived, msg))
}

// taskStarted: an attempt runs (a command's _start was entered, an http
// task's port listens, a listener module listens).
func taskStarted(ts *wire.TaskState, now time.Time, msg string) {
	ts.State, ts.StartedAt = wire.TaskRunning, now.UnixNano()
	ts.Append(eventAt(now, wire.EventStarted, msg))
}

// taskEnded records how a failed attempt ended: Terminated (with the exit
// code, trap or limit) if it had started, Driver Failure if it never did.
func taskEnded(ts *wire.TaskState, now time.Time, err error) {
	if ts.State != wire.TaskRunning {
		ts.Append(eventAt(now, wire.EventDriverFailure, err.Error()))
		return
	}
	ev := eventAt(now, wire.EventTerminated, err.Error())
	var exit *wasmhost.ExitError
	var cexit *containerExitError
	switch {
	case errors.As(err, &exit):
		ev.Message = describeExit(exit)
		if exit.Kind == wasmhost.ExitCode {
			code := int(exit.Code)
			ev.ExitCode = &code
		}
	case errors.As(err, &cexit):
		code := cexit.Code
		ev.ExitCode = &code
		ev.Message = fmt.Sprintf("Exit Code: %d", code)
		if cexit.OOMKilled {
			ev.Message += `, Exit Message: "OOM Killed"`
		}
	}
	ts.Append(ev)
}

// taskRestartSignaled: a health check failed check_restart.limit times
// in a row; the attempt is ended and goes through the restart policy.
func taskRestartSignaled(ts *wire.TaskState, now time.Time, reason string) {
	ts.Append(eventAt(now, wire.EventRestartSignal, reason))
}

// describeExit is an ExitError without the package prefix, in Nomad's
// words where it has some.
func describeExit(e *wasmhost.ExitError) string {
	var s string
	switch e.Kind {
	case wasmhost.ExitCode:
		s = fmt.Sprintf("Exit Code: %d", e.Code)
	case wasmhost.ExitTrap:
		s = "Trap: " + e.Message
	default:
		s = "Stopped: " + e.Message
	}
	if e.Stderr != "" {
		s += ", stderr: " + e.Stderr
	}
	return s
}

// taskCompleted: a command exited 0; it is done and not restarted.
func taskCompleted(ts *wire.TaskState, now time.Time, ran time.Duration) {
	code := 0
	ts.State, ts.FinishedAt = wire.TaskDead, now.UnixNano()
	ev := eventAt(now, wire.EventTerminated, fmt.Sprintf("Exit Code: 0, after %s", ran.Round(time.Millisecond)))
	ev.ExitCode = &code
	ts.Append(ev)
}

// taskRestarting: the restart policy starts it again after delay.
func taskRestarting(ts *wire.TaskState, now time.Time, delay time.Duration) {
	ts.State = wire.TaskPending
	ts.Restarts++
	ev := eventAt(now, wire.EventRestarting, fmt.Sprintf("Task restarting in %s", delay.Round(time.Millisecond)))
	ev.RestartDelayMillis = delay.Milliseconds()
	ts.Append(ev)
}

// taskNotRestarting: the restart policy gave up; the task failed.
func taskNotRestarting(ts *wire.TaskState, now time.Time, p *wire.RestartPolicy) {
	ts.State, ts.Failed, ts.FinishedAt = wire.TaskDead, true, now.UnixNano()
	ev := eventAt(now, wire.EventNotRestarting,
		fmt.Sprintf("Exceeded allowed attempts %d in interval %s and mode is %q", p.Attempts, p.Interval, p.Mode))
	ev.FailsTask = true
	ts.Append(ev)
}

// taskKilled: the task was stopped on purpose while not dead (a dead task
// has nothing left to kill).
func taskKilled(ts *wire.TaskState, now time.Time, reason string) bool {
	if ts.State == wire.TaskDead {
		return false
	}
	ts.State, ts.FinishedAt = wire.TaskDead, now.UnixNano()
	ts.Append(eventAt(now, wire.EventKilled, "Task killed: "+reason))
	return true
}
