package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/wasmhost"
)

// The wasm driver: one attempt of a wasm task, in its mode.
//
//   - http: the agent listens on the task's first port and serves every
//     request with a fresh instance (wasmhost.HTTPHandler). The attempt lasts
//     until it is stopped (the server drains its requests for up to
//     kill_timeout), or the server fails.
//   - listener: one long-lived instance serves a TCP listener the host opens
//     on the task's first port (wasmhost.RunListener). Any exit of the
//     instance is a failure (a server is not meant to end); stopping it
//     frees the port.
//   - command: the module's _start runs once (wasmhost.RunCommand). Exit 0
//     completes the task; any other end (exit code, trap, memory limit,
//     max_runtime) is a failure that goes through the restart policy, its
//     message saying which.
//
// Signals: the stop signals (SIGTERM, SIGINT, SIGQUIT, SIGKILL) end the
// instance (an http task's server), and the attempt ends as a failure that
// names the signal; a module has no signal handlers, so any other signal
// is refused with an error saying so. Stats: the instances running and, in
// http mode, the requests served; wasmhost does not expose an instance's
// memory or CPU time, so they are not measured. Recovery: an instance runs
// inside the agent's process and ends with it, so there is never one to
// re-attach to after a restart; the runner starts the task again.
//
// The module's stderr (and, for command and listener, its stdout) go to
// the task's log files. Limits come from the job: resources.memory caps
// each instance's linear memory, volume mounts grant the host volumes'
// directories (read-only ones through wazero's read-only mount),
// max_request_time and max_concurrency bound http requests, max_runtime
// bounds a command. Only listener instances read the real clocks.
type wasmDriver struct {
	host     *wasmhost.Host
	fetch    func(ctx context.Context, digest string) ([]byte, error) // the module's bytes by digest
	bindAddr string
	log      *slog.Logger
	metrics  *agentMetrics // http tasks' requests
}

func (d *wasmDriver) recover(context.Context, *taskSpec) (taskHandle, error) {
	return nil, fmt.Errorf("%w: a wasm instance runs inside the agent and ended with its previous run", errNotRecovered)
}

func (d *wasmDriver) start(ctx context.Context, t *taskSpec) (taskHandle, error) {
	task := &t.Task
	mode := task.Config.Mode
	switch mode {
	case wire.ModeHTTP, wire.ModeListener, wire.ModeCommand:
	default:
		return nil, fmt.Errorf("wasm mode %q is not supported by this agent (supported: %s, %s, %s)", mode, wire.ModeCommand, wire.ModeHTTP, wire.ModeListener)
	}
	if mode != wire.ModeCommand && len(t.Ports) == 0 {
		return nil, fmt.Errorf("mode %s needs a port: declare network { port \"http\" {} } in the task's resources", mode)
	}
	b, err := d.fetch(ctx, task.Config.ModuleDigest)
	if err != nil {
		return nil, fmt.Errorf("fetch module %s: %w", task.Config.Module, err)
	}
	mod, err := d.host.Compile(ctx, task.Config.ModuleDigest, b)
	if err != nil {
		return nil, fmt.Errorf("compile module %s: %w", task.Config.Module, err)
	}
	lim := wasmhost.Limits{MaxMemory: int64(task.Resources.MemoryMB) << 20}
	for _, m := range t.Mounts {
		lim.Mounts = append(lim.Mounts, wasmhost.Mount{Source: m.Source, Target: m.Destination, Readonly: m.ReadOnly})
	}
	if err := mod.CheckMemory(lim.MaxMemory); err != nil {
		return nil, fmt.Errorf("module %s: %w", task.Config.Module, err)
	}
	switch mode {
	case wire.ModeHTTP:
		return d.startHTTP(t, mod, lim)
	case wire.ModeListener:
		return d.startListener(ctx, t, mod, lim)
	default:
		return d.startCommand(t, mod, lim), nil
	}
}

func (d *wasmDriver) addr(t *taskSpec) string {
	return net.JoinHostPort(d.bindAddr, strconv.Itoa(t.Ports[0].Value))
}

// refuseSignal is the error for a signal a wasm instance cannot take.
func refuseWasmSignal(sig string) error {
	return fmt.Errorf("%w: a wasm task takes only the stop signals (%s), which end its instance; %s has no meaning to a WebAssembly module",
		errSignalRefused, strings.Join(stopSignals, ", "), sig)
}

// httpTask is an http-mode attempt: the agent's server on the task's port.
type httpTask struct {
	addr      string
	srv       *http.Server
	done      chan struct{} // closed when the server stopped serving
	err       error         // why, once done
	stoppedBy atomic.Value  // the stop signal that ended it (string)
	requests  atomic.Int64
	inflight  atomic.Int64
}

func (d *wasmDriver) startHTTP(t *taskSpec, mod *wasmhost.Module, lim wasmhost.Limits) (taskHandle, error) {
	task := &t.Task
	handler, err := d.host.HTTPHandler(mod, wasmhost.HTTPConfig{
		Name: task.Name, Args: task.Config.Args, Env: t.Env, Stderr: t.Stderr,
		MaxRequestTime: task.Config.MaxRequestTime,
		MaxConcurrency: task.Config.MaxConcurrency,
		Limits:         lim,
		Observe:        d.metrics.wasmObserver(t.JobID, t.Group, task.Name),
	})
	if err != nil {
		return nil, err
	}
	h := &httpTask{addr: d.addr(t), done: make(chan struct{})}
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", h.addr, err)
	}
	h.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		h.inflight.Add(1)
		defer h.inflight.Add(-1)
		handler.ServeHTTP(w, r)
	})}
	go func() {
		defer close(h.done)
		h.err = h.srv.Serve(ln)
	}()
	d.log.Info("task started", "task", task.Name, "mode", task.Config.Mode, "addr", h.addr)
	return h, nil
}

