package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runEcho runs envecho as a command with QUERY_STRING=query and returns its
// stdout, stderr and error.
func runEcho(t *testing.T, query string, cfg CommandConfig) (string, string, error) {
	t.Helper()
	h, m := sharedGoModule(t, envechoPkg)
	var stdout, stderr bytes.Buffer
	cfg.Stdout, cfg.Stderr = &stdout, &stderr
	if cfg.Env == nil {
		cfg.Env = map[string]string{}
	}
	cfg.Env["QUERY_STRING"] = query
	err := h.RunCommand(context.Background(), m, cfg)
	return stdout.String(), stderr.String(), err
}

func TestCommand(t *testing.T) {
	out, _, err := runEcho(t, "", CommandConfig{Name: "job", Args: []string{"a", "b c"}, Env: map[string]string{"X": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	env, args, stdin := parseEcho(t, out)
	if env["X"] != "1" || env["QUERY_STRING"] != "" || len(env) != 2 {
		t.Errorf("env = %v, want exactly X=1 and QUERY_STRING", env)
	}
	if strings.Join(args, "|") != "job|a|b c" || stdin != "" {
		t.Errorf("args %q, stdin %q", args, stdin)
	}
}

func TestCommandFailures(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		kind        ExitKind
		code        uint32
		stderr      string
	}{
		{"exit code", "exit=3", ExitCode, 3, ""},
		{"exit code with stderr", "stderr=bad+input&exit=4", ExitCode, 4, "bad input"},
		{"go panic", "panic=boom", ExitCode, 2, "panic: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runEcho(t, tc.query, CommandConfig{})
			var exit *ExitError
			if !errors.As(err, &exit) || exit.Kind != tc.kind || exit.Code != tc.code || exit.Stderr != tc.stderr {
				t.Fatalf("RunCommand = %#v (%v), want kind %d code %d stderr %q", err, err, tc.kind, tc.code, tc.stderr)
			}
		})
	}
}

func TestCommandTrap(t *testing.T) {
	h := newHost(t)
	err := h.RunCommand(context.Background(), mustCompile(t, h, trapModule), CommandConfig{Name: "trap"})
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Kind != ExitTrap || !strings.Contains(exit.Message, "unreachable") {
		t.Fatalf("RunCommand = %v, want an ExitTrap saying unreachable", err)
	}
	if want := "wasmhost: module trapped: wasm error: unreachable"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
}

func TestCommandMaxRuntime(t *testing.T) {
	h := newHost(t)
	err := h.RunCommand(context.Background(), mustCompile(t, h, loopModule), CommandConfig{MaxRuntime: 50 * time.Millisecond})
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Kind != ExitTimeout || !strings.Contains(err.Error(), "time limit of 50ms") {
		t.Fatalf("RunCommand = %v, want ExitTimeout", err)
	}
	// A Go module sleeping is stopped the same way.
	_, _, err = runEcho(t, "sleep=1h", CommandConfig{MaxRuntime: 50 * time.Millisecond})
	if !errors.As(err, &exit) || exit.Kind != ExitTimeout {
		t.Fatalf("sleeping Go module: %v, want ExitTimeout", err)
	}
}

// The caller stopping a run is not a failure of the module.
func TestCommandStopped(t *testing.T) {
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.RunCommand(ctx, mustCompile(t, h, loopModule), CommandConfig{}) }()
	cancel()
	err := <-done
	var exit *ExitError
	if !errors.Is(err, context.Canceled) || errors.As(err, &exit) {
		t.Fatalf("RunCommand after cancel = %v, want context.Canceled", err)
	}
}

