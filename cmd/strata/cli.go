package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/strata-run/strata/coordinator/api"
)

// Env is what a command reads and writes, so tests can run commands in-process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Location is the time zone times are shown in; nil is time.Local.
	Location *time.Location
}

func (e *Env) location() *time.Location {
	if e.Location == nil {
		return time.Local
	}
	return e.Location
}

// exitError carries an exit code; its message has already been printed
// when msg is empty.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError is a command-line mistake: exit code 2.
func usageError(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"dev", "Run a coordinator, an agent and DNS in one process, on loopback", runDev},
		{"module push", "Push an immutable module version: module push FILE -name NAME -version VERSION", runModulePush},
		{"module list", "List module versions", runModuleList},
		{"run", "Validate, submit a job and follow it until it runs: run [-detach] [-check-index N] FILE.hcl", runRun},
		{"plan", "Show what submitting a job would change, changing nothing: plan FILE.hcl", runPlan},
		{"job history", "List a job's versions (-p: with their changes): job history [-p] JOB", runJobHistory},
		{"job revert", "Register an earlier version again: job revert JOB VERSION", runJobRevert},
		{"deployment list", "List deployments", runDeploymentList},
		{"deployment status", "Show a deployment's progress: deployment status ID", runDeploymentStatus},
		{"deployment promote", "Promote a deployment's canaries: deployment promote [-group G]... ID", runDeploymentPromote},
		{"deployment fail", "Fail a running deployment (auto_revert reverts the job): deployment fail ID", runDeploymentFail},
		{"validate", "Check a job file: validate FILE.hcl", runValidate},
		{"status", "List jobs, or show one job's allocations: status [JOB]", runStatus},
		{"stop", "Stop a job: stop JOB", runStop},
		{"server", "Run a coordinator server: server -data-dir D [-bootstrap-expect N -join ADDR,...]", runServer},
		{"agent", "Run an edge agent: agent -servers ADDR,... -ca-pin sha256:... -join-token T -data-dir D [-datacenter DC]", runAgent},
		{"agent token create", "Create a join token and print the agent command line: agent token create [-reusable] [-ttl D]", runTokenCreate},
		{"agent token list", "List join tokens", runTokenList},
		{"agent token revoke", "Revoke a join token: agent token revoke ID", runTokenRevoke},
		{"alloc status", "Show an allocation, its tasks' states and recent events: alloc status ALLOC (ID or unique prefix)", runAllocStatus},
		{"alloc logs", "Print a task's stdout (or -stderr): alloc logs [-f] [-stderr] [-tail N] ALLOC [TASK]", runAllocLogs},
		{"node status", "List the agents' nodes", runNodeStatus},
		{"node drain", "Move a node's allocations elsewhere: node drain -enable [-deadline D] NODE | -disable NODE", runNodeDrain},
		{"operator raft list-peers", "List the servers of the Raft configuration", runRaftListPeers},
		{"operator raft remove-peer", "Remove a server: remove-peer -peer-id ID | -peer-address ADDR", runRaftRemovePeer},
		{"job init", "Write a commented example job: job init [FILE] (default example.hcl)", runJobInit},
		{"fmt", "Rewrite job files in canonical HCL layout: fmt [-check] FILE...", runFmt},
		{"inspect", "Print a job file as canonical JSON, defaults filled: inspect FILE.hcl", runInspect},
	}
}

// Main runs the strata command and returns its exit code.
func Main(ctx context.Context, env *Env, args []string) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	var cmd *command
	cmds := commands()
	for i := range cmds {
		words := strings.Fields(cmds[i].name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == cmds[i].name {
			if cmd == nil || len(words) > len(strings.Fields(cmd.name)) {
				cmd = &cmds[i]
			}
		}
	}
	if cmd == nil {
		if len(args) > 0 && args[0] != "-h" && args[0] != "-help" && args[0] != "help" {
			fmt.Fprintf(env.Stderr, "strata: unknown command %q\n\n", strings.Join(args, " "))
		}
		usage(env.Stderr, cmds)
		return 2
	}
	err := cmd.run(ctx, env, args[len(strings.Fields(cmd.name)):])
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(env.Stderr, "Error: %s\n", ee.msg)
		}
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(env.Stderr, "Error: %v\n", err)
	return 1
}

func usage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "Usage: strata <command> [flags] [args]")
	fmt.Fprintln(w)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-26s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nThe API address is -address, or STRATA_ADDR (default http://127.0.0.1:4700).")
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("strata "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parse parses flags that may come before, between or after positional
// arguments ("module push FILE -name x"), and returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitError{code: 2}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// addressFlag adds -address with STRATA_ADDR as the default.
func addressFlag(fs *flag.FlagSet, env *Env) *string {
	def := env.Getenv("STRATA_ADDR")
	if def == "" {
		def = "http://127.0.0.1:4700"
	}
	return fs.String("address", def, "HTTP API address (env STRATA_ADDR)")
}

func client(addr string) *api.Client { return api.NewClient(addr) }
