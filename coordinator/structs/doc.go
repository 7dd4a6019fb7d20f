// Package structs holds the records of Strata's control plane as the
// servers store them and the HTTP API shows them (jobs, allocations,
// nodes, evaluations, modules, join tokens) and the request and response
// bodies of the API: plain data with JSON tags, as Nomad's nomad/structs.
//
// Both sides import it: the coordinator (its state machine stores these
// records) and the API client (package coordinator/api) that the CLI
// uses. It must therefore stay free of I/O and must not import
// coordinator, Raft, bbolt or net/http, so a client links none of them.
package structs
