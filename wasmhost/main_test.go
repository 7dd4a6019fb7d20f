package wasmhost

import (
	"context"
	"fmt"
	"github.com/strata-run/strata/internal/testwasm"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The Go test modules (examples/hello and testdata/envecho) are built with
// GOOS=wasip1 GOARCH=wasm once per test binary, on first use, and compiled once
// on one shared Host: a cold compile of a 2–3 MB Go module is the slow part of
// this package's tests (~3 s each with the compiler; under -race, where wazero's
// compiler itself is instrumented, 20–60 s each). So with -race the shared Host
// uses wazero's interpreter: the wasmhost code under test is the same, and the
// hand-assembled modules still run on the compiler in every mode.

var (
	tmpDir     string
	tmpDirOnce sync.Once

	shared struct {
		once sync.Once
		host *Host
		err  error

		mu   sync.Mutex
		mods map[string]*compiled // Go modules by package path
	}
)

type compiled struct {
	once sync.Once
	mod  *Module
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.host != nil {
		_ = shared.host.Close(context.Background())
	}
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

func testTmpDir(tb testing.TB) string {
	tmpDirOnce.Do(func() {
		var err error
		if tmpDir, err = os.MkdirTemp("", "wasmhost-test-"); err != nil {
			panic(err)
		}
	})
	return tmpDir
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

const (
	helloPkg    = "../examples/hello"
	serverPkg   = "../examples/server"
	workerPkg   = "../examples/worker"
	envechoPkg  = "./testdata/envecho"
	exitcodePkg = "./testdata/exitcode"
)

// goModule builds pkg (relative to this package) for wasip1 once and returns
// the module bytes.
func goModule(tb testing.TB, pkg string) []byte {
	tb.Helper()
	b, err := testwasm.Build("", pkg)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sharedGoModule returns the shared Host and pkg compiled on it, once per
// test binary.
func sharedGoModule(tb testing.TB, pkg string) (*Host, *Module) {
	tb.Helper()
	b := goModule(tb, pkg)
	shared.once.Do(func() {
		cfg := Config{CacheDir: filepath.Join(testTmpDir(tb), "shared-cache"), Interpreter: raceEnabled}
		shared.host, shared.err = New(context.Background(), cfg)
		shared.mods = map[string]*compiled{}
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	shared.mu.Lock()
	c, ok := shared.mods[pkg]
	if !ok {
		c = &compiled{}
		shared.mods[pkg] = c
	}
	shared.mu.Unlock()
	c.once.Do(func() {
		c.mod, c.err = shared.host.Compile(context.Background(), Digest(b), b)
		if c.err != nil {
			c.err = fmt.Errorf("compile %s: %w", pkg, c.err)
		}
	})
	if c.err != nil {
		tb.Fatal(c.err)
	}
	return shared.host, c.mod
}

// newHost returns a Host without disk cache, closed at the end of the test.
// Its logs go to the test log.
func newHost(tb testing.TB) *Host {
	tb.Helper()
	h, err := New(context.Background(), Config{Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func testLogger(tb testing.TB) *slog.Logger {
	if _, isBench := tb.(*testing.B); isBench {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ tb testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// mustCompile compiles b on h.
func mustCompile(tb testing.TB, h *Host, b []byte) *Module {
	tb.Helper()
	m, err := h.Compile(context.Background(), Digest(b), b)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// do sends one request through handler and returns the recorded response.
func do(handler http.Handler, method, target string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	return rec
}

// mustHandler returns h's HTTP handler for m.
func mustHandler(tb testing.TB, h *Host, m *Module, cfg HTTPConfig) http.Handler {
	tb.Helper()
	handler, err := h.HTTPHandler(m, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return handler
}
