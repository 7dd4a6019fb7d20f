package edge

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/wasmhost"
)

func eventTypes(ts *wire.TaskState) []string {
	var out []string
	for _, e := range ts.Events {
		out = append(out, e.Type)
	}
	return out
}

// The task state machine driven by the restart tracker, on a fake clock:
// the events, states and counters a user reads in `alloc status`.
func TestTaskEventsFollowTheRestartPolicy(t *testing.T) {
	policy := &wire.RestartPolicy{Attempts: 2, Interval: time.Minute, Delay: 15 * time.Second, Mode: "fail"}
	tracker := newRestartTracker(policy)
	now := time.Unix(1_700_000_000, 0)
	var ts wire.TaskState
	taskReceived(&ts, now, false)
	exit1 := &wasmhost.ExitError{Kind: wasmhost.ExitCode, Code: 1, Stderr: "worker: no /data"}
	for attempt := 0; ; attempt++ {
		if attempt == 0 {
			// The first attempt cannot even start.
			taskEnded(&ts, now, errors.New("fetch module m@1: no server"))
		} else {
			taskStarted(&ts, now, "Task started by the agent")
			now = now.Add(time.Second)
			taskEnded(&ts, now, fmt.Errorf("command: %w", exit1))
		}
		delay, ok := tracker.next(now)
		if !ok {
			taskNotRestarting(&ts, now, policy)
			break
		}
		taskRestarting(&ts, now, delay)
		now = now.Add(delay)
	}
	want := []string{"Received", "Driver Failure", "Restarting", "Started", "Terminated", "Restarting", "Started", "Terminated", "Not Restarting"}
	if got := eventTypes(&ts); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %q,\nwant %q", got, want)
	}
	if ts.State != wire.TaskDead || !ts.Failed || ts.Restarts != 2 || ts.FinishedAt != now.UnixNano() {
		t.Fatalf("final state %+v", ts)
	}
	term := ts.Events[4]
	if term.ExitCode == nil || *term.ExitCode != 1 || term.Message != "Exit Code: 1, stderr: worker: no /data" {
		t.Fatalf("Terminated = %+v, want exit code 1 and the stderr line", term)
	}
	if r := ts.Events[2]; r.RestartDelayMillis != 15000 || r.Message != "Task restarting in 15s" {
		t.Fatalf("Restarting = %+v", r)
	}
	last := ts.Events[len(ts.Events)-1]
	if !last.FailsTask || last.Message != `Exceeded allowed attempts 2 in interval 1m0s and mode is "fail"` {
		t.Fatalf("Not Restarting = %+v", last)
	}
	// A dead task is not killed again; a trap is named.
	if taskKilled(&ts, now, "stopped by the coordinator") {
		t.Fatal("a dead task got a Killed event")
	}
	taskStarted(&ts, now, "again")
	taskEnded(&ts, now, &wasmhost.ExitError{Kind: wasmhost.ExitTrap, Message: "unreachable"})
	if e := ts.Events[len(ts.Events)-1]; e.Type != "Terminated" || e.ExitCode != nil || e.Message != "Trap: unreachable" {
		t.Fatalf("trap event %+v", e)
	}
	if len(ts.Events) != wire.MaxTaskEvents {
		t.Fatalf("kept %d events, want the newest %d", len(ts.Events), wire.MaxTaskEvents)
	}
}

// A real runner whose command exits 1: each attempt is Started and
// Terminated with the exit code, restarts until the policy gives up.
func TestRunnerRecordsEvents(t *testing.T) {
	n := newTestNode(t)
	task := wasmTask(t, n, wasip1Module(t, "../examples/worker"), wire.ModeCommand)
	task.Config.Args = []string{"/nope"}
	task.Restart = &wire.RestartPolicy{Attempts: 1, Interval: time.Hour, Delay: 10 * time.Millisecond, Mode: "fail"}
	al := testAlloc(t, task)
	_, done := startRunner(t, n, al)
	st := waitStatus(t, n.outbox, al.ID, done, "failed")
	ts := st.TaskStates["task"]
	want := []string{"Received", "Started", "Terminated", "Restarting", "Started", "Terminated", "Not Restarting"}
	if got := eventTypes(ts); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if e := ts.Events[2]; e.ExitCode == nil || *e.ExitCode != 1 || !strings.Contains(e.Message, "worker: ") {
		t.Fatalf("Terminated %+v: want exit code 1 and the module's stderr", e)
	}
	if ts.State != wire.TaskDead || !ts.Failed || ts.Restarts != 1 || ts.StartedAt == 0 || ts.FinishedAt < ts.StartedAt {
		t.Fatalf("state %+v", ts)
	}
}

// Task states are kept in local state: an agent that restarts shows what
// happened before (Killed at shutdown), then that it restored the task.
func TestTaskEventsSurviveAgentRestart(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, dir)
	al := offlineAlloc("kept", 0) // its module cannot be fetched: it stays pending
	if err := a.local.save([]wire.Alloc{al}); err != nil {
		t.Fatal(err)
	}
	a.allocs.reconcile([]wire.Alloc{al}, false)
	a.shutdown()

	b := newTestAgent(t, dir)
	defer b.shutdown()
	stored, err := b.local.load()
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored allocs %v %v", stored, err)
	}
	b.allocs.reconcile(stored, true)
	st := waitReport(t, b.outbox, "kept", nil, "a task state", func(st wire.AllocStatus) bool { return st.TaskStates["t"] != nil })
	ts := st.TaskStates["t"]
	want := []string{"Received", "Killed", "Received"}
	if got := eventTypes(ts); !reflect.DeepEqual(got, want) {
		t.Fatalf("events after restart %q, want %q", got, want)
	}
	if !strings.Contains(ts.Events[1].Message, "agent is shutting down") || !strings.Contains(ts.Events[2].Message, "restored") {
		t.Fatalf("events %+v", ts.Events)
	}
	// Once the servers stop listing it, its states are dropped.
	if err := b.local.save(nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.local.taskStates("kept"); got != nil {
		t.Fatalf("task states of a forgotten allocation kept: %v", got)
	}
}
