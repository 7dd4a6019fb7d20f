package wasmhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Mount grants instances a host directory.
type Mount struct {
	Source   string // host directory; must exist
	Target   string // absolute path inside the module, e.g. "/data"
	Readonly bool
}

// Limits and grants shared by every mode.
type Limits struct {
	// MaxMemory caps each instance's linear memory, in bytes (0 = wasm32's
	// 4 GiB). A module whose initial memory is larger is refused; one that
	// grows past it is stopped (ExitMemory).
	MaxMemory int64
	// Mounts are the only filesystem an instance sees; none by default.
	Mounts []Mount
	// RealClock grants the wall and monotonic clocks. Without it an instance
	// reads wazero's deterministic clocks (the wall clock starts at
	// 2022-01-01T00:00:00Z and every reading advances 1 ms), which hides
	// timing from the module; sleeps still take real time. Listener mode
	// always has real clocks.
	RealClock bool
}

// ExitKind says how an instance failed.
type ExitKind int

const (
	ExitCode    ExitKind = iota + 1 // the module exited (proc_exit) with Code
	ExitTrap                        // a WebAssembly trap (unreachable, out-of-bounds access, stack overflow, …)
	ExitMemory                      // it tried to grow its memory past Limits.MaxMemory
	ExitTimeout                     // MaxRuntime (command) or MaxRequestTime (http) passed
)

// ExitError is how an instance ended when that is a failure: a non-zero exit
// (or any exit, for a long-lived listener), a trap, the memory limit or a time
// limit. errors.Is(err, ErrMemoryLimit) holds for ExitMemory.
type ExitError struct {
	Kind    ExitKind
	Code    uint32        // exit code, for ExitCode
	Message string        // trap message (ExitTrap) or limit details (ExitMemory)
	After   time.Duration // how long the instance ran
	// Stderr is the most telling line of what the module last wrote to
	// stderr (a Go "panic:" or "fatal error:" line if there is one), if any.
	Stderr string
}

func (e *ExitError) Error() string {
	var s string
	switch e.Kind {
	case ExitCode:
		s = fmt.Sprintf("module exited with code %d", e.Code)
	case ExitTrap:
		s = "module trapped: " + e.Message
	case ExitMemory:
		s = "module stopped: " + e.Message
	case ExitTimeout:
		s = "module stopped: " + e.Message
	default:
		s = "module failed"
	}
	if e.Stderr != "" {
		s += "; stderr: " + e.Stderr
	}
	return "wasmhost: " + s
}

// Is makes errors.Is(err, ErrMemoryLimit) true for ExitMemory.
func (e *ExitError) Is(target error) bool { return target == ErrMemoryLimit && e.Kind == ExitMemory }

// instState is one instance's state that our WASI functions find in the
// call's context: its environment, its memory, its sockets.
type instState struct {
	env      []byte // "K=V\x00" for each variable
	envCount int
	mem      *linearMemory
	socks    *sockets // listener mode only
	log      *slog.Logger
	mod      atomic.Value    // api.Module, once one of our WASI functions saw it (see forceClose)
	closing  context.Context // ends when the Host closes
}

// noteMod remembers the instance's api.Module, which only host functions see.
func (st *instState) noteMod(mod api.Module) {
	if st != nil && st.mod.Load() == nil {
		st.mod.Store(mod)
	}
}

type instKey struct{}

func stateOf(ctx context.Context) *instState {
	st, _ := ctx.Value(instKey{}).(*instState)
	return st
}

// addEnv appends k=v to the environment, if wazero would accept it (a
// non-empty name without '=', no NUL anywhere); it reports whether it did.
func (st *instState) addEnv(k, v string) bool {
	if !validEnv(k, v) {
		return false
	}
	st.env = append(st.env, k...)
	st.env = append(st.env, '=')
	st.env = append(st.env, v...)
	st.env = append(st.env, 0)
	st.envCount++
	return true
}

// staticEnv is a task's environment, validated and sorted once.
type staticEnv []string // name, value pairs

