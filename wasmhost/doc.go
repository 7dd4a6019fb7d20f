// Package wasmhost runs WebAssembly workloads for a Strata agent on wazero.
//
// It owns, per agent:
//
//   - one wazero runtime (compiler engine, or the interpreter on request, with
//     WithCloseOnContextDone so a deadline or a stop really ends a running
//     instance) and wasi_snapshot_preview1 instantiated once: wazero's, with
//     our own environ_get/environ_sizes_get (the environment as one byte slice
//     per instance, not a config clone per variable) and poll_oneoff (real
//     waits on sockets), plus, for listener instances only, sock_accept,
//     fd_close and fd_renumber that close connections for real (see
//     sockets.go for the wazero gaps this covers);
//   - the compilation cache: in memory, one compile per module digest with
//     concurrent callers sharing it, and wazero's on-disk cache under
//     Config.CacheDir so an agent restart does not recompile cold;
//   - module validation (Validate): WASI preview 1 core modules only, exporting
//     _start, importing nothing but wasi_snapshot_preview1;
//   - the three task modes: http (HTTPHandler: WAGI/CGI, a fresh instance per
//     request, max concurrency with a bounded wait), command (RunCommand:
//     _start once, to its exit code) and listener (RunListener: one long-lived
//     instance serving a TCP listener the host opens for it);
//   - the limits: linear memory per instance (Limits.MaxMemory, enforced by
//     our own memory allocator: an initial memory over it is refused, a grow
//     past it stops the instance with ExitMemory), wall-clock limits per
//     request and per command run, no filesystem but Limits.Mounts, no real
//     clock but in listener mode or with Limits.RealClock, no network but the
//     listener's socket;
//   - stdio capture: module stdout/stderr to any io.Writer (the agent hands
//     it its rotated task log files; they are the agent's, not this
//     package's).
//
// How an instance ends is an *ExitError (exit code, trap with its message,
// memory limit, time limit, with the module's telling stderr line), which
// the agent's restart policy reads.
//
// It keeps no metrics: HTTPConfig.Observe tells the caller each request's
// status and duration (the agent counts them, without a metrics library
// here or an allocation per request).
//
// It must not know about jobs, allocations, Raft or the agent protocol: callers
// hand it bytes with their digest and get back compiled modules, handlers and
// run functions. It does not choose ports, restart anything or fetch modules.
package wasmhost
