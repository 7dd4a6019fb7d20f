package edge

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/testwasm"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
	"github.com/strata-run/strata/wasmhost"
)

// The wasm driver's three modes, through runTaskOnce, on an agent without a
// server: modules come from its module cache. The host runs wazero's
// interpreter, which compiles the Go examples in a second or two where the
// compiler (race-instrumented under -race) takes much longer.

// wasip1Module builds a Go package for wasip1 once per test binary.
func wasip1Module(t *testing.T, pkg string) []byte {
	t.Helper()
	b, err := testwasm.Build("", pkg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testAgent is an agent with a wasm host and a module cache, and no server.
func testAgent(t *testing.T) *Agent {
	t.Helper()
	dir := t.TempDir()
	h, err := wasmhost.New(context.Background(), wasmhost.Config{Interpreter: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	mods, err := newModuleCache(filepath.Join(dir, "modules"), DefaultModuleCacheMB<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Agent{
		cfg:  Config{DataDir: dir, BindAddr: "127.0.0.1"},
		log:  slog.New(slog.DiscardHandler),
		host: h, mods: mods,
		statuses: map[string]wire.AllocStatus{}, dirty: map[string]bool{},
		statReady: make(chan struct{}, 1),
	}
}

// wasmTask puts b in a's module cache and returns a task running it.
func wasmTask(t *testing.T, a *Agent, b []byte, mode string) *spec.Task {
	t.Helper()
	digest := wasmhost.Digest(b)
	if err := a.mods.put(digest, b); err != nil {
		t.Fatal(err)
	}
	task := &spec.Task{
		Name: "task", Driver: "wasm",
		Config:    spec.TaskConfig{Module: "m@1", ModuleDigest: digest, Mode: mode},
		Resources: spec.Resources{MemoryMB: 64},
	}
	if mode != spec.ModeCommand {
		task.Resources.Networks = []*spec.Network{{Ports: []*spec.Port{{Label: "http"}}}}
	}
	return task
}

// taskRun is one attempt of a task, run in the background.
type taskRun struct {
	r        *allocRunner
	addr     string // its port's address, if it has one
	finished chan struct{}
	err      error // runTaskOnce's, once finished
}

// wait waits for the attempt to end and returns runTaskOnce's result.
func (tr *taskRun) wait() error {
	<-tr.finished
	return tr.err
}

// stop stops the runner and returns runTaskOnce's result.
func (tr *taskRun) stop() error {
	tr.r.cancel()
	return tr.wait()
}

// startTask runs one attempt of task in an allocation of its own.
func startTask(t *testing.T, a *Agent, task *spec.Task) *taskRun {
	t.Helper()
	al := wire.Alloc{ID: "alloc-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), Name: "job.g[0]", JobID: "job", Group: "g", DesiredStatus: "run", Tasks: []*spec.Task{task}}
	tr := &taskRun{finished: make(chan struct{})}
	if len(task.Resources.Networks) > 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr.addr = ln.Addr().String()
		ln.Close()
		al.Ports = []wire.Port{{Label: "http", Value: ln.Addr().(*net.TCPAddr).Port}}
	}
	tr.r = newAllocRunner(a, al, nil)
	go func() {
		defer close(tr.finished)
		tr.err = tr.r.runTaskOnce(task)
	}()
	t.Cleanup(func() { tr.stop() })
	return tr
}

// waitStatus waits until the allocation's reported status is want.
func waitStatus(t *testing.T, a *Agent, tr *taskRun, want string) wire.AllocStatus {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		a.statMu.Lock()
		st := a.statuses[tr.r.alloc.ID]
		a.statMu.Unlock()
		if st.ClientStatus == want {
			return st
		}
		select {
		case <-a.statReady:
		case <-tr.finished:
			t.Fatalf("task ended (%v) while waiting for status %s; status %+v", tr.err, want, st)
		case <-timeout:
			t.Fatalf("no status %s after a minute; status %+v", want, st)
		}
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestWasmDriverHTTP(t *testing.T) {
	a := testAgent(t)
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	task := wasmTask(t, a, tiny, spec.ModeHTTP)
	task.Config.MaxConcurrency = 4
	task.Config.MaxRequestTime = spec.Duration(time.Second)
	tr := startTask(t, a, task)
	waitStatus(t, a, tr, "running")
	if got := getBody(t, "http://"+tr.addr+"/x"); got != "hello" {
		t.Fatalf("body %q, want hello", got)
	}
	if err := tr.stop(); err != nil {
		t.Fatalf("stopped http task: %v", err)
	}
}

func TestWasmDriverListener(t *testing.T) {
	a := testAgent(t)
	task := wasmTask(t, a, wasip1Module(t, "../examples/server"), spec.ModeListener)
	tr := startTask(t, a, task)
	waitStatus(t, a, tr, "running")
	if got := getBody(t, "http://"+tr.addr+"/x"); got != "hello from /x\n" {
		t.Fatalf("body %q", got)
	}
	if err := tr.stop(); err != nil {
		t.Fatalf("stopped listener task: %v", err)
	}
	ln, err := net.Listen("tcp", tr.addr)
	if err != nil {
		t.Fatalf("port still taken after the task stopped: %v", err)
	}
	ln.Close()
	logs, _ := os.ReadFile(filepath.Join(a.cfg.DataDir, "allocs", tr.r.alloc.ID, "logs", "task.stderr"))
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
		a := testAgent(t)
		task := wasmTask(t, a, worker, spec.ModeCommand)
		task.Config.Args = []string{"/data"}
		task.Config.Mounts = []*spec.Mount{{Source: data, Target: "/data", Readonly: true}}
		tr := startTask(t, a, task)
		st := waitStatus(t, a, tr, "complete")
		if !strings.Contains(st.Description, "exited 0") {
			t.Errorf("description %q", st.Description)
		}
		logs, _ := os.ReadFile(filepath.Join(a.cfg.DataDir, "allocs", tr.r.alloc.ID, "logs", "task.stdout"))
		if want := "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  /data/f.txt\n"; string(logs) != want {
			t.Errorf("stdout log %q, want %q", logs, want)
		}
		select {
		case <-tr.finished:
			t.Fatalf("a complete task returned %v before the runner stopped: it would be restarted", tr.err)
		default:
		}
		if err := tr.stop(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a failure goes to the restart policy", func(t *testing.T) {
		a := testAgent(t)
		task := wasmTask(t, a, worker, spec.ModeCommand)
		task.Config.Args = []string{"/nope"}
		err := startTask(t, a, task).wait()
		if err == nil || !strings.Contains(err.Error(), "exited with code 1") || !strings.Contains(err.Error(), "worker: ") {
			t.Fatalf("runTaskOnce = %v, want the exit code and the module's message", err)
		}
	})

	t.Run("memory limit", func(t *testing.T) {
		a := testAgent(t)
		task := wasmTask(t, a, worker, spec.ModeCommand)
		task.Resources.MemoryMB = 1 // under the Go runtime's initial memory
		if err := startTask(t, a, task).wait(); err == nil || !strings.Contains(err.Error(), "memory limit") {
			t.Fatalf("runTaskOnce = %v, want a memory limit refusal", err)
		}
	})
}

func TestWasmDriverBadMode(t *testing.T) {
	a := testAgent(t)
	task := wasmTask(t, a, []byte("\x00asm\x01\x00\x00\x00"), "daemon")
	if err := startTask(t, a, task).wait(); err == nil || !strings.Contains(err.Error(), `mode "daemon" is not supported`) {
		t.Fatalf("runTaskOnce = %v", err)
	}
}
