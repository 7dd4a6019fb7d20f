// Package edge is the Strata agent: it holds one QUIC connection to a
// coordinator server, registers its node (fingerprinted CPU, memory,
// drivers), heartbeats, receives the full set of allocations the servers
// want on it, and runs them.
//
// The agent dials out, so it works behind NAT, and identifies servers by
// a pinned cluster CA (Config.CAPin), not by host name. It joins once
// with a token (Config.JoinToken): it sends a certificate request made
// with its own key and keeps the client certificate it gets back
// (agent.crt, agent.key in DataDir); every later connection is mutual
// TLS, and the certificate names the node. Modules are fetched by digest on their own QUIC stream into a partial file that a
// broken download resumes from (on the next session, or after a
// restart), verified against the sha256 over the whole file before use,
// and cached on disk within Config.ModuleCacheMB: past it the least
// recently used modules that no current allocation references are
// removed. Compiled code is cached by wasmhost. Each
// allocation has a runner that starts its tasks under the task's restart
// policy (attempts within interval, delay with up to 25% jitter, mode
// fail or delay) and runs its services' health checks; status and
// endpoints are reported on the control stream, and re-sent in full after
// a reconnect. Tasks keep running while the link is down.
//
// The wasm driver (wasm_driver.go) runs a task in one of wasmhost's three
// modes: http (WAGI, an instance per request on the task's port),
// listener (a long-lived instance serving the port itself) and command
// (run to exit; exit 0 completes the task, anything else goes through
// the restart policy). stdout and stderr go to rotated files under
// <DataDir>/allocs/<alloc>/logs/.
//
// The docker driver (docker_driver.go, over internal/docker) runs a task
// as a container of a local image: one container per attempt, labelled
// with its allocation, task and node, ports published on BindAddr, memory
// and CPU from the task's resources, logs followed into the same files,
// the exit code into the restart policy; a stopped task's container is
// stopped with its kill_timeout and removed. docker is offered when a
// Docker Engine answers at start (Config.DockerHost, $DOCKER_HOST); the
// agent then removes the containers a previous run of it left.
//
// The agent keeps the last allocation set it was sent in its own bbolt
// file (agent.db) and runs it at start, before any server answers; it
// learns every server's address at registration and keeps them; it
// enforces disconnect.stop_on_client_after itself.
//
// Each task's state and recent events (Nomad's names: Received, Started,
// Terminated, Restarting, Not Restarting, Killed, Driver Failure) are
// recorded by pure functions (events.go), kept in agent.db so they survive
// a restart, and reported with the allocation's status. The server reads
// a task's log by opening a stream on the agent's connection (logs.go);
// the agent streams the log file, and with follow what is appended, until
// the server resets the stream.
//
// The agent makes no placement decisions. Not built yet: adopting a
// previous run's containers.
package edge
