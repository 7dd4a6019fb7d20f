// Package sched decides where the copies of a job's task groups run.
//
// It is a pure function from a cluster snapshot, a job and the job's
// existing allocations to a Plan (Schedule), plus the check the
// coordinator's plan applier repeats at apply time (Checker). It owns:
//
//   - reconciliation: which existing allocations stay, which are stopped
//     (job stopped, group removed, job updated, count reduced, node down)
//     and which group indexes are missing and must be placed; which
//     allocations of an older version move to the new one in place (their
//     group changed only in count or strategy: Plan.InPlace) and which are
//     replaced, all at once or, under a deployment (Request.Deployment),
//     create-before-destroy: canaries first until promoted, then at most
//     update.max_parallel unhealthy replacements at a time, each old copy
//     stopped only once its replacement is healthy;
//   - feasibility: which nodes can take a copy of a group, with a stable
//     reason for every node rejected ("missing driver docker", "memory
//     exhausted", "constraint ${attr.kernel.name} = linux"), counted per
//     group in Plan.Failed when nothing fits;
//   - ranking: Nomad's BestFit v3 bin-packing score, job anti-affinity,
//     node affinity and spread, averaged as Nomad's
//     ScoreNormalizationIterator does, over a limited number of feasible
//     nodes visited in an order shuffled from the evaluation ID;
//   - port assignment: static ports as asked, dynamic ports from
//     MinDynamicPort–MaxDynamicPort, never colliding with ports in use on the
//     node or assigned earlier in the same plan.
//
// # Feasibility
//
// The reasons a node is rejected, the keys of Explanation.Reasons, are, in
// the order they are checked (Nomad's): "node unknown" (nil entry), "node
// down", "node not ready", "node ineligible", "datacenter mismatch", the
// job's constraints, "missing driver <name>", "unhealthy driver <name>",
// the group's constraints, "missing host volume <name>", "host volume
// <name> is read-only" (the group's host volumes: declared on the node,
// writable where a volume is not read_only; per node, never per class),
// "constraint distinct_hosts", "cpu exhausted",
// "memory exhausted", "static port collision" and "dynamic ports
// exhausted". A constraint's reason is "constraint <attribute> <operator>
// <value>" as the job writes them (the operator "=" when left out, the
// value left out when empty). Each node counts once, under the first
// check it fails.
//
// Constraints (job and group level; the job language has none per task)
// support every operator of the language with Nomad's semantics: = and
// != (an unset attribute is "" for !=, and fails everything else but
// is_not_set), > >= < <= (as integers when both sides parse as integers,
// else as floats, else lexically), regexp (unanchored), set_contains and
// set_contains_any (comma-separated, trimmed), version and semver (see
// version.go: hashicorp/go-version's and Nomad's semver constraint
// semantics, written here), is_set, is_not_set and distinct_hosts. An
// attribute or value is a template: ${node.datacenter}, ${node.unique.name},
// ${node.unique.id}, ${node.class}, ${attr.<key>} (Node.Attributes),
// ${meta.<key>} (Node.Meta); text without references is literal, $${ is a
// literal "${", and an unknown reference is never set.
//
// distinct_hosts at job level keeps any two allocations of the job off
// one node; at group level, any two copies of the group (Nomad's
// semantics; value "false" disables it). It counts the allocations
// reconciliation keeps and the plan places, not the ones the plan stops.
//
// The checks that read only the node's fingerprint (job constraints,
// drivers, group constraints), the affinity score and the spread values
// are computed once per computed class (Node.ComputedClass, set by the
// coordinator with ComputeClass) and group, unless the group reads a
// value unique to a node (node.unique.*, attr.unique.*, meta.unique.*),
// and once per node and group otherwise (also when ComputedClass is
// empty). distinct_hosts and capacity are checked on every visit.
//
// There is one feasibility function (feasible.go): Schedule's pipeline
// calls it for every node it visits, and Checker.Fits, the plan applier's
// re-check, calls it for one node and the allocation's resources, then
// checks the allocation's own ports ("port N in use", "assigned twice",
// "out of range"). The re-check therefore rejects with the reasons above,
// in the same order; it cannot see distinct_hosts (it needs the job's
// other allocations) and never trusts a computed class.
//
// # Ranking
//
// Each feasible node visited gets the average of the scores that apply:
// BestFit v3 normalised to [0, 1]; job anti-affinity −(c+1)/count when it
// holds c ≥ 1 copies of the group; the affinity score (matched weights
// over the sum of |weights|, job and group affinities) when not 0; the
// spread score (spread.go: Nomad's SpreadIterator with and without
// targets, each spread weighted by its share of the group's spread
// weights) when not 0. A placement ranks the first limit feasible nodes
// of the shuffled order and takes the best (ties: the first seen): limit
// is max(2, ⌈log2(nodes)⌉), or, for a group with affinities or spreads,
// max(100, Count) as in Nomad, since those scores mean little over a few
// nodes. Up to three feasible nodes scoring ≤ 0 are set aside and ranked
// only if the walk runs out, as in Nomad's LimitIterator.
//
// The limit makes placement a heuristic: packing_test.go measures it
// against an exhaustive search on clusters of up to 8 nodes and asserts
// the bound measured there (a gap of at most 0.5/√m per copy for m copies
// against the best total score, 0.005 on average, and as many copies
// placed as the search places).
//
// # Purity
//
// It must not do I/O, log, start goroutines, read a clock or use global
// randomness: the only randomness (node shuffle, dynamic ports, allocation
// IDs) comes from a PCG generator seeded with the FNV-64a hash of
// Request.EvalID, so the same Request always yields the same Plan. The
// order of Request.Nodes is part of the input. Schedule never modifies
// the Request; placements within one plan see each other through a
// copy-on-write overlay of the nodes they touch.
//
// Allocations in Plan.Stop release their resources and ports for the
// placements of the same plan, as in Nomad: the applier must apply a plan's
// stops before re-checking its placements with a Checker.
//
// # Scope
//
// Reconciliation follows Nomad's service semantics with these
// simplifications:
//
//   - A job update is destructive and all at once: every allocation of an
//     older job version is stopped and replaced in the same plan
//     (update.max_parallel, canaries and auto-revert are not implemented).
//   - A failed allocation (client failed, desired run) is rescheduled
//     with Nomad's semantics (reschedule.go): only while its group's
//     reschedule policy allows (attempts within interval, or unlimited),
//     after delay grown by delay_function up to max_delay, counted from
//     Allocation.FinishedAt. Its replacement links to it
//     (PreviousAllocation) and carries the chain's RescheduleTracker. A
//     reschedule not yet due holds its index and asks for a follow-up
//     evaluation (Plan.FollowUps, due at WaitUntil); one the policy does
//     not allow stays failed and holds its index (the group runs short,
//     as in Nomad). Request.Now is the only time read. There is no
//     penalty for the node it failed on. A failed allocation of a group
//     changed since (destructive update) is stopped and replaced at once.
//   - A lost allocation is stopped ("alloc lost") and replaced at once;
//     stopping a job stops every allocation still desired to run,
//     finished ones included.
//   - A batch job's allocation of the current version that completed
//     successfully keeps its index and is not run again.
//   - Non-terminal allocations on a node that is down or absent from the
//     snapshot are stopped ("node down") and replaced, unless the group
//     has a disconnect block and the coordinator marked them unknown: those
//     are kept (replace = false) or replaced while the original waits;
//     on reconnection the original is kept, or the replacement with
//     disconnect.reconcile = "keep_replacement" (spec refuses Nomad's
//     best_score and longest_running).
//
// Placement implements constraints, distinct_hosts, affinities, spreads
// and group-level network ports. It does not implement distinct_property,
// node pools, node drain migrations, preemption, devices, network
// bandwidth (MBits) or system jobs. Spread counts ignore unknown
// allocations that are being replaced (Nomad counts every non-terminal
// allocation).
package sched