func newStaticEnv(env map[string]string, log *slog.Logger) staticEnv {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out staticEnv
	for _, k := range keys {
		if !validEnv(k, env[k]) {
			log.Warn("task env variable dropped: a name must be non-empty without '=' or NUL, a value without NUL", "name", k)
			continue
		}
		out = append(out, k, env[k])
	}
	return out
}

// baseConfig is the part of an instance's wazero config that is the same for
// every instance of a task: anonymous (any number may run at once), argv,
// stderr, clocks, crypto/rand, mounts. It has no environment (ours comes from
// instState) and no stdin/stdout (per instance where they differ).
func baseConfig(name string, args []string, stdout, stderr io.Writer, lim Limits) (wazero.ModuleConfig, error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithArgs(append([]string{name}, args...)...).
		WithStdout(stdout).
		WithStderr(stderr).
		WithRandSource(rand.Reader)
	if lim.RealClock {
		cfg = cfg.WithSysWalltime().WithSysNanotime()
	}
	if len(lim.Mounts) > 0 {
		fsc := wazero.NewFSConfig()
		seen := map[string]bool{}
		for _, m := range lim.Mounts {
			target := path.Clean("/" + strings.TrimPrefix(m.Target, "/"))
			if m.Target == "" || !strings.HasPrefix(m.Target, "/") {
				return nil, fmt.Errorf("wasmhost: mount %q: the target must be an absolute path", m.Target)
			}
			if seen[target] {
				return nil, fmt.Errorf("wasmhost: mount %q: target mounted twice", m.Target)
			}
			seen[target] = true
			fi, err := os.Stat(m.Source)
			if err != nil {
				return nil, fmt.Errorf("wasmhost: mount %s: %w", m.Target, err)
			}
			if !fi.IsDir() {
				return nil, fmt.Errorf("wasmhost: mount %s: source %s is not a directory", m.Target, m.Source)
			}
			if m.Readonly {
				fsc = fsc.WithReadOnlyDirMount(m.Source, target)
			} else {
				fsc = fsc.WithDirMount(m.Source, target)
			}
		}
		cfg = cfg.WithFSConfig(fsc)
	}
	return cfg, nil
}

// runInstance instantiates m with cfg, which runs its _start to the end, the
// instance's context ends or the Host closes; then it releases the instance
// and its memory. It returns wazero's error as is (nil for a return or
// proc_exit(0)), or a panic inside wazero as an error.
func (h *Host) runInstance(ctx context.Context, m *Module, cfg wazero.ModuleConfig, st *instState) (err error) {
	if st.mem == nil {
		st.mem = newLinearMemory(0)
	}
	if !h.enter() {
		return ErrClosed
	}
	defer h.leave()
	// Host.Close ends the instance through its context: wazero stops it at
	// its next check, and a wait in our poll_oneoff ends (st.closing).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopOnClose := context.AfterFunc(h.closing, cancel)
	defer stopOnClose()
	st.closing = h.closing
	ctx = context.WithValue(ctx, instKey{}, st)
	ctx = experimental.WithMemoryAllocator(ctx, st.mem.allocator())
	if st.socks != nil {
		ctx = experimental.WithImportResolver(ctx, func(name string) api.Module {
			if name == wasi_snapshot_preview1.ModuleName {
				return h.listenerWASI
			}
			return nil
		})
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("wasmhost: instance of %s panicked in the runtime: %v", m.digest, r)
		}
		// The instance has returned: nothing runs in it any more.
		if st.socks != nil {
			st.socks.close()
		}
		st.mem.release()
	}()
	mod, err := h.runtime.InstantiateModule(ctx, m.compiled, cfg)
	if mod != nil {
		_ = mod.Close(context.WithoutCancel(ctx))
	}
	return err
}

