// Package coordinator is Strata's control plane: a Raft cluster
// (hashicorp/raft) whose finite-state machine keeps the cluster state in
// bbolt, the scheduler worker and plan applier, the agent endpoint over
// QUIC, module storage, and the HTTP API.
//
// State. Raft's log and stable store are raft-boltdb (raft/raft.db); the
// FSM's state is a separate bbolt file (state.db) in which every batch of
// Raft entries is applied in one transaction that also records the last
// applied index, so a restart replays only newer entries and a replayed
// entry is a no-op. A Raft entry is one command-type byte and a JSON
// payload; the proposer stamps IDs and times into it so Apply is
// deterministic. A command the FSM refuses (a module version pushed again
// with other bytes) returns an error to its proposer and changes nothing.
//
// Scheduling. Registering or stopping a job commits an evaluation with
// it. The leader's worker takes evaluations one job at a time, calls the
// pure scheduler (package sched) on a snapshot of the state, and hands
// the plan to the plan applier, which re-checks every placement against
// the state at apply time (sched.Fits), commits what still fits and
// retries the rest on a fresh snapshot. Placements that fit nowhere leave
// the evaluation blocked until capacity changes.
//
// Agents. Agents dial the server's QUIC endpoint (package internal/wire
// for the protocol) and are pushed the full set of their allocations
// whenever it changes; they report status and service endpoints, which
// the FSM turns into the registry's catalog (Store implements
// registry.Catalog).
//
// The coordinator never runs workloads: it validates modules at push
// (wasmhost.Validate) but executes nothing.
package coordinator
