// Package sched decides where the copies of a job's task groups run.
//
// It is a pure function from a cluster snapshot, a job and the job's
// existing allocations to a Plan (Schedule), plus the check the
// coordinator's plan applier repeats at apply time (Fits). It owns:
//
//   - reconciliation: which existing allocations stay, which are stopped
//     (job stopped, group removed, job updated, count reduced, node down)
//     and which group indexes are missing and must be placed;
//   - feasibility: which nodes can take a copy of a group, with a stable
//     reason for every node rejected ("missing driver docker", "memory
//     exhausted"), counted per group in Plan.Failed when nothing fits;
//   - ranking: Nomad's BestFit v3 bin-packing score plus job anti-affinity,
//     averaged as Nomad's ScoreNormalizationIterator does, over a limited
//     number of feasible nodes (max(2, ceil(log2(nodes)))) visited in an
//     order shuffled from the evaluation ID;
//   - port assignment: static ports as asked, dynamic ports from
//     MinDynamicPort–MaxDynamicPort, never colliding with ports in use on the
//     node or assigned earlier in the same plan.
//
// The reasons a node is rejected, the keys of Explanation.Reasons, are, in
// the order they are checked: "node unknown" (nil entry), "node down",
// "node not ready", "node ineligible", "datacenter mismatch",
// "missing driver <name>", "unhealthy driver <name>", "cpu exhausted",
// "memory exhausted", "static port collision" and "dynamic ports
// exhausted". Each node counts once, under the first check it fails.
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
// stops before re-checking its placements with Fits.
//
// Scope. Reconciliation follows Nomad's service semantics with these
// simplifications:
//
//   - A job update is destructive and all at once: every allocation of an
//     older job version is stopped and replaced in the same plan
//     (update.max_parallel, canaries and auto-revert are not implemented).
//   - Allocations that failed or were lost are replaced once per
//     evaluation, with no reschedule policy (no attempt limit, delay or
//     penalty for the node they failed on).
//   - A batch job's allocation of the current version that completed
//     successfully keeps its index and is not run again.
//   - Non-terminal allocations on a node that is down or absent from the
//     snapshot are stopped ("node down") and replaced; disconnect handling
//     (lost_after, replace) is not implemented.
//
// Placement does not implement constraints, affinities, spread, node
// drain migrations, preemption, devices, network bandwidth (MBits) or
// system jobs.
package sched
