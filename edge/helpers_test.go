package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/testwasm"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/wasmhost"
)

// testNode is the runner side of an agent without a server: a wasm host
// (wazero's interpreter, which compiles the Go examples in a second or
// two where the compiler, race-instrumented, takes much longer), a module
// cache that is the only source of modules, the outbox, and the drivers.
type testNode struct {
	dir    string
	outbox *outbox
	mods   *moduleCache
	deps   *runnerDeps
	// drivers are the node's: wasm, and docker once withDocker added it.
	drivers map[string]driver
	docker  *dockerDriver
}

func newTestNode(t *testing.T) *testNode {
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
	n := &testNode{dir: dir, outbox: newOutbox(), mods: mods, drivers: map[string]driver{}}
	log := testLogger(t)
	// No server: a module not in the cache waits for a session that
	// never comes, until its attempt is stopped.
	noServer := func(ctx context.Context) (*quic.Conn, error) { <-ctx.Done(); return nil, ctx.Err() }
	src := &moduleSource{cache: mods, conn: noServer}
	n.drivers[wire.DriverWasm] = &wasmDriver{host: h, fetch: src.fetch, bindAddr: "127.0.0.1", log: log}
	n.deps = &runnerDeps{
		report: n.outbox.report, dataDir: dir, log: log,
		driver: func(name string) (driver, error) {
			if d, ok := n.drivers[name]; ok {
				return d, nil
			}
			return nil, fmt.Errorf("driver %s is not available on this agent", name)
		},
		node: nodeInfo{id: "node-1", name: "t", datacenter: "dc1", bindAddr: "127.0.0.1",
			attributes: map[string]string{"cpu.arch": "amd64"}, meta: map[string]string{"rack": "r1"}},
	}
	return n
}

// testLogger shows the log when a test fails.
func testLogger(t *testing.T) *slog.Logger {
	var buf testutil.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// wasip1Module builds a Go package for wasip1 once per test binary.
func wasip1Module(t *testing.T, pkg string) []byte {
	t.Helper()
	b, err := testwasm.Build("", pkg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wasmTask puts b in n's module cache and returns a task running it.
func wasmTask(t *testing.T, n *testNode, b []byte, mode string) wire.Task {
	t.Helper()
	digest := wasmhost.Digest(b)
	if err := n.mods.put(digest, b); err != nil {
		t.Fatal(err)
	}
	task := wire.Task{
		Name: "task", Driver: wire.DriverWasm,
		Config:    wire.TaskConfig{Module: "m@1", ModuleDigest: digest, Mode: mode},
		Resources: wire.Resources{MemoryMB: 64},
	}
	if mode != wire.ModeCommand {
		task.Resources.Ports = []string{"http"}
	}
	return task
}

// testAlloc is an allocation of its own for the running test, with task
// and ports (a Value of 0 takes a free port).
func testAlloc(t *testing.T, task wire.Task, ports ...wire.Port) wire.Alloc {
	t.Helper()
	for i := range ports {
		if ports[i].Value == 0 {
			ports[i].Value = freeTCPPort(t)
		}
	}
	return wire.Alloc{ID: "alloc-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), Name: "job.g[0]", JobID: "job", Group: "g",
		DesiredStatus: "run", Tasks: []wire.Task{task}, Ports: ports}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// attemptRun is one attempt of a task (runAttempt), run in the background.
type attemptRun struct {
	r         *allocRunner
	addr      string // its first port's address, if it has one
	finished  chan struct{}
	completed bool  // runAttempt's, once finished
	err       error // likewise
}

// startAttempt runs one attempt of the allocation's only task; with
// reattach, it first tries to re-attach to a running one.
func startAttempt(t *testing.T, n *testNode, al wire.Alloc, reattach bool) *attemptRun {
	t.Helper()
	ar := &attemptRun{r: newAllocRunner(n.deps, al, nil, reattach), finished: make(chan struct{})}
	if len(al.Ports) > 0 {
		ar.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(al.Ports[0].Value))
	}
	task := al.Tasks[0]
	go func() {
		defer close(ar.finished)
		_, ar.completed, ar.err = ar.r.runAttempt(&task, reattach)
	}()
	t.Cleanup(func() { ar.stop() })
	return ar
}

// wait waits for the attempt to end and returns runAttempt's error.
func (ar *attemptRun) wait() error {
	<-ar.finished
	return ar.err
}

// stop stops the runner and returns runAttempt's error.
func (ar *attemptRun) stop() error {
	ar.r.cancel()
	return ar.wait()
}

// startRunner runs a whole allocation runner until the test ends.
func startRunner(t *testing.T, n *testNode, al wire.Alloc) (*allocRunner, chan struct{}) {
	t.Helper()
	r := newAllocRunner(n.deps, al, nil, false)
	done := make(chan struct{})
	go func() { defer close(done); r.run() }()
	t.Cleanup(func() { r.stop("test over"); <-done })
	return r, done
}

// waitReport waits until the allocation's reported status satisfies ok,
// woken by each report; it fails the test if finished closes first.
func waitReport(t *testing.T, o *outbox, allocID string, finished <-chan struct{}, what string, ok func(wire.AllocStatus) bool) wire.AllocStatus {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		st, _ := o.last(allocID)
		if ok(st) {
			return st
		}
		select {
		case <-o.ready:
		case <-finished:
			st, _ := o.last(allocID)
			if ok(st) {
				return st
			}
			t.Fatalf("the task ended while waiting for %s; status %+v", what, st)
		case <-timeout:
			t.Fatalf("no %s after a minute; status %+v", what, st)
		}
	}
}

// waitStatus waits until the allocation's reported client status is want.
func waitStatus(t *testing.T, o *outbox, allocID string, finished <-chan struct{}, want string) wire.AllocStatus {
	t.Helper()
	return waitReport(t, o, allocID, finished, "status "+want, func(st wire.AllocStatus) bool { return st.ClientStatus == want })
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

// logBuffer is a task's stdout or stderr in memory, that tells a waiter
// of each write.
type logBuffer struct {
	testutil.Buffer
	written notifier
}

func (b *logBuffer) Write(p []byte) (int, error) {
	n, err := b.Buffer.Write(p)
	b.written.notify()
	return n, err
}

// waitFor waits until the buffer holds s.
func (b *logBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		w := b.written.wait()
		if strings.Contains(b.String(), s) {
			return
		}
		select {
		case <-w:
		case <-timeout:
			t.Fatalf("no %q written within a minute; got %q", s, b.String())
		}
	}
}

func testLoggerDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
