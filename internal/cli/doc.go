// Package cli implements the strata command's subcommands: flag parsing,
// calls to the HTTP API through coordinator.Client, and what the user
// reads. `strata dev` wires a coordinator, an agent, the HTTP API and
// the DNS server into one process. cmd/strata only calls Main.
package cli
