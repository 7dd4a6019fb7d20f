package wasmhost

import (
	"context"
	"io"
	"time"
)

// CommandConfig configures one run of a command-mode task.
type CommandConfig struct {
	Name   string            // argv[0] and log attribute, e.g. the task name
	Args   []string          // argv after argv[0]
	Env    map[string]string // the environment, nothing else
	Stdout io.Writer         // nil = discard; e.g. the agent's log file
	Stderr io.Writer         // nil = discard; e.g. the agent's log file
	// MaxRuntime stops the run after this long (0 = no bound): ExitTimeout.
	MaxRuntime time.Duration

	// Limits: memory, mounts, clocks (off by default: see Limits).
	Limits
}

// RunCommand runs m's _start once, to its end, with empty stdin. It returns
// nil when the module returns or exits with code 0; an *ExitError for a
// non-zero exit, a trap, the memory limit or MaxRuntime (with the module's
// last stderr line, a Go panic's first, in it); a context error when ctx
// ended first (the caller stopped it); ErrClosed when the Host closed; or a
// configuration error (bad mount, initial memory over MaxMemory: ErrMemoryLimit).
func (h *Host) RunCommand(ctx context.Context, m *Module, cfg CommandConfig) error {
	if m == nil || m.host != h {
		panic("wasmhost: RunCommand: module was not compiled by this Host")
	}
	if h.closed.Load() {
		return ErrClosed
	}
	if err := m.CheckMemory(cfg.MaxMemory); err != nil {
		return err
	}
	log := h.log.With("task", cfg.Name, "digest", m.digest)
	stderr := newTailWriter(cfg.Stderr)
	base, err := baseConfig(cfg.Name, cfg.Args, cfg.Stdout, stderr, cfg.Limits)
	if err != nil {
		return err
	}
	st := &instState{mem: newLinearMemory(cfg.MaxMemory), log: log}
	for i, kv := 0, newStaticEnv(cfg.Env, log); i < len(kv); i += 2 {
		st.addEnv(kv[i], kv[i+1])
	}

	runCtx := ctx
	if cfg.MaxRuntime > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.MaxRuntime)
		defer cancel()
	}
	start := time.Now()
	err = h.runInstance(runCtx, m, base, st)
	err = h.exitOf(ctx, err, st, time.Since(start), cfg.MaxRuntime, stderr)
	log.Debug("command ended", "after", time.Since(start), "err", err, "peak_memory", st.mem.peak.Load())
	return err
}
