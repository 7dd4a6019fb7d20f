package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
	"github.com/strata-run/strata/wasmhost"
)

// The wasm driver: one attempt of a wasm task, in its mode.
//
//   - http: the agent listens on the task's first port and serves every
//     request with a fresh instance (wasmhost.HTTPHandler). The attempt lasts
//     until the runner stops, or the server fails.
//   - listener: one long-lived instance serves a TCP listener the host opens
//     on the task's first port (wasmhost.RunListener). Any exit of the
//     instance is a failure (a server is not meant to end); stopping the
//     runner stops it and frees the port.
//   - command: the module's _start runs once (wasmhost.RunCommand). Exit 0
//     completes the task: it is reported "complete" and not restarted; any
//     other end (exit code, trap, memory limit, max_runtime) is a failure
//     that goes through the restart policy, its message saying which.
//
// Every mode writes the module's stderr (and, for command and listener, its
// stdout) to size-rotated files under <DataDir>/allocs/<alloc ID>/logs/:
// <task>.stdout and <task>.stderr, 10 MiB each, with 9 older files kept.
// Limits come from the job: resources.memory caps each instance's linear
// memory, config.mount grants directories, max_request_time and
// max_concurrency bound http requests, max_runtime bounds a command. Only
// listener instances read the real clocks.

// Log file sizes of a task's stdout and stderr.
const (
	taskLogMaxBytes = wasmhost.DefaultLogMaxBytes
	taskLogKeep     = wasmhost.DefaultLogKeep
)

// runWasmTask runs one attempt of a wasm task. It returns nil when the
// runner was stopped (or a command completed and the runner then stopped),
// an error saying why otherwise.
func (r *allocRunner) runWasmTask(at attempt, t *spec.Task) error {
	mode := t.Config.Mode
	switch mode {
	case spec.ModeHTTP, spec.ModeListener, spec.ModeCommand:
	default:
		return fmt.Errorf("wasm mode %q is not supported by this agent (supported: %s, %s, %s)", mode, spec.ModeCommand, spec.ModeHTTP, spec.ModeListener)
	}
	ports := r.taskPorts(t)
	if mode != spec.ModeCommand && len(ports) == 0 {
		return fmt.Errorf("mode %s needs a port: declare network { port \"http\" {} } in the task's resources", mode)
	}
	b, err := r.a.fetchModule(at.ctx, t.Config.ModuleDigest)
	if err != nil {
		return fmt.Errorf("fetch module %s: %w", t.Config.Module, err)
	}
	mod, err := r.a.host.Compile(at.ctx, t.Config.ModuleDigest, b)
	if err != nil {
		return fmt.Errorf("compile module %s: %w", t.Config.Module, err)
	}
	lim := wasmhost.Limits{MaxMemory: int64(t.Resources.MemoryMB) << 20}
	for _, m := range t.Config.Mounts {
		lim.Mounts = append(lim.Mounts, wasmhost.Mount{Source: m.Source, Target: m.Target, Readonly: m.Readonly})
	}
	if err := mod.CheckMemory(lim.MaxMemory); err != nil {
		return fmt.Errorf("module %s: %w", t.Config.Module, err)
	}
	stdout, stderr, err := r.taskLogs(t)
	if err != nil {
		return err
	}
	defer stdout.Close()
	defer stderr.Close()

	// Runtime references in env and args (${STRATA_PORT_http}, …) are
	// resolved here, per allocation.
	t, err = r.resolveTask(t, ports)
	if err != nil {
		return err
	}
	switch mode {
	case spec.ModeHTTP:
		return r.runHTTP(at, t, mod, ports, lim, stderr)
	case spec.ModeListener:
		return r.runListener(at, t, mod, ports, lim, stdout, stderr)
	default:
		return r.runCommand(at, t, mod, ports, lim, stdout, stderr)
	}
}

