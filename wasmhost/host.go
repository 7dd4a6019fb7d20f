package wasmhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Errors returned by this package. Validation failures wrap ErrInvalidModule,
// so a caller can tell "the user's module is wrong" from "the agent is broken".
var (
	ErrClosed         = errors.New("wasmhost: host closed")
	ErrDigestMismatch = errors.New("wasmhost: digest mismatch")
	ErrInvalidModule  = errors.New("wasmhost: invalid module")
)

// Config configures a Host. The zero value is usable: no disk cache, no logs.
type Config struct {
	CacheDir string       // wazero on-disk compilation cache dir; "" = no disk cache
	Logger   *slog.Logger // nil = discard

	// Interpreter runs modules on wazero's interpreter instead of its
	// compiler: compiling is quick (no machine code), running is one to two
	// orders of magnitude slower. For tests under the race detector, where
	// the compiler, instrumented, takes 20–60 s on a Go module; and for
	// platforms the compiler does not support (where wazero falls back to it
	// anyway).
	Interpreter bool
}

// Host owns one wazero runtime and the compiled modules of one agent. It is
// safe for concurrent use.
type Host struct {
	log     *slog.Logger
	runtime wazero.Runtime
	cache   wazero.CompilationCache // nil without CacheDir

	mu      sync.Mutex
	modules map[string]*compileCall // by digest

	compiles atomic.Int64 // CompileModule calls actually made (tests read it)
	closed   atomic.Bool

	// closing ends when Close starts: it stops every running instance,
	// including those waiting in a poll, which no close flag reaches.
	closing      context.Context
	closeRunning context.CancelFunc

	stopGrace    time.Duration // how long a stopped listener gets before forceClose; how long Close waits for instances
	listenerWASI api.Module    // what listener instances import as wasi_snapshot_preview1

	runMu   sync.Mutex
	running int           // instances running (enter/leave)
	drained chan struct{} // closed by leave when running drops to 0 during Close
}

// enter counts an instance in; false once the Host is closing.
func (h *Host) enter() bool {
	h.runMu.Lock()
	defer h.runMu.Unlock()
	if h.closed.Load() {
		return false
	}
	h.running++
	return true
}

// leave counts an instance out.
func (h *Host) leave() {
	h.runMu.Lock()
	defer h.runMu.Unlock()
	h.running--
	if h.running == 0 && h.drained != nil {
		close(h.drained)
		h.drained = nil
	}
}

// compileCall is one compile of one digest; done is closed when mod or err is
// set. Later and concurrent callers wait on done.
type compileCall struct {
	done chan struct{}
	mod  *Module
	err  error
}

// Module is a compiled module, shared read-only by every instance made from it.
// It lives until the Host is closed.
type Module struct {
	host      *Host
	digest    string
	size      int
	minMemory int64 // declared initial linear memory, bytes
	compiled  wazero.CompiledModule
}

// Digest returns the module's "sha256:<hex>" digest.
func (m *Module) Digest() string { return m.digest }

// Size returns the length in bytes of the module's binary.
func (m *Module) Size() int { return m.size }

// New creates a Host: a wazero runtime using the compiler engine where the
// platform supports it, with WithCloseOnContextDone(true) so instances stop when
// their context ends (this makes tight loops much slower: see
// BenchmarkTightLoop; correctness first), and wasi_snapshot_preview1
// instantiated once (wazero's, with our environ_get, environ_sizes_get and
// poll_oneoff: see instantiateWASI).
func New(ctx context.Context, cfg Config) (*Host, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "wasmhost")

	rc := wazero.NewRuntimeConfig()
	if cfg.Interpreter {
		rc = wazero.NewRuntimeConfigInterpreter()
	}
	rc = rc.WithCloseOnContextDone(true)
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasmhost: compilation cache %s: %w", cfg.CacheDir, err)
		}
		cache = c
		rc = rc.WithCompilationCache(cache)
	}
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	listenerWASI, err := instantiateWASI(ctx, r)
	if err != nil {
		_ = r.Close(ctx)
		if cache != nil {
			_ = cache.Close(ctx)
		}
		return nil, fmt.Errorf("wasmhost: instantiate wasi_snapshot_preview1: %w", err)
	}
	closing, closeRunning := context.WithCancel(context.Background())
	return &Host{
		log:          log,
		runtime:      r,
		cache:        cache,
		modules:      make(map[string]*compileCall),
		closing:      closing,
		closeRunning: closeRunning,
		stopGrace:    2 * time.Second,
		listenerWASI: listenerWASI,
	}, nil
}

