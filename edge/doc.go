// Package edge is the Strata agent: it holds one QUIC connection to a
// coordinator server, registers its node (fingerprinted CPU, memory,
// drivers, and the host volumes its operator declares), heartbeats,
// receives the full set of allocations the servers want on it, and runs
// them.
//
// The agent is a set of parts that reach each other only through the
// small functions and interfaces they are given when Agent wires them
// (agent.go); none holds a pointer back to the Agent:
//
//   - the link (link.go, identity.go) dials the servers in turn over QUIC,
//     identifies them by a pinned cluster CA (Config.CAPin), not by host
//     name, joins once with a token (Config.JoinToken: a certificate
//     request made with the agent's own key, answered with a client
//     certificate kept as agent.crt and agent.key in DataDir; every later
//     connection is mutual TLS and resumes its TLS session), backs off
//     between attempts and runs a session on each connection. It knows
//     nothing of allocations. It gives up only when retrying cannot help:
//     a join refused, a server outside the pinned CA at join, or every
//     server refusing the agent's protocol versions in a row.
//   - the control protocol (control.go) is that session: Register with
//     the protocol versions the agent speaks (the server picks one or
//     refuses naming both sides'), heartbeats at the interval the server
//     gives, the allocation sets it pushes, and the status outbox, sent in
//     full again after each reconnect.
//   - the allocation set (allocs.go) keeps one runner per allocation in
//     the state the servers ask for, confirms stops, and enforces
//     disconnect.stop_on_client_after itself while offline.
//   - a runner (runner.go, task.go, checks.go) starts each task through
//     its driver under the task's restart policy (attempts within
//     interval, delay with up to 25% jitter, mode fail or delay), resolves
//     its runtime references, runs its services' health checks (with
//     check_restart), restarts a running task in place when an operator
//     asks (at once, spending no attempt), records Nomad's task events
//     (events.go: pure functions; kept in agent.db so they survive a
//     restart) and reports the allocation's status and endpoints.
//   - drivers (driver.go) are chosen from a map by the task's Driver name:
//     wasm (wasm_driver.go: wasmhost's http, listener and command modes)
//     and docker (docker_driver.go, docker_task.go: the official Engine
//     client through internal/docker, at the API version negotiated with
//     the daemon; offered when a Docker Engine answers at start and accepts
//     that version: Config.DockerHost, $DOCKER_HOST). Each starts an
//     attempt and hands back its handle: wait, stop (stop signal, then
//     kill after kill_timeout), signals,
//     stats (what the driver can measure), and re-attaching after an agent
//     restart (docker re-attaches to a task's running container; a wasm
//     instance ended with the agent, so its task is started again).
//   - host volumes (volumes.go): the only host directories a task can
//     see. Config.HostVolumes is checked at start (absolute paths to
//     existing directories) and registered; a task's volume mounts are
//     resolved to them when it starts (read-only when the job or the
//     declaration says so; one no longer declared fails the task) and
//     handed to the driver: wazero directory mounts, docker bind mounts.
//   - modules (download.go, modules.go) are fetched by digest on their own
//     QUIC stream into a partial file that a broken download resumes from,
//     verified against the sha256 of the whole file, and cached within
//     Config.ModuleCacheMB (least recently used first, never one a current
//     allocation references). Compiled code is cached by wasmhost.
//   - server streams (logs.go): the server opens a stream per log read,
//     signal, stats or restart request; the agent answers each on its
//     stream.
//   - task logs (logfile.go): every driver's stdout and stderr go to the
//     agent's rotated files, <DataDir>/allocs/<alloc>/logs/<task>.{stdout,
//     stderr}.
//   - local state (state.go): agent.db holds the last allocation set, the
//     task states, and the servers learned at registration. After a
//     restart the stored set runs only if no server sends its set within
//     Config.RestoreWait (restore.go: a two-step state machine); a
//     server's set first replaces it, so nothing the servers stopped or
//     replaced meanwhile starts, and only its containers are kept.
//     A damaged agent.db is moved aside (agent.db.damaged-<time>, logged
//     by name) and the agent starts empty: its server sends its
//     allocations again.
//   - the catalog replica and DNS (replica.go, replica_stream.go,
//     catalog_state.go, dns.go), only with Config.DNSAddr: a copy of the
//     servers' service catalog received on the catalog stream (a
//     snapshot, then deltas; after a reconnect, resumed from the replica's
//     index), kept in agent.db as a snapshot plus the deltas since, and
//     served by registry's DNS server, so names resolve while the link is
//     down and, after a restart, from disk before any server answers.
//     While no stream is up, the agent's own allocations' instances
//     follow what its runners report (an overlay dropped when a stream is
//     up again). It never changes the servers' catalog.
//
// Deployments (deployhealth.go, runner.go): an allocation whose deployment
// asks (wire.Alloc.Health) has its deployment health decided here, as
// Nomad's agent does (healthy after min_healthy_time of every task
// running and every check passing without a break; unhealthy when a task
// fails or healthy_deadline passes first) and reported once, with the time
// it was observed. An unpromoted canary's endpoints carry its services'
// canary tags until the servers clear its flag. A stopping allocation
// deregisters its services first, waits its tasks' longest shutdown_delay,
// then stops them (an http task draining its requests within kill_timeout);
// the stop is confirmed to the servers only once its tasks ended.
//
// Metrics (metrics.go): the agent's Prometheus registry (its own, not the
// global one), served by MetricsHandler (strata agent -http-addr): events
// counted where they happen (restarts by the runner, http tasks' requests
// through wasmhost's Observe hook with label children resolved once per
// task, module cache hits and misses), states read at scrape time (tasks
// by state, the cache's bytes, the link's sessions).
//
// Lifecycle (runner.go): an allocation's prestart sidecars start first, its
// prestart tasks run to completion (exit 0; a failure fails the
// allocation), then its main tasks start, and its poststart tasks once
// every main task runs (Nomad's order; the servers refuse poststop).
//
// Tasks keep running while the link is down. The agent makes no placement
// decisions.
package edge
