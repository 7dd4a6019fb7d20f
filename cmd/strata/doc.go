// Command strata is Strata's single binary: `strata dev` (coordinator,
// agent and DNS in one process on loopback), and the CLI that talks to
// the HTTP API (`module push`, `run`, `status`, `stop`, `validate`).
// It holds no logic: main calls internal/cli.
package main