func TestCommandMemoryLimit(t *testing.T) {
	h := newHost(t)
	err := h.RunCommand(context.Background(), mustCompile(t, h, growModule), CommandConfig{Limits: Limits{MaxMemory: 8 << 20}})
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Kind != ExitMemory || !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("RunCommand = %v, want ExitMemory", err)
	}
	if want := "over the task's memory limit of 8 MiB"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}

	// A Go module allocating past its limit dies with "out of memory".
	_, _, err = runEcho(t, "alloc=64", CommandConfig{Limits: Limits{MaxMemory: 32 << 20}})
	if !errors.As(err, &exit) || exit.Kind != ExitMemory || !strings.Contains(exit.Stderr, "out of memory") {
		t.Fatalf("Go module: %v, want ExitMemory with the runtime's out of memory", err)
	}
	// Within its limit, the same allocation is fine.
	if _, _, err := runEcho(t, "alloc=16", CommandConfig{Limits: Limits{MaxMemory: 64 << 20}}); err != nil {
		t.Fatalf("alloc=16 under 64 MiB: %v", err)
	}
}

// A module whose initial memory is over the limit is refused before it runs.
func TestCommandInitialMemoryOverLimit(t *testing.T) {
	h := newHost(t)
	m := mustCompile(t, h, bigModule(32)) // 2 MiB
	if m.MinMemory() != 2<<20 {
		t.Fatalf("MinMemory = %d, want 2 MiB", m.MinMemory())
	}
	err := h.RunCommand(context.Background(), m, CommandConfig{Limits: Limits{MaxMemory: 1 << 20}})
	if !errors.Is(err, ErrMemoryLimit) || !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("RunCommand = %v, want ErrMemoryLimit and ErrInvalidModule", err)
	}
	if want := "it needs 2 MiB of linear memory at start, over the task's memory limit of 1 MiB"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to say %q", err, want)
	}
	if err := h.RunCommand(context.Background(), m, CommandConfig{Limits: Limits{MaxMemory: 2 << 20}}); err != nil {
		t.Errorf("at exactly its initial memory: %v", err)
	}
	if _, err := h.HTTPHandler(m, HTTPConfig{Limits: Limits{MaxMemory: 1 << 20}}); !errors.Is(err, ErrMemoryLimit) {
		t.Errorf("HTTPHandler = %v, want ErrMemoryLimit", err)
	}
}

func TestCommandMounts(t *testing.T) {
	rw, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "in.txt"), []byte("input"), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := []Mount{{Source: rw, Target: "/out"}, {Source: ro, Target: "/in", Readonly: true}}

	out, _, err := runEcho(t, "read=/in/in.txt&write=/out/result.txt", CommandConfig{Limits: Limits{Mounts: mounts}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "FILE input\n") {
		t.Errorf("output %q does not show the mounted file", out)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "result.txt")); err != nil || string(b) != "written" {
		t.Errorf("written file: %q, %v", b, err)
	}

	// Read-only means read-only.
	_, stderr, err := runEcho(t, "write=/in/x.txt", CommandConfig{Limits: Limits{Mounts: mounts}})
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 1 || !strings.Contains(stderr, "/in/x.txt") {
		t.Errorf("writing to a read-only mount: %v, stderr %q; want exit 1", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(ro, "x.txt")); err == nil {
		t.Error("the module wrote to a read-only mount")
	}

	// No mount, no filesystem.
	if _, _, err := runEcho(t, "read=/etc/hostname", CommandConfig{}); !errors.As(err, &exit) || exit.Code != 1 {
		t.Errorf("reading without a mount: %v, want exit 1", err)
	}

	// Bad mounts are refused up front.
	h, m := sharedGoModule(t, envechoPkg)
	for _, bad := range []Mount{
		{Source: filepath.Join(rw, "missing"), Target: "/x"},
		{Source: filepath.Join(ro, "in.txt"), Target: "/x"},
		{Source: rw, Target: "relative"},
	} {
		if err := h.RunCommand(context.Background(), m, CommandConfig{Limits: Limits{Mounts: []Mount{bad}}}); err == nil || errors.As(err, &exit) {
			t.Errorf("mount %+v: %v, want a configuration error", bad, err)
		}
	}
}

// Without RealClock, the module's wall clock is wazero's deterministic one
// (2022-01-01); with it, the real one.
func TestCommandClock(t *testing.T) {
	const fakeEpoch = 1640995200 // 2022-01-01T00:00:00Z
	for _, real := range []bool{false, true} {
		out, _, err := runEcho(t, "now=1", CommandConfig{Limits: Limits{RealClock: real}})
		if err != nil {
			t.Fatal(err)
		}
		_, line, _ := strings.Cut(out, "NOW ")
		sec, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		if err != nil {
			t.Fatalf("output %q: no NOW line", out)
		}
		if fake := sec < fakeEpoch+3600; fake == real {
			t.Errorf("RealClock=%v: the module read %s", real, time.Unix(sec, 0).UTC())
		}
	}
}

