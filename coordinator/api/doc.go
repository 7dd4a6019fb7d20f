// Package api is the Go client of a Strata server's HTTP API: one method
// per route, the request and response bodies from package structs, and
// errors that keep the server's status and message (*StatusError). New
// takes the ACL token it sends (X-Strata-Token) and how it verifies an
// HTTPS server: a CA certificate, or the cluster CA's pin (with
// internal/wire's pin check, the one agents use). A client may know
// several servers (Config.Address "a,b,c", as STRATA_ADDR): it moves to
// the next when one cannot answer and retries through an election with
// bounded backoff, re-sending a write only when it is idempotent or the
// server says it was not applied (sendRetry in client.go).
//
// It is what the CLI and the benchmarks link: it must not import the
// coordinator (Raft, bbolt, the QUIC endpoint) or any other role, so a
// client binary carries none of them.
package api