// exitOf turns runInstance's error into nil (success: returned, or exited 0),
// an *ExitError, or an error of the agent's own: ErrClosed, a context error
// when parent ended (the caller stopped the instance), a listener that could
// not be opened. limit is the time limit the instance ran under, if any: a
// deadline that is not parent's is that limit.
func (h *Host) exitOf(parent context.Context, err error, st *instState, ran, limit time.Duration, stderr *tailWriter) error {
	var exit *sys.ExitError
	hasExit := errors.As(err, &exit)
	var code uint32
	if hasExit {
		code = exit.ExitCode()
	}
	var opErr *net.OpError
	switch {
	case h.closed.Load():
		// Closing the runtime ends running instances with exit code 0, which
		// would otherwise pass for success.
		return ErrClosed
	case err != nil && parent.Err() != nil:
		return fmt.Errorf("wasmhost: instance stopped: %w", context.Cause(parent))
	case hasExit && code == sys.ExitCodeDeadlineExceeded:
		return &ExitError{Kind: ExitTimeout, Message: fmt.Sprintf("ran past its time limit of %s", limit), After: ran, Stderr: stderr.line()}
	case hasExit && code == sys.ExitCodeContextCanceled:
		return fmt.Errorf("wasmhost: instance stopped: %w", context.Canceled)
	case err != nil && st.mem.refused.Load() > 0:
		return &ExitError{Kind: ExitMemory, After: ran, Stderr: stderr.line(), Message: fmt.Sprintf(
			"it tried to grow its linear memory to %s, over the task's memory limit of %s",
			formatBytes(int64(st.mem.refused.Load())), formatBytes(int64(st.mem.limit)))}
	case err == nil, hasExit && code == 0:
		return nil
	case hasExit:
		return &ExitError{Kind: ExitCode, Code: code, After: ran, Stderr: stderr.line()}
	case errors.As(err, &opErr):
		return fmt.Errorf("wasmhost: %w", err) // opening the listener failed
	default:
		return &ExitError{Kind: ExitTrap, Message: trapMessage(err), After: ran, Stderr: stderr.line()}
	}
}

// trapMessage shortens wazero's trap error ("module[] function[_start]
// failed: wasm error: unreachable\nwasm stack trace:\n\t.$0()\n…") to its
// cause and innermost frame: "wasm error: unreachable (in .$0())".
func trapMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "failed: "); i >= 0 && strings.HasPrefix(msg, "module[") {
		msg = msg[i+len("failed: "):]
	}
	first, rest, _ := strings.Cut(msg, "\n")
	if _, trace, ok := strings.Cut(rest, "wasm stack trace:\n"); ok {
		frame, _, _ := strings.Cut(trace, "\n")
		if frame = strings.TrimSpace(frame); frame != "" {
			first += " (in " + frame + ")"
		}
	}
	return first
}

// tailWriter passes writes through to w and remembers the most telling line
// written, for the error of an instance that failed: the first line starting
// with "panic: " or "fatal error: " (how a Go module dies), else the last
// non-empty line.
type tailWriter struct {
	w io.Writer

	mu      sync.Mutex
	cur     []byte // the line being written, at most maxLine bytes
	last    string // the last complete non-empty line
	notable string // the first panic or fatal error line
}

const maxLine = 200

func newTailWriter(w io.Writer) *tailWriter {
	if w == nil {
		w = io.Discard
	}
	return &tailWriter{w: w}
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		chunk := rest
		if i >= 0 {
			chunk = rest[:i]
		}
		if room := maxLine - len(t.cur); room > 0 {
			t.cur = append(t.cur, chunk[:min(room, len(chunk))]...)
		}
		if i < 0 {
			break
		}
		t.endLine()
		rest = rest[i+1:]
	}
	t.mu.Unlock()
	return t.w.Write(p)
}

func (t *tailWriter) endLine() {
	l := strings.TrimSpace(string(t.cur))
	t.cur = t.cur[:0]
	if l == "" {
		return
	}
	t.last = l
	if t.notable == "" && (strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ")) {
		t.notable = l
	}
}

// line returns the most telling line, "" if nothing was written.
func (t *tailWriter) line() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.cur) > 0 {
		t.endLine()
	}
	if t.notable != "" {
		return t.notable
	}
	return t.last
}