func TestCommandLogFiles(t *testing.T) {
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "job.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "job.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	h, m := sharedGoModule(t, envechoPkg)
	err = h.RunCommand(context.Background(), m, CommandConfig{
		Env:    map[string]string{"QUERY_STRING": "stderr=to+stderr"},
		Stdout: stdout, Stderr: stderr,
	})
	stdout.Close()
	stderr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "job.stdout")); !strings.Contains(string(b), "ENV QUERY_STRING=stderr=to+stderr\n") {
		t.Errorf("stdout log %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "job.stderr")); string(b) != "to stderr\n" {
		t.Errorf("stderr log %q", b)
	}
}

// TestWorkerExample runs examples/worker in command mode over a mounted
// directory: its manifest is what sha256sum would print, its summary goes to
// stderr, and a directory it cannot read fails it with exit code 1.
func TestWorkerExample(t *testing.T) {
	h, m := sharedGoModule(t, workerPkg)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"a.txt": "hello\n", "sub/b.txt": ""}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	err := h.RunCommand(context.Background(), m, CommandConfig{
		Name: "worker", Args: []string{"/data"}, Stdout: &stdout, Stderr: &stderr,
		MaxRuntime: time.Minute,
		Limits:     Limits{MaxMemory: 64 << 20, Mounts: []Mount{{Source: dir, Target: "/data", Readonly: true}}},
	})
	if err != nil {
		t.Fatalf("worker: %v (stderr %q)", err, stderr.String())
	}
	want := "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  /data/a.txt\n" +
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /data/sub/b.txt\n"
	if stdout.String() != want {
		t.Errorf("manifest %q, want %q", stdout.String(), want)
	}
	if stderr.String() != "worker: 2 files in /data\n" {
		t.Errorf("stderr %q", stderr.String())
	}

	err = h.RunCommand(context.Background(), m, CommandConfig{Name: "worker", Args: []string{"/nope"}})
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Kind != ExitCode || exit.Code != 1 || !strings.HasPrefix(exit.Stderr, "worker: ") {
		t.Fatalf("worker on a missing directory: %#v, want exit 1 with its message", err)
	}
}

// No network outside listener mode: fd 3 is no socket, so accepting on it
// fails at once (acceptModule would wait for a client on a listener).
func TestCommandNoNetwork(t *testing.T) {
	h := newHost(t)
	if err := h.RunCommand(context.Background(), mustCompile(t, h, acceptModule), CommandConfig{}); err != nil {
		t.Fatalf("RunCommand = %v, want a quick, clean exit", err)
	}
}

// A Go module that writes output and calls os.Exit(3) ends with exit code
// 3 and its own output (it once crashed in its runtime with code 4: see
// TestCoalescePreservesGoModules).
func TestGoModuleExitCode(t *testing.T) {
	h, m := sharedGoModule(t, exitcodePkg)
	for _, code := range []uint32{3, 1, 0} {
		var stdout, stderr bytes.Buffer
		err := h.RunCommand(context.Background(), m, CommandConfig{Name: "exitcode", Args: []string{strconv.Itoa(int(code))}, Stdout: &stdout, Stderr: &stderr})
		var exit *ExitError
		switch {
		case code == 0 && err != nil:
			t.Fatalf("os.Exit(0): %v", err)
		case code != 0 && (!errors.As(err, &exit) || exit.Kind != ExitCode || exit.Code != code || exit.Stderr != "exitcode: giving up"):
			t.Fatalf("os.Exit(%d): %#v (%v), want exit code %d with its stderr line", code, err, err, code)
		}
		if stdout.String() != "failing on purpose\n" || stderr.String() != "exitcode: giving up\n" {
			t.Fatalf("os.Exit(%d): stdout %q, stderr %q", code, stdout.String(), stderr.String())
		}
	}
}
