package edge

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// The wasm driver's three modes, one attempt at a time through
// runAttempt (or a whole runner), on a node without a server: modules
// come from its module cache.

func TestWasmDriverHTTP(t *testing.T) {
	n := newTestNode(t)
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	task := wasmTask(t, n, tiny, wire.ModeHTTP)
	task.Config.MaxConcurrency = 4
	task.Config.MaxRequestTime = time.Second
	al := testAlloc(t, task, wire.Port{Label: "http"})
	ar := startAttempt(t, n, al, false)
	waitStatus(t, n.outbox, al.ID, ar.finished, "running")
	if got := getBody(t, "http://"+ar.addr+"/x"); got != "hello" {
		t.Fatalf("body %q, want hello", got)
	}
	if err := ar.stop(); err != nil {
		t.Fatalf("stopped http task: %v", err)
	}
}

func TestWasmDriverListener(t *testing.T) {
	n := newTestNode(t)
	task := wasmTask(t, n, wasip1Module(t, "../examples/server"), wire.ModeListener)
	al := testAlloc(t, task, wire.Port{Label: "http"})
	ar := startAttempt(t, n, al, false)
	waitStatus(t, n.outbox, al.ID, ar.finished, "running")
	if got := getBody(t, "http://"+ar.addr+"/x"); got != "hello from /x\n" {
		t.Fatalf("body %q", got)
	}
	if err := ar.stop(); err != nil {
		t.Fatalf("stopped listener task: %v", err)
	}
	ln, err := net.Listen("tcp", ar.addr)
	if err != nil {
		t.Fatalf("port still taken after the task stopped: %v", err)
	}
	ln.Close()
	logs, _ := os.ReadFile(filepath.Join(n.dir, "allocs", al.ID, "logs", "task.stderr"))
	if !strings.Contains(string(logs), "server: serving on") {
		t.Errorf("stderr log %q", logs)
	}
}

func TestWasmDriverCommand(t *testing.T) {
	worker := wasip1Module(t, "../examples/worker")
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "f.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("exit 0 completes the task", func(t *testing.T) {
		n := newTestNode(t)
		task := wasmTask(t, n, worker, wire.ModeCommand)
		task.Config.Args = []string{"/data"}
		n.deps.node.volumes = map[string]HostVolume{"shared": {Path: data}}
		task.VolumeMounts = []wire.VolumeMount{{Volume: "d", HostVolume: "shared", Destination: "/data", ReadOnly: true}}
		al := testAlloc(t, task)
		r, done := startRunner(t, n, al)
		st := waitStatus(t, n.outbox, al.ID, done, "complete")
		if !strings.Contains(st.Description, "exited 0") {
			t.Errorf("description %q", st.Description)
		}
		logs, _ := os.ReadFile(filepath.Join(n.dir, "allocs", al.ID, "logs", "task.stdout"))
		if want := "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  /data/f.txt\n"; string(logs) != want {
			t.Errorf("stdout log %q, want %q", logs, want)
		}
		if ts := r.taskStates()["task"]; ts.Restarts != 0 || ts.State != wire.TaskDead || ts.Failed {
			t.Fatalf("a complete task: %+v, want dead, not failed, never restarted", ts)
		}
		select {
		case <-done:
			t.Fatal("the runner of a complete allocation returned before it was stopped")
		default:
		}
	})

	t.Run("a failure goes to the restart policy", func(t *testing.T) {
		n := newTestNode(t)
		task := wasmTask(t, n, worker, wire.ModeCommand)
		task.Config.Args = []string{"/nope"}
		ar := startAttempt(t, n, testAlloc(t, task), false)
		err := ar.wait()
		if err == nil || ar.completed || !strings.Contains(err.Error(), "exited with code 1") || !strings.Contains(err.Error(), "worker: ") {
			t.Fatalf("runAttempt = %v, want the exit code and the module's message", err)
		}
	})

	t.Run("os.Exit(3) is exit code 3 in the task's events", func(t *testing.T) {
		n := newTestNode(t)
		task := wasmTask(t, n, wasip1Module(t, "../wasmhost/testdata/exitcode"), wire.ModeCommand)
		task.Restart = &wire.RestartPolicy{Attempts: 0, Interval: time.Minute, Delay: time.Second, Mode: "fail"}
		al := testAlloc(t, task)
		r, done := startRunner(t, n, al)
		waitStatus(t, n.outbox, al.ID, done, "failed")
		ts := r.taskStates()["task"]
		var term *wire.TaskEvent
		for i := range ts.Events {
			if ts.Events[i].Type == wire.EventTerminated {
				term = &ts.Events[i]
			}
		}
		if term == nil || term.ExitCode == nil || *term.ExitCode != 3 || term.Message != "Exit Code: 3, stderr: exitcode: giving up" {
			t.Fatalf("Terminated event %+v, want exit code 3 and the module's stderr line (events %+v)", term, ts.Events)
		}
	})

	t.Run("memory limit", func(t *testing.T) {
		n := newTestNode(t)
		task := wasmTask(t, n, worker, wire.ModeCommand)
		task.Resources.MemoryMB = 1 // under the Go runtime's initial memory
		if err := startAttempt(t, n, testAlloc(t, task), false).wait(); err == nil || !strings.Contains(err.Error(), "memory limit") {
			t.Fatalf("runAttempt = %v, want a memory limit refusal", err)
		}
	})
}

