package wasmhost

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/tetratelabs/wazero/experimental/sock"
)

// ListenerConfig configures a listener-mode task: one long-lived instance
// serving a TCP listener that the host opens for it.
type ListenerConfig struct {
	Name   string            // argv[0] and log attribute, e.g. the task name
	Args   []string          // argv after argv[0]
	Env    map[string]string // the environment, plus STRATA_LISTEN_FD
	Stdout io.Writer         // nil = discard; e.g. the agent's log file
	Stderr io.Writer         // nil = discard; e.g. the agent's log file

	// Addr is the "ip:port" to listen on: the port the agent assigned.
	Addr string
	// OnListening, if set, is called once the listener is open, before the
	// module runs (so a client connecting then is queued, not refused).
	OnListening func()

	// Limits: memory and mounts. Listener instances always have real
	// clocks (RealClock is ignored): a server needs its timeouts.
	Limits
}

// RunListener runs one long-lived instance of m with a TCP listener on
// cfg.Addr pre-opened as a file descriptor (wazero's experimental/sock). The
// listener is fd 3 when there are no mounts, 3+len(Mounts) otherwise (mounts
// come first); STRATA_LISTEN_FD says which. A Go module serves it with:
//
//	syscall.SetNonblock(fd, true)
//	ln, err := net.FileListener(os.NewFile(uintptr(fd), "listener"))
//
// Accepted connections are the module's own sockets. Clocks are real and
// waits on sockets are real (see pollOneoff), so an idle server uses no CPU.
//
// RunListener returns when the instance ends: nil if ctx ended (the instance
// was stopped; by then the listener and every connection are closed and the
// port is free for the next instance), an *ExitError if the module exited (any
// exit, 0 included: a server is not meant to end), trapped or outgrew
// MaxMemory, ErrClosed if the Host closed, or an error opening the listener
// (e.g. the port is taken).
//
// Stopping works through ctx: the instance is stopped at its next host call,
// loop or function entry. A module blocked in a blocking socket call (one
// that did not set its sockets non-blocking) stops only when that call
// returns.
func (h *Host) RunListener(ctx context.Context, m *Module, cfg ListenerConfig) error {
	if m == nil || m.host != h {
		panic("wasmhost: RunListener: module was not compiled by this Host")
	}
	if h.closed.Load() {
		return ErrClosed
	}
	if err := m.CheckMemory(cfg.MaxMemory); err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("wasmhost: listener address %q: %w", cfg.Addr, err)
	}
	var ok bool
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("wasmhost: listener address %q: bad port", cfg.Addr)
	}
	log := h.log.With("task", cfg.Name, "digest", m.digest, "addr", cfg.Addr)
	stderr := newTailWriter(cfg.Stderr)
	lim := cfg.Limits
	lim.RealClock = true
	base, err := baseConfig(cfg.Name, cfg.Args, cfg.Stdout, stderr, lim)
	if err != nil {
		return err
	}
	st := &instState{mem: newLinearMemory(cfg.MaxMemory), socks: newSockets(int32(3 + len(cfg.Mounts))), log: log}
	env := make(map[string]string, len(cfg.Env)+1)
	for k, v := range cfg.Env {
		env[k] = v
	}
	env["STRATA_LISTEN_FD"] = strconv.Itoa(3 + len(cfg.Mounts))
	for i, kv := 0, newStaticEnv(env, log); i < len(kv); i += 2 {
		st.addEnv(kv[i], kv[i+1])
	}
	// wazero opens the listener while it builds the instance, before its
	// memory: so the first memory allocation means the port is open.
	listening := false
	st.mem.onFirst = func() {
		listening = true
		log.Info("listening")
		if cfg.OnListening != nil {
			cfg.OnListening()
		}
	}

	sctx := sock.WithConfig(ctx, sock.NewConfig().WithTCPListener(host, port))
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- h.runInstance(sctx, m, base, st) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		if err, ok = h.awaitStop(st, done, log); !ok {
			return fmt.Errorf("wasmhost: listener instance on %s did not stop: it is blocked in a host call; it ends when the host closes", cfg.Addr)
		}
	}
	if err != nil && !listening && ctx.Err() == nil && !h.closed.Load() {
		return fmt.Errorf("wasmhost: listen on %s: %w", cfg.Addr, err)
	}
	err = h.exitOf(ctx, err, st, time.Since(start), 0, stderr)
	switch {
	case err == nil:
		if ctx.Err() != nil {
			return nil // stopped as it was exiting
		}
		return &ExitError{Kind: ExitCode, Code: 0, After: time.Since(start), Stderr: stderr.line()}
	case ctx.Err() != nil:
		log.Info("stopped", "after", time.Since(start), "peak_memory", st.mem.peak.Load())
		return nil
	}
	return err
}

// awaitStop waits for a stopped instance (its context has ended) to return.
// One blocked in a blocking socket call does not notice the context: after
// stopGrace its files are closed under it (forceClose), which ends the call.
// If even that fails, awaitStop gives up after another stopGrace: the
// instance's goroutine then stays until the call returns.
func (h *Host) awaitStop(st *instState, done <-chan error, log *slog.Logger) (error, bool) {
	t := time.NewTimer(h.stopGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err, true
	case <-t.C:
	}
	forced := st.forceClose()
	log.Warn("instance did not stop within the grace period: closing its sockets under it", "grace", h.stopGrace, "forced", forced)
	t.Reset(h.stopGrace)
	select {
	case err := <-done:
		return err, true
	case <-t.C:
		log.Error("instance did not stop", "forced", forced)
		return nil, false
	}
}