// Close stops every running instance (requests in flight get 503, listeners
// and commands ErrClosed) and waits for them, up to a grace period, then
// closes the runtime, every compiled module and the compilation cache. Files
// already in CacheDir stay for the next Host.
func (h *Host) Close(ctx context.Context) error {
	h.runMu.Lock()
	if !h.closed.CompareAndSwap(false, true) {
		h.runMu.Unlock()
		return nil
	}
	var drained chan struct{}
	if h.running > 0 {
		drained = make(chan struct{})
		h.drained = drained
	}
	h.runMu.Unlock()

	// Stop the running instances and let them end by themselves: closing the
	// runtime under a running instance races with it inside wazero (it frees
	// the instance's state while a host call reads it). One that does not end
	// in time (blocked in a host call) is closed under anyway.
	h.closeRunning()
	if drained != nil {
		t := time.NewTimer(h.stopGrace)
		select {
		case <-drained:
		case <-t.C:
			h.log.Warn("closing the runtime with instances still running", "grace", h.stopGrace)
		case <-ctx.Done():
		}
		t.Stop()
	}
	err := h.runtime.Close(ctx)
	if h.cache != nil {
		err = errors.Join(err, h.cache.Close(ctx))
	}
	if err != nil {
		return fmt.Errorf("wasmhost: close: %w", err)
	}
	return nil
}

// Compile compiles b, whose digest must be digest ("sha256:<hex>"), once per
// digest: concurrent callers for the same digest wait on the same compile, and
// later calls return the cached *Module at once. A cold compile goes through
// wazero's on-disk cache when Config.CacheDir is set. b is checked like Validate
// (without its extra interpreter compile); a failed compile is not remembered,
// so a later call retries.
//
// The compile itself is not interrupted by ctx (wazero cannot), but a caller
// waiting on another caller's compile stops waiting when its ctx ends.
func (h *Host) Compile(ctx context.Context, digest string, b []byte) (*Module, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	if err := verifyDigest(digest, b); err != nil {
		return nil, err
	}

	h.mu.Lock()
	call, ok := h.modules[digest]
	if !ok {
		call = &compileCall{done: make(chan struct{})}
		h.modules[digest] = call
	}
	h.mu.Unlock()

	if ok {
		select {
		case <-call.done:
			return call.mod, call.err
		case <-ctx.Done():
			return nil, fmt.Errorf("wasmhost: compile %s: %w", digest, ctx.Err())
		}
	}

	// Whatever happens (an error, even a panic in wazero), release the waiters
	// and forget a failed compile so that a later call retries.
	defer func() {
		if call.mod == nil {
			if call.err == nil {
				call.err = fmt.Errorf("wasmhost: compile %s: panicked", digest)
			}
			h.mu.Lock()
			delete(h.modules, digest)
			h.mu.Unlock()
		}
		close(call.done)
	}()
	call.mod, call.err = h.compile(ctx, digest, b)
	return call.mod, call.err
}

func (h *Host) compile(ctx context.Context, digest string, b []byte) (*Module, error) {
	if err := checkHeader(b); err != nil {
		return nil, err
	}
	h.compiles.Add(1)
	cm, err := h.runtime.CompileModule(ctx, coalesceData(b))
	if err != nil {
		if h.closed.Load() {
			return nil, ErrClosed
		}
		// wazero's errors do not say whether the module or the machine is at
		// fault (a full disk under CacheDir fails the compile too). On this
		// rare path, ask the validator: an invalid module gets its reason.
		if verr := Validate(ctx, b); verr != nil {
			return nil, verr
		}
		return nil, fmt.Errorf("wasmhost: compile %s: %w", digest, err)
	}
	if err := checkShape(cm, b); err != nil {
		_ = cm.Close(ctx)
		return nil, err
	}
	minPages, err := memoryMin(b)
	if err != nil {
		_ = cm.Close(ctx)
		return nil, invalidf(err, "reading memory section: %v", err)
	}
	h.log.Debug("module compiled", "digest", digest, "bytes", len(b))
	return &Module{host: h, digest: digest, size: len(b), minMemory: int64(minPages) * pageSize, compiled: cm}, nil
}

// verifyDigest checks that digest is "sha256:<64 lowercase hex>" and names b.
func verifyDigest(digest string, b []byte) error {
	hexSum, ok := strings.CutPrefix(digest, "sha256:")
	want, err := hex.DecodeString(hexSum)
	if !ok || err != nil || len(want) != sha256.Size || hexSum != strings.ToLower(hexSum) {
		return fmt.Errorf("wasmhost: malformed digest %q: want sha256:<64 lowercase hex digits>", digest)
	}
	if got := sha256.Sum256(b); !bytes.Equal(got[:], want) {
		return fmt.Errorf("%w: %d bytes have sha256:%x, not %s", ErrDigestMismatch, len(b), got, digest)
	}
	return nil
}

// Digest returns the "sha256:<hex>" digest of b, the form Compile expects.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// lockedWriter serialises writes from concurrent instances to one io.Writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