func TestWasmDriverBadMode(t *testing.T) {
	n := newTestNode(t)
	task := wasmTask(t, n, []byte("\x00asm\x01\x00\x00\x00"), "daemon")
	if err := startAttempt(t, n, testAlloc(t, task), false).wait(); err == nil || !strings.Contains(err.Error(), `mode "daemon" is not supported`) {
		t.Fatalf("runAttempt = %v", err)
	}
}

// A stop signal ends a wasm task's instance, and the attempt fails naming
// it (the restart policy then applies); any other signal is refused
// without touching the task. Stats count the requests and instances.
func TestWasmDriverSignalsAndStats(t *testing.T) {
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t)
	task := wasmTask(t, n, tiny, wire.ModeHTTP)
	al := testAlloc(t, task, wire.Port{Label: "http"})
	ar := startAttempt(t, n, al, false)
	waitStatus(t, n.outbox, al.ID, ar.finished, "running")
	set := newAllocSet(n.deps, n.outbox, nil, func(map[string]bool) {}, n.deps.log)
	set.runners[al.ID] = ar.r
	ctx := context.Background()

	for range 3 {
		getBody(t, "http://"+ar.addr+"/")
	}
	st, err := set.stats(ctx, al.ID, "task")
	if err != nil || st.Requests != 3 || st.Instances != 0 || !slices.Equal(st.Measured, []string{wire.MeasuredInstances, wire.MeasuredRequests}) ||
		st.AllocID != al.ID || st.Task != "task" || st.Time == 0 {
		t.Fatalf("stats = %+v, %v; want 3 requests, no instance running now, instances and requests measured", st, err)
	}
	if _, err := set.stats(ctx, al.ID, "nosuch"); err == nil || !strings.Contains(err.Error(), `no task "nosuch"`) {
		t.Fatalf("stats of a task the allocation lacks: %v", err)
	}

	err = set.signal(ctx, al.ID, "task", "hup")
	if !errors.Is(err, errSignalRefused) || !strings.Contains(err.Error(), "SIGHUP has no meaning to a WebAssembly module") {
		t.Fatalf("SIGHUP to a wasm task: %v, want a refusal naming it", err)
	}
	if got := getBody(t, "http://"+ar.addr+"/"); got != "hello" {
		t.Fatalf("after a refused signal the task answers %q", got)
	}
	if err := set.signal(ctx, al.ID, "task", "SIGTERM"); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if err := ar.wait(); err == nil || !strings.Contains(err.Error(), "stopped by SIGTERM") {
		t.Fatalf("the attempt after SIGTERM: %v, want it ended by the signal", err)
	}
	if _, err := set.stats(ctx, al.ID, "task"); err == nil || !strings.Contains(err.Error(), "is not running") {
		t.Fatalf("stats of an ended attempt: %v", err)
	}
}

