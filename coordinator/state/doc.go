// Package state is the coordinator's replicated state machine: what the
// Raft log's commands build, durable in one bbolt file, and the reads
// every other part of the coordinator makes of it.
//
// It owns:
//
//   - the store (Open): the bbolt file, its checks (boltcheck's page walk
//     before bbolt reads it, bbolt's tx.Check, meta/format =
//     strata-state-v2; a corrupt or foreign file is refused by name,
//     never replaced here: the coordinator moves it aside and rebuilds it
//     from Raft), snapshots (Snapshot) and Restore, which checks a
//     snapshot before it replaces anything; CheckFile, the full check
//     (every record decoded strictly) of `strata operator state check`;
//   - the commands (Command, Encode): one type byte and a payload, JSON
//     except the plan, whose allocations have a compact binary form
//     (codec.go), as do stored allocations;
//   - applying them (Store.Apply): a batch of Raft entries in one bbolt
//     transaction that also records the last applied index, so a replayed
//     entry is a no-op. Each command is applied by its own method, a
//     function of the state and the command that returns the command's
//     result and records its effects (Effects: evaluations to queue,
//     capacity grown, nodes whose allocations changed, and the events of
//     the event stream: each job, allocation, deployment and node an
//     entry wrote, with a copy of the record as it left it: events.go).
//     A command that is malformed or not valid in the state is refused:
//     it changes nothing and its error goes back to the proposer. After the commit the
//     in-memory views are published, then watchers are woken (Watch);
//   - the in-memory views: the usage index (each node with what its live
//     allocations hold: the scheduler's snapshot, the allocations by
//     node, and the allocations counted by desired and client status for
//     the metrics: AllocCounts, counts.go) and the allocation cache,
//     rebuilt from bbolt at open and restore; OnApply lets the coordinator
//     time each command (this package reads no clock);
//   - the reads: jobs and their versions, allocations, nodes, evaluations,
//     modules, join tokens, ACL policies and tokens, the cluster CA, and
//     the registry catalog
//     (Endpoints, Services: Store is a registry.Catalog; CatalogSnapshot,
//     the whole catalog as a registry.Snapshot at the applied index);
//   - the catalog's changes (catalog.go): a batch that changes endpoints
//     reports them as one registry.Delta at its index (Effects.Catalog),
//     instance IDs "<alloc>/<service>/<n>", node addresses from the
//     nodes bucket (SRV targets name the node); a report that changes
//     nothing a reader sees makes no delta;
//   - deployments (apply_deploy.go): created by the registration of a
//     version that changes what a group runs (or a first run), cancelled
//     by a newer version, their counters kept as plans place allocations
//     and agents report health, promoted and ended by the leader's
//     watcher (a failure may carry its revert's registration); each
//     version's stability (VersionInfo);
//   - the join tokens' part of the state machine (TokenCreate, TokenUse,
//     TokenRevoke, CheckToken);
//   - ACL policies and tokens (acl.go: ACLBootstrap, once per cluster;
//     ACLPolicySet, ACLPolicyDelete, ACLTokenCreate, ACLTokenDelete):
//     tokens keep their secret's SHA-256 only, indexed by it, and a token
//     found by it is compared in constant time; the proposer parses
//     policies and checks expiry, the state only what depends on it
//     (policies a token names exist, a second bootstrap);
//   - the operator's clean-up (apply_gc.go): node eligibility (refused
//     for a draining node), module deletion (refused while a stored job
//     version uses it), a job's purge and the system's garbage collection
//     (finished allocations the scheduler no longer counts, done
//     evaluations, ended deployments, dead jobs, versions past a bound but
//     those still running and the latest stable). Deleted allocations
//     leave the in-memory views in the batch's publish;
//   - rescheduling (apply_resched.go): a plan's follow-up evaluations
//     (pending, with WaitUntil) and the failed allocations they will
//     reschedule, marked with their ID; a placement that replaces a failed
//     allocation links both (NextAllocation) and stops the failed one in
//     the same transaction; the failure time (FinishedAt) stamped from
//     the report's proposer time;
//   - the plan applier's re-check (CheckPlan), a function of the state, a
//     plan and the placements in flight, with sched's feasibility check.
//
// It must not import Raft (github.com/hashicorp/raft) or net/http, start
// goroutines, read a clock or generate IDs: the proposer stamps times
// and IDs into commands, so applying one is deterministic, and the Raft
// adapter (package coordinator, fsm.go) turns Raft's log entries into
// Entry values and its snapshots into Snapshot. internal/archtest
// enforces the imports.
package state
