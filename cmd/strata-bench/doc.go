// Command strata-bench measures Strata. Subcommands:
//
//	strata-bench deploy -strata bin/strata -address http://127.0.0.1:4700 -dns 127.0.0.1:8600 \
//	    -job examples/hello/hello.hcl -runs 5
//
// deploy measures the time from `strata run` to the first successful
// request to the deployed service, resolved through Strata's DNS, against
// a running `strata dev` whose module is already pushed.
//
//	strata-bench place -nodes 5000 -allocs 100000
//
// place runs the pure scheduler (sched.Schedule) alone.
//
//	strata-bench c1m -nodes 5000 -jobs 1000 -count 1000
//
// c1m is Nomad's C1M through a real coordinator: simulated nodes
// registered through Raft (bbolt on disk), jobs submitted through the
// HTTP API, measured until every allocation is committed; it prints peak
// RSS and, last, placements_per_sec. -cpuprofile and -memprofile write
// a CPU and an allocation profile of the run (go tool pprof -top).
//
//	strata-bench agents -strata bin/strata -agents 1000 [-steady 30s] [-module-mb 20]
//
// agents runs `strata server` as a child process and that many simulated
// agents in the bench process, each on its own QUIC connection over
// loopback speaking the real protocol. It prints the time until all are
// registered, the server's CPU and RSS (from /proc/<pid>) during steady
// heartbeating, and, last, push_all_ms: from submitting one job with an
// allocation on every node until every agent has received it. With
// -module-mb the job's module is padded to that size and every agent
// downloads and verifies it while heartbeating; no node may be marked
// down.
//
//	strata-bench dns [-instances 10000 -per-service 4 -duration 15s -inflight 50 -rounds 1]
//
// dns runs dnsperf (half SRV, half A queries for random services) against
// Strata's DNS server (registry.DNSServer.Listen over a generated snapshot)
// and against a minimal miekg/dns server answering the same records from a
// map, the ceiling; it prints both rates, the queries lost and the ratio.
// With -rounds N the two alternate N times and the best of each is kept.
// -serve strata|ceiling serves one of them on -addr until interrupted.
// `make bench-dns` installs dnsperf if needed and runs it.
//
//	strata-bench rollout -strata bin/strata -agents 100 -count 1000 -max-parallel 100
//
// rollout runs `strata server` as a child process and that many simulated
// agents (which report each allocation healthy as soon as it runs),
// deploys a job of -count allocations, then a new version of it, and
// prints the rolling update's time, its batches against the fewest
// possible (ceil(count / max_parallel)) and the server's CPU.
//
// Each measurement drives real Strata components and prints figures,
// last a line `<metric>=<value>` that scripts can read. agentsim.go
// simulates edge agents: each is its own QUIC connection speaking the
// real protocol (dialAndRegister is the one function that knows how an
// agent authenticates). agents.go runs `strata server` as a child
// process, so its CPU and RSS are its own, against a fleet of them.
// Nothing in Strata imports this command.
package main
