// Package wasmhost runs WebAssembly workloads for a Strata agent on wazero.
//
// It owns, per agent:
//
//   - one wazero runtime (compiler engine, WithCloseOnContextDone enabled so a
//     deadline or cancellation really stops a running instance), with the
//     wasi_snapshot_preview1 host module instantiated once;
//   - the compilation cache: in memory, one compile per module digest with
//     concurrent callers sharing it, and wazero's on-disk cache under
//     Config.CacheDir so an agent restart does not recompile cold;
//   - module validation (Validate): WASI preview 1 core modules only, exporting
//     _start, importing nothing but wasi_snapshot_preview1;
//   - the task modes. Today only the http mode (WAGI/CGI: a fresh instance per
//     request, the request in CGI environment variables and on stdin, the
//     response parsed from stdout) is here; command and listener modes come
//     later.
//
// It must not know about jobs, allocations, Raft or the agent protocol: callers
// hand it bytes with their digest and get back compiled modules and
// http.Handlers. It does not choose ports, restart anything or fetch modules.
//
// Not done yet, on purpose: per-task memory limits (wazero's limit is per
// runtime; this package does not pretend to enforce one), filesystem mounts and
// sockets (http-mode instances get neither).
package wasmhost
