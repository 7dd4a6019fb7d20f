// Package coordinator is Strata's control plane server: a Raft cluster
// (hashicorp/raft) driving the replicated state machine of package
// coordinator/state, the evaluation broker, scheduler workers and plan
// applier, heartbeats and drains, the agent endpoint over QUIC, module
// storage, server-to-server RPC and the HTTP API.
//
// State. Raft's log and stable store are raft-boltdb (raft/raft.db); the
// state machine's state is a separate bbolt file (state.db) owned by
// package state, which applies every batch of Raft entries in one
// transaction that also records the last applied index, so a restart
// replays only newer entries and a replayed entry is a no-op. This
// package only adapts it to Raft (fsm.go: log entries in, results and
// effects out; snapshots and restore) and reads it. Every write goes
// through one proposal path (raft.go: apply encodes a state.Command and
// forwards it to the leader when this server does not lead; propose
// hands it to Raft). The proposer stamps IDs and times into the command
// so applying it is deterministic; a command the state refuses returns
// an error to its proposer and changes nothing.
//
// Scheduling. Registering or stopping a job commits an evaluation with
// it; the state's effects hand new evaluations to the leader's broker
// (evals.go). The leader's workers take evaluations one job at a time,
// call the pure scheduler (package sched) on a snapshot of the state, and
// hand the plan to the plan applier (plan.go), which re-checks every
// placement against the state at apply time plus the plans still in
// flight (state.CheckPlan, with sched's own feasibility check), stamps
// the IDs of what still fits, proposes it, and retries the rest on a
// fresh snapshot. Placements that fit nowhere leave the evaluation
// blocked until capacity changes.
//
// Agents. Agents dial the server's QUIC endpoint (package internal/wire
// for the protocol) and are pushed the full set of their allocations
// whenever it changes; they report status and service endpoints, which
// the state turns into the registry's catalog (state.Store implements
// registry.Catalog).
//
// The coordinator never runs workloads: it validates modules at push
// (wasmhost.Validate) but executes nothing. It must not write the state
// except through Raft.
package coordinator
