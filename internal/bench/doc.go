// Package bench holds the measurements behind cmd/strata-bench: each one
// drives real Strata components and prints figures, last a line
// `<metric>=<value>` that scripts can read.
//
// agentsim.go simulates edge agents: each is its own QUIC connection
// speaking the real protocol (dialAndRegister is the one function that
// knows how an agent authenticates). agents.go runs `strata server` as a
// child process, so its CPU and RSS are its own, against a fleet of them.
// The package must not be imported by Strata itself.
package bench
