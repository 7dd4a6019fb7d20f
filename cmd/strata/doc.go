// Command strata is Strata's single binary and its command line.
//
// `strata dev` wires a coordinator, an agent, the HTTP API and the DNS
// server into one process on loopback; `strata server` and `strata agent`
// start one role each. Every other subcommand is a client of the HTTP API
// (through package coordinator/api, which does not link the server):
// flag parsing, one or a few API calls, and what the user reads. Every
// such command takes -address, -token, -ca-cert and -ca-pin (STRATA_ADDR,
// STRATA_TOKEN, STRATA_CACERT, STRATA_CAPIN: apiFlags in cli.go, turned
// into the client when the flags are parsed). Every read command also
// takes -json and -t (output.go): the API's answer as JSON, or a Go
// template over that JSON, instead of the layout for people. The
// operator's commands (ops.go: job status and scale, alloc
// stop|restart|signal|stats, node eligibility, server members, system gc,
// module delete) are each one or two API calls. `strata acl` (acl.go)
// parses a policy locally first, so its problems show with their source
// lines; `strata server` and `strata dev` take -acl-enabled and
// -http-tls or -http-cert/-http-key, and agents -host-volume and
// -dns-addr (with -dns-domain, -dns-recursors: DNS from the agent's
// replica of the catalog).
//
// This package wires and prints. It must not hold scheduling, state or
// protocol logic: what a command needs beyond formatting belongs to the
// package that owns it, reached through the API.
package main
