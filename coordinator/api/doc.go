// Package api is the Go client of a Strata server's HTTP API: one method
// per route, the request and response bodies from package structs, and
// errors that keep the server's status and message (*StatusError).
//
// It is what the CLI and the benchmarks link: it must not import the
// coordinator (Raft, bbolt, the QUIC endpoint) or any other role, so a
// client binary carries none of them.
package api