// taskLogs opens the task's stdout and stderr log files.
func (r *allocRunner) taskLogs(t *spec.Task) (stdout, stderr *wasmhost.LogFile, err error) {
	dir := filepath.Join(r.a.cfg.DataDir, "allocs", filepath.Base(r.alloc.ID), "logs")
	name := filepath.Base(t.Name)
	if stdout, err = wasmhost.OpenLogFile(filepath.Join(dir, name+".stdout"), taskLogMaxBytes, taskLogKeep); err != nil {
		return nil, nil, err
	}
	if stderr, err = wasmhost.OpenLogFile(filepath.Join(dir, name+".stderr"), taskLogMaxBytes, taskLogKeep); err != nil {
		stdout.Close()
		return nil, nil, err
	}
	return stdout, stderr, nil
}

func (r *allocRunner) runHTTP(at attempt, t *spec.Task, mod *wasmhost.Module, ports []wire.Port, lim wasmhost.Limits, stderr *wasmhost.LogFile) error {
	handler, err := r.a.host.HTTPHandler(mod, wasmhost.HTTPConfig{
		Name: t.Name, Args: t.Config.Args, Env: r.taskEnv(t, ports), Stderr: stderr,
		MaxRequestTime: t.Config.MaxRequestTime.D(),
		MaxConcurrency: t.Config.MaxConcurrency,
		Limits:         lim,
	})
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(r.a.cfg.BindAddr, strconv.Itoa(ports[0].Value))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	r.log.Info("task started", "task", t.Name, "mode", t.Config.Mode, "addr", addr)
	r.started(t.Name, "Serving http on "+addr)

	checks := newTaskChecks(at, r, t, ports)
	checks.start()
	defer checks.stop()

	select {
	case <-at.ctx.Done():
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
		<-serveErr
		return nil
	case err := <-serveErr:
		return fmt.Errorf("http server on %s: %w", addr, err)
	}
}

func (r *allocRunner) runListener(at attempt, t *spec.Task, mod *wasmhost.Module, ports []wire.Port, lim wasmhost.Limits, stdout, stderr *wasmhost.LogFile) error {
	addr := net.JoinHostPort(r.a.cfg.BindAddr, strconv.Itoa(ports[0].Value))
	listening := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- r.a.host.RunListener(at.ctx, mod, wasmhost.ListenerConfig{
			Name: t.Name, Args: t.Config.Args, Env: r.taskEnv(t, ports),
			Stdout: stdout, Stderr: stderr,
			Addr:        addr,
			OnListening: func() { close(listening) },
			Limits:      lim,
		})
	}()
	var err error
	select {
	case <-listening:
		r.log.Info("task started", "task", t.Name, "mode", t.Config.Mode, "addr", addr)
		r.started(t.Name, "Listening on "+addr)
		checks := newTaskChecks(at, r, t, ports)
		checks.start()
		err = <-done
		checks.stop()
	case err = <-done:
	}
	if at.ctx.Err() != nil {
		return nil
	}
	if err == nil { // RunListener returns nil only when stopped
		err = errors.New("stopped")
	}
	return fmt.Errorf("listener on %s: %w", addr, err)
}

func (r *allocRunner) runCommand(at attempt, t *spec.Task, mod *wasmhost.Module, ports []wire.Port, lim wasmhost.Limits, stdout, stderr *wasmhost.LogFile) error {
	r.started(t.Name, "Task started by the agent")
	r.setTask(t.Name, "running", "", nil)
	r.log.Info("task started", "task", t.Name, "mode", t.Config.Mode)
	start := time.Now()
	err := r.a.host.RunCommand(at.ctx, mod, wasmhost.CommandConfig{
		Name: t.Name, Args: t.Config.Args, Env: r.taskEnv(t, ports),
		Stdout: stdout, Stderr: stderr,
		MaxRuntime: t.Config.MaxRuntime.D(),
		Limits:     lim,
	})
	if at.ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	r.completeTask(t.Name, time.Since(start))
	<-r.ctx.Done() // complete: nothing to restart; wait to be stopped
	return nil
}

// completeTask marks a task complete; publish reports the allocation
// complete once every task is.
func (r *allocRunner) completeTask(name string, ran time.Duration) {
	desc := fmt.Sprintf("exited 0 after %s", ran.Round(time.Millisecond))
	r.log.Info("task complete", "task", name, "desc", desc)
	r.record(name, "complete", desc, func(h *wire.TaskState, now time.Time) { taskCompleted(h, now, ran) })
}
