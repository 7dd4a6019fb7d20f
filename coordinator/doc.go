// Package coordinator is Strata's control plane server: a Raft cluster
// (hashicorp/raft) driving the replicated state machine of package
// coordinator/state, the evaluation broker, scheduler workers and plan
// applier, heartbeats and drains, the agent endpoint over QUIC, module
// storage, server-to-server RPC and the HTTP API.
//
// # Parts
//
// A Server is parts wired together (Server.wire); a part holds the parts
// or funcs it uses, never the Server, and the Server owns their life
// cycle and runs the leader-only ones while it leads (Server.lead). An
// arrow is "uses":
//
//	httpAPI ──> registrar, deployOps, tokenIssuer, drainer, logRouter, allocOps, failureDetector, cluster, raftNode,
//	            aclResolver, aclAdmin ──> apply, leaderProxy ──> raftNode (the leader's address)
//	deployOps ──> registrar, apply (plan, revert, promote, fail)
//	deploymentWatcher ─(leader)─> deploy.Step (pure), apply
//	agentEndpoint ──> apply, failureDetector.heartbeat, tokenIssuer.join, cluster.agentServers, blobStore, blobCopier
//	logRouter ──> agentEndpoint (agentLogs), rpcClient          blobCopier ──> blobStore, rpcClient
//	allocOps ──> apply (stop), agentEndpoint (agentCalls), rpcClient    blobGC ──> state.Store, blobStore
//	fsm ──> blobGC.kick (a batch deleted module versions or collected garbage, a restore)
//	fsm ──> catalogFeed ──> registry.Holder (Server.Catalog) <── DNS (cmd), consul API (httpAPI)
//	fsm ──> eventBuffer (each batch's events) <── eventStream (GET /v1/event/stream, one goroutine per subscriber)
//	registrar, tokenIssuer, drainer ──> apply                   cluster ──> raftNode, rpcClient
//	failureDetector ─(leader)─> heartbeats (pure), apply, rpcClient (a follower forwards beats)
//	scheduler ─(leader)─> evalQueue, planApplier ──> raftNode.propose; apply (evaluations)
//	raftNode ──> fsm ──> state.Store; fsm ──> scheduler, deploymentWatcher (leaderHooks); raftNode ──> rpcClient (forwarding)
//	rpcServer ──> the methods each part registers (info, join, remove-peer, apply, heartbeat, logs, agent-call, blob)
//
// "apply" is raftNode.apply, the one proposal path, handed to parts as a
// func value (applyFunc). Every part reads the state (state.Store)
// directly. The leader-only parts (scheduler, failureDetector's Run,
// drainer's Run, the deployment watcher) start after a barrier and stop
// when leadership ends.
//
// State. Raft's log and stable store are raft-boltdb (raft/raft.db); the
// state machine's state is a separate bbolt file (state.db) owned by
// package state, which applies every batch of Raft entries in one
// transaction that also records the last applied index, so a restart
// replays only newer entries and a replayed entry is a no-op. At start
// (statefile.go: openState) the file is checked against the Raft log and
// snapshots: a damaged one, or one ahead of the log, is moved aside and
// rebuilt from the newest snapshot and the log; one behind the snapshot
// is restored from it first. This package only adapts it to Raft (fsm.go: log entries in, results and
// effects out; snapshots and restore) and reads it. Every write goes
// through one proposal path (raft.go: apply encodes a state.Command and
// forwards it to the leader when this server does not lead; propose
// hands it to Raft). The proposer stamps IDs and times into the command
// so applying it is deterministic; a command the state refuses returns
// an error to its proposer and changes nothing.
//
// Scheduling. Registering or stopping a job commits an evaluation with
// it; the state's effects hand new evaluations to the leader's broker
// (broker.go). The other evaluations are the leader's decisions: the
// failure detector commits one per job of a node that went down, and the
// scheduling side one per job whose allocation failed, finished, was
// lost or came back from a disconnect (evalTrigger; the Raft adapter
// tells it how each allocation an AllocUpdate named moved over a batch).
// The leader's workers take evaluations one job at a time, call the pure
// scheduler (package sched) on a snapshot of the state, and hand the
// plan to the plan applier (plan.go), which re-checks every placement
// against the state at apply time plus the plans still in flight
// (state.CheckPlan, with sched's own feasibility check), stamps the IDs
// of what still fits, proposes it, and retries the rest on a fresh
// snapshot. Placements that fit nowhere leave the evaluation blocked
// until capacity changes. A failed allocation whose reschedule delay has
// not passed gets a follow-up evaluation, committed with the plan,
// pending with a WaitUntil: the broker holds it in a heap and one
// goroutine of the leader's scheduler, sleeping on one timer, queues it
// when due (broker_delay.go); a new leader loads it from the state. The
// job list's status is Nomad's (jobstatus.go).
//
// Deployments. A job version that changes what a group runs carries its
// deployment in its registration's entry (package state). The scheduler
// is handed the deployment with every evaluation of the job (which
// groups are promoted, which must wait for their stagger: the clock is
// read here, not in sched), and replaces old allocations create before
// destroy. The leader's deployment watcher (deployments.go) steps each
// deployment a batch changed, and on its timers, with the pure rules of
// package deploy, and commits what they decide: a promotion, the end of
// the deployment (a failure with auto_revert carries the registration of
// the latest stable version in the same entry), an evaluation when more
// instances became healthy. deployOps are what people start: plan (the
// diff and the scheduler's dry run, committing nothing), revert, promote,
// fail.
//
// Periodic and parameterized jobs are templates the scheduler never
// places (it treats them as stopped). The leader's periodic launcher
// (periodic.go), one goroutine on one timer, proposes a launch of each
// due tick, decided from the parent's last tick in the state; the launch
// command is keyed by job and tick, so it launches once whoever proposes
// it. Dispatch and periodic force are requests (http_periodic.go).
//
// Agents. Agents dial the server's QUIC endpoint (package internal/wire
// for the protocol) and are pushed the full set of their allocations
// whenever it changes; they report status and service endpoints, which
// the endpoint translates into one command each, and the state turns
// into the registry's catalog. The endpoint makes no scheduling decision.
//
// The service catalog. Each batch's change to the endpoints comes out of
// the state as one registry.Delta stamped with the batch's Raft index
// (state.Effects.Catalog); catalogFeed (catalog.go) applies it to the
// server's registry.Holder on the FSM goroutine, on every server, and
// rebuilds the Holder whole from the state (state.Store.CatalogSnapshot)
// at start and after a snapshot restore. Server.Catalog is that Holder:
// the DNS server, the Consul-compatible API (http_consul.go: package
// registry/consul at Consul's paths, behind routeNeeds like every route)
// and agents' replicas read it; nothing on their path reads bbolt.
// Strata's own service routes (/v1/services, /v1/service/{name}) still
// read the state's services bucket.
//
// ACLs and the HTTP API. Every route is registered through routeMux with
// its entry of routeNeeds (http_acl.go), the one table of what each needs
// (package coordinator/acl: a namespace capability, node / agent /
// operator read or write, management); a route without an entry panics
// at start. aclResolver turns a request's token (X-Strata-Token,
// Authorization: Bearer, X-Consul-Token) into an *acl.ACL from the
// state's tokens and policies (acls.go); handlers that filter what they
// answer read it with aclFrom. With ACLs on, a write reaching a follower
// is forwarded to the leader as the HTTP request it is, token included
// (leaderProxy, over the Raft port's muxHTTP protocol, served by
// Server.forwarded), so the leader checks it against its own state;
// ?consistent reads take the same path. A default read is served by the
// server asked once it has applied the leader's read index (readindex.go:
// the "read-index" RPC, answered by the leader after its start barrier
// and a Raft barrier); ?stale reads skip it. A write refused before it
// was proposed is answered 503 with X-Strata-Not-Applied, so a client
// may send it again. HTTPTLSConfig issues the API's
// HTTPS certificate from the cluster CA.
//
// Operations. allocOps are the operator's actions on one allocation
// (allocops.go): a stop is a plan entry with the evaluation that replaces
// it; signal, restart and stats are requests on a new stream of the
// agent's connection, forwarded over server RPC "agent-call" to the
// server it is connected to. The registrar scales a job (a new version
// with one count changed, modify index enforced), purges one and deletes
// module versions; blobGC deletes from this server's disk the blobs no
// module version names (blobs.go), woken by the FSM; cluster.members
// asks every Raft peer whether it answers. Garbage collection is one
// state command (state.SystemGC). http_ops.go has their routes.
//
// Metrics (metrics.go). serverMetrics is the server's Prometheus registry
// (its own, never the global default), served at GET /v1/metrics
// ?format=prometheus (open, as Nomad's). The parts that see an event count
// it through the pointer they hold (raftNode commits, the fsm's batches
// and, through state.Store.OnApply, each command, the broker's waits, the
// plan applier's placements and rejections, the failure detector's beats
// and missed deadlines, routeMux's requests by route pattern, the DNS
// server's answers through registry.DNSObserver); stateCollector reads
// states at scrape time from memory (Raft's state, the broker's queue,
// allocations by status as the state counts them, nodes, deployments).
//
// The coordinator never runs workloads: it validates modules at push
// (wasmhost.Validate) but executes nothing. It must not write the state
// except through Raft.
package coordinator