func (h *httpTask) describe() string { return "Serving http on " + h.addr }

func (h *httpTask) wait(ctx context.Context) error {
	select {
	case <-h.done:
		if sig, _ := h.stoppedBy.Load().(string); sig != "" {
			return fmt.Errorf("http server on %s: stopped by %s", h.addr, sig)
		}
		return fmt.Errorf("http server on %s: %w", h.addr, h.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop lets requests in flight finish for up to killTimeout, then closes
// their connections.
func (h *httpTask) stop(killTimeout time.Duration) error {
	if killTimeout <= 0 {
		killTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		h.srv.Close()
	}
	<-h.done
	return nil
}

func (h *httpTask) signal(ctx context.Context, sig string) error {
	if !slices.Contains(stopSignals, sig) {
		return refuseWasmSignal(sig)
	}
	select {
	case <-h.done:
		return fmt.Errorf("%w: the task's server on %s has stopped already", errSignalRefused, h.addr)
	default:
	}
	h.stoppedBy.CompareAndSwap(nil, sig)
	if sig == "SIGKILL" {
		return h.srv.Close()
	}
	if err := h.srv.Shutdown(ctx); err != nil {
		return h.srv.Close()
	}
	return nil
}

func (h *httpTask) stats(context.Context) (wire.TaskStats, error) {
	return wire.TaskStats{Measured: []string{wire.MeasuredInstances, wire.MeasuredRequests},
		Instances: int(h.inflight.Load()), Requests: h.requests.Load()}, nil
}

// instanceTask is a listener or command attempt: one instance, run by a
// goroutine it owns until the instance ends.
type instanceTask struct {
	what    string // "listener on <addr>" or "command"
	started string // the Started event's message
	cancel  context.CancelFunc
	done    chan struct{} // closed when the instance returned
	err     error         // its result, once done
	command bool          // exit 0 completes it (a listener is not meant to end)

	mu  sync.Mutex
	sig string // the stop signal that ended it
}

func newInstanceTask(what, started string, command bool, run func(ctx context.Context) error) *instanceTask {
	ctx, cancel := context.WithCancel(context.Background())
	it := &instanceTask{what: what, started: started, cancel: cancel, done: make(chan struct{}), command: command}
	go func() {
		defer close(it.done)
		it.err = run(ctx)
	}()
	return it
}

func (d *wasmDriver) startListener(ctx context.Context, t *taskSpec, mod *wasmhost.Module, lim wasmhost.Limits) (taskHandle, error) {
	task := &t.Task
	addr := d.addr(t)
	listening := make(chan struct{})
	it := newInstanceTask("listener on "+addr, "Listening on "+addr, false, func(ictx context.Context) error {
		return d.host.RunListener(ictx, mod, wasmhost.ListenerConfig{
			Name: task.Name, Args: task.Config.Args, Env: t.Env,
			Stdout: t.Stdout, Stderr: t.Stderr,
			Addr:        addr,
			OnListening: func() { close(listening) },
			Limits:      lim,
		})
	})
	select {
	case <-listening:
		d.log.Info("task started", "task", task.Name, "mode", task.Config.Mode, "addr", addr)
		return it, nil
	case <-it.done:
		return nil, it.wait(context.Background())
	case <-ctx.Done():
		it.stop(0)
		return nil, ctx.Err()
	}
}

func (d *wasmDriver) startCommand(t *taskSpec, mod *wasmhost.Module, lim wasmhost.Limits) taskHandle {
	task := &t.Task
	d.log.Info("task started", "task", task.Name, "mode", task.Config.Mode)
	return newInstanceTask("command", "Task started by the agent", true, func(ictx context.Context) error {
		return d.host.RunCommand(ictx, mod, wasmhost.CommandConfig{
			Name: task.Name, Args: task.Config.Args, Env: t.Env,
			Stdout: t.Stdout, Stderr: t.Stderr,
			MaxRuntime: task.Config.MaxRuntime,
			Limits:     lim,
		})
	})
}

func (it *instanceTask) describe() string { return it.started }

func (it *instanceTask) wait(ctx context.Context) error {
	select {
	case <-it.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	it.mu.Lock()
	sig := it.sig
	it.mu.Unlock()
	switch {
	case sig != "":
		return fmt.Errorf("%s: stopped by %s", it.what, sig)
	case it.err == nil && it.command:
		return nil
	case it.err == nil: // RunListener returns nil only when stopped
		return fmt.Errorf("%s: %w", it.what, errors.New("stopped"))
	}
	return fmt.Errorf("%s: %w", it.what, it.err)
}

// stop ends the instance at its next host call, loop or function entry
// (wasmhost closes a listener's sockets under a module that does not get
// there); kill_timeout does not apply: a module has no signal handlers.
func (it *instanceTask) stop(time.Duration) error {
	it.cancel()
	<-it.done
	return nil
}

func (it *instanceTask) signal(_ context.Context, sig string) error {
	if !slices.Contains(stopSignals, sig) {
		return refuseWasmSignal(sig)
	}
	select {
	case <-it.done:
		return fmt.Errorf("%w: the task's %s has ended already", errSignalRefused, it.what)
	default:
	}
	it.mu.Lock()
	if it.sig == "" {
		it.sig = sig
	}
	it.mu.Unlock()
	it.cancel()
	return nil
}

func (it *instanceTask) stats(context.Context) (wire.TaskStats, error) {
	st := wire.TaskStats{Measured: []string{wire.MeasuredInstances}}
	select {
	case <-it.done:
	default:
		st.Instances = 1
	}
	return st, nil
}
