package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// driver runs the tasks of one kind: wasm (wasm_driver.go) or docker
// (docker_driver.go). The agent holds its drivers in a map by name, and a
// runner picks a task's by its Driver field. A driver knows nothing of
// restart policies, health checks or status reports: it starts one
// attempt of a task, or re-attaches to one, and hands back its handle.
type driver interface {
	// start starts one attempt of t and returns once it runs (a command
	// started, a port listening, a container started); ctx bounds the
	// preparation (fetching a module, pulling an image). An error is a
	// failure to start (the task's Driver Failure event).
	start(ctx context.Context, t *taskSpec) (taskHandle, error)
	// recover re-attaches to the attempt of t that a previous run of the
	// agent left running, so it is not restarted. An error wrapping
	// errNotRecovered says there is none to re-attach to (the runner
	// then starts the task); it says why.
	recover(ctx context.Context, t *taskSpec) (taskHandle, error)
}

// taskHandle is one running attempt of a task.
type taskHandle interface {
	// describe says what runs, for the task's Started event.
	describe() string
	// wait blocks until the attempt ends by itself, or ctx ends
	// (ctx.Err()). nil means it completed (exit 0: a command, a
	// container); an error says how it ended (exit code, trap, OOM kill,
	// a server that stopped serving).
	wait(ctx context.Context) error
	// stop ends the attempt (its stop signal, then a kill after
	// killTimeout) and frees what it holds (its port, container, log
	// stream); it returns once they are freed. It is called once the
	// attempt is over too, to free them, and may be called more than once.
	stop(killTimeout time.Duration) error
	// signal sends a signal (a normalised name, "SIGHUP") to the running
	// attempt; an error says why it was not delivered.
	signal(ctx context.Context, sig string) error
	// stats measures the attempt's resource use, as far as the driver can
	// (TaskStats.Measured names what it measured).
	stats(ctx context.Context) (wire.TaskStats, error)
}

// taskSpec is what a driver gets to run one attempt of a task.
type taskSpec struct {
	AllocID, AllocName, JobID, Group string
	JobVersion                       uint64
	// Task has its runtime references (env, args, command) resolved.
	Task wire.Task
	// Env is the environment the task sees: Task.Env and the runtime
	// variables (STRATA_*, NOMAD_*).
	Env map[string]string
	// Ports are the allocation's ports the task serves on: its own, then
	// those its config.ports names.
	Ports []wire.Port
	// Mounts are the task's volume mounts resolved to this node's host
	// volumes (volumes.go).
	Mounts []hostMount
	// Stdout and Stderr are the task's log files.
	Stdout, Stderr io.Writer
	// LogsWritten is when the task's log files were last written (zero
	// if never): a re-attached attempt's output is taken up from there.
	LogsWritten time.Time
}

// errNotRecovered: there is no running attempt of the task to re-attach to.
var errNotRecovered = errors.New("edge: no running attempt to re-attach to")

// errSignalRefused: the driver cannot deliver the signal to this task.
var errSignalRefused = errors.New("edge: signal refused")

// stopSignals end a task; a wasm instance takes only these.
var stopSignals = []string{"SIGTERM", "SIGINT", "SIGQUIT", "SIGKILL"}

// posixSignals are the signal numbers POSIX fixes, by number.
var posixSignals = map[string]string{"1": "SIGHUP", "2": "SIGINT", "3": "SIGQUIT", "9": "SIGKILL", "15": "SIGTERM"}

// normalizeSignal turns "hup", "SIGHUP" or "1" into the form drivers
// take: an upper-case name with its SIG prefix; a number POSIX does not
// fix stays a number (the container's kernel reads it).
func normalizeSignal(s string) (string, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return "", fmt.Errorf("%w: no signal named", errSignalRefused)
	}
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-') {
			return "", fmt.Errorf("%w: %q is not a signal name", errSignalRefused, s)
		}
	}
	if name, ok := posixSignals[s]; ok {
		return name, nil
	}
	if (s[0] < '0' || s[0] > '9') && !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	return s, nil
}
