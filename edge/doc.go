// Package edge is the Strata agent: it holds one QUIC connection to a
// coordinator server, registers its node (fingerprinted CPU, memory,
// drivers), heartbeats, receives the full set of allocations the servers
// want on it, and runs them.
//
// The agent dials out, so it works behind NAT, and identifies servers by
// a pinned cluster CA (Config.CAPin), not by host name. Modules are
// fetched by digest on their own QUIC stream, verified against the
// sha256, and cached on disk; compiled code is cached by wasmhost. Each
// allocation has a runner that starts its tasks under the task's restart
// policy (attempts within interval, delay with up to 25% jitter, mode
// fail or delay) and runs its services' health checks; status and
// endpoints are reported on the control stream, and re-sent in full after
// a reconnect. Tasks keep running while the link is down.
//
// The agent makes no placement decisions. This version runs the wasm
// driver in http mode; the command and listener modes, the docker
// driver, local allocation state in bbolt, join tokens and mutual TLS
// grow here next.
package edge