// A command stopped by SIGKILL ends as a failure naming the signal; a
// listener's stats count its one instance.
func TestWasmDriverInstanceSignals(t *testing.T) {
	n := newTestNode(t)
	d := n.drivers[wire.DriverWasm].(*wasmDriver)
	ctx := context.Background()

	server := wasmTask(t, n, wasip1Module(t, "../examples/server"), wire.ModeListener)
	ls := &taskSpec{AllocID: "a1", Task: server, Ports: []wire.Port{{Label: "http", Value: freeTCPPort(t)}}}
	h, err := d.start(ctx, ls)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := h.stats(ctx); err != nil || st.Instances != 1 || !slices.Equal(st.Measured, []string{wire.MeasuredInstances}) {
		t.Fatalf("listener stats = %+v, %v; want one instance", st, err)
	}
	if err := h.signal(ctx, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	if err := h.wait(ctx); err == nil || !strings.Contains(err.Error(), "listener on ") || !strings.Contains(err.Error(), "stopped by SIGKILL") {
		t.Fatalf("listener after SIGKILL: %v", err)
	}
	h.stop(time.Second)
	if st, _ := h.stats(ctx); st.Instances != 0 {
		t.Fatalf("stats after the instance ended: %+v", st)
	}
	if err := h.signal(ctx, "SIGTERM"); !errors.Is(err, errSignalRefused) {
		t.Fatalf("a signal to an ended instance: %v, want a refusal", err)
	}
}

// A wasm instance cannot outlive the agent, so there is never one to
// re-attach to: the runner starts the task again.
func TestWasmDriverDoesNotRecover(t *testing.T) {
	n := newTestNode(t)
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	task := wasmTask(t, n, tiny, wire.ModeHTTP)
	_, err = n.drivers[wire.DriverWasm].recover(context.Background(), &taskSpec{Task: task})
	if !errors.Is(err, errNotRecovered) || !strings.Contains(err.Error(), "ended with its previous run") {
		t.Fatalf("recover = %v, want errNotRecovered saying why", err)
	}
	// A runner restored from local state starts it instead.
	al := testAlloc(t, task, wire.Port{Label: "http"})
	ar := startAttempt(t, n, al, true)
	st := waitStatus(t, n.outbox, al.ID, ar.finished, "running")
	if ev := st.TaskStates["task"].Events; ev[len(ev)-1].Type != wire.EventStarted || !strings.HasPrefix(ev[len(ev)-1].Message, "Serving http on ") {
		t.Fatalf("events %+v, want the task started anew", ev)
	}
}

// A restart asked for (alloc restart) ends the running attempt and starts
// it again at once, as the restart loop does, without spending the
// policy's attempts: with none left to spend, a failure would have
// failed the task.
func TestRestartOnRequest(t *testing.T) {
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t)
	task := wasmTask(t, n, tiny, wire.ModeHTTP)
	task.Restart = &wire.RestartPolicy{Attempts: 0, Interval: time.Hour, Delay: time.Hour, Mode: "fail"}
	al := testAlloc(t, task, wire.Port{Label: "http"})
	r, done := startRunner(t, n, al)
	waitStatus(t, n.outbox, al.ID, done, "running")
	set := newAllocSet(n.deps, n.outbox, nil, func(map[string]bool) {}, n.deps.log)
	set.runners[al.ID] = r
	ctx := context.Background()

	if _, err := set.restart(ctx, al.ID, "nosuch"); err == nil || !strings.Contains(err.Error(), `no task "nosuch"`) {
		t.Fatalf("restart of a task the allocation lacks: %v", err)
	}
	if _, err := set.restart(ctx, "other", ""); err == nil || !strings.Contains(err.Error(), "does not run on this node") {
		t.Fatalf("restart of an allocation elsewhere: %v", err)
	}
	names, err := set.restart(ctx, al.ID, "")
	if err != nil || !slices.Equal(names, []string{"task"}) {
		t.Fatalf("restart = %v, %v; want [task]", names, err)
	}
	st := waitReport(t, n.outbox, al.ID, done, "the task running again after one restart", func(st wire.AllocStatus) bool {
		ts := st.TaskStates["task"]
		return st.ClientStatus == "running" && ts != nil && ts.Restarts == 1 && ts.State == wire.TaskRunning
	})
	ts := st.TaskStates["task"]
	got := eventTypes(ts)
	want := []string{"Restart Signaled", "Terminated", "Restarting", "Started"}
	if len(got) < len(want) || !slices.Equal(got[len(got)-len(want):], want) {
		t.Fatalf("events %q, want them to end with %q", got, want)
	}
	if e := ts.Events[len(ts.Events)-4]; e.Message != "User requested restart" {
		t.Fatalf("Restart Signaled %+v", e)
	}
	if e := ts.Events[len(ts.Events)-2]; e.RestartDelayMillis != 0 || ts.Failed {
		t.Fatalf("Restarting %+v (failed %t): want at once, not a failure", e, ts.Failed)
	}
	if got := getBody(t, "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(al.Ports[0].Value))+"/"); got != "hello" {
		t.Fatalf("after the restart the task answers %q", got)
	}
}
