// Package deploy decides what the leader's deployment watcher does with a
// running deployment: a pure function of the deployment record and the
// time (Step), tested with explicit times.
//
// It owns the rules of a deployment's life, Nomad's: an unhealthy
// allocation or a missed progress deadline fails it (and, with
// auto_revert, sends the job back to its latest stable version); canaries
// are promoted automatically when every canary of every group is healthy
// and auto_promote is set; the deployment succeeds when every group has as
// many healthy allocations of the new version as its count (and its
// canaries are promoted); every step asks for an evaluation, so the
// scheduler stops what healthy replacements replaced and starts the next
// batch; and Step says when it must run again (a progress deadline, the
// end of a stagger).
//
// It must not do I/O, read a clock or keep state: the watcher in package
// coordinator owns timers and Raft, and turns a Decision into commands.
package deploy
