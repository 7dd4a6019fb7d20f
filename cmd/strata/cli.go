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
		{"module delete", "Delete a module version no stored job version uses: module delete NAME@VERSION", runModuleDelete},
		{"run", "Validate, submit a job and follow it until it runs: run [-detach] [-check-index N] FILE.hcl", runRun},
		{"plan", "Show what submitting a job would change, changing nothing: plan FILE.hcl", runPlan},
		{"job history", "List a job's versions (-p: with their changes): job history [-p] JOB", runJobHistory},
		{"job revert", "Register an earlier version again: job revert JOB VERSION", runJobRevert},
		{"job status", "Show a job: summary by group, latest deployment, current allocations with health: job status [-all-allocs] [JOB]", runJobStatus},
		{"job scale", "Set a group's count in place, no deployment: job scale [-detach] JOB [GROUP] COUNT", runJobScale},
		{"job periodic force", "Launch a periodic job's child now, outside its schedule: job periodic force JOB", runJobPeriodicForce},
		{"job dispatch", "Launch a parameterized job's child with meta and a payload: job dispatch [-meta K=V]... JOB [PAYLOAD_FILE|-]", runJobDispatch},
		{"deployment list", "List deployments", runDeploymentList},
		{"deployment status", "Show a deployment's progress: deployment status ID", runDeploymentStatus},
		{"deployment promote", "Promote a deployment's canaries: deployment promote [-group G]... ID", runDeploymentPromote},
		{"deployment fail", "Fail a running deployment (auto_revert reverts the job): deployment fail ID", runDeploymentFail},
		{"validate", "Check a job file: validate FILE.hcl", runValidate},
		{"status", "List jobs, or show one job's current allocations with their health: status [-all-allocs] [JOB]", runStatus},
		{"stop", "Stop a job (-purge: and remove it with its history): stop [-purge] JOB", runStop},
		{"server", "Run a coordinator server: server -data-dir D [-bootstrap-expect N -join ADDR,...]", runServer},
		{"agent", "Run an edge agent: agent -servers ADDR,... -ca-pin sha256:... -join-token T -data-dir D [-datacenter DC]", runAgent},
		{"acl bootstrap", "Create the cluster's first management token (once per cluster)", runACLBootstrap},
		{"acl policy apply", "Create or replace an ACL policy: acl policy apply [-description D] NAME FILE.hcl", runACLPolicyApply},
		{"acl policy list", "List ACL policies", runACLPolicyList},
		{"acl policy info", "Show an ACL policy and its rules: acl policy info NAME", runACLPolicyInfo},
		{"acl policy delete", "Delete an ACL policy: acl policy delete NAME", runACLPolicyDelete},
		{"acl token create", "Create an ACL token: acl token create [-name N] [-policy P]... [-type client|management] [-ttl D]", runACLTokenCreate},
		{"acl token list", "List ACL tokens", runACLTokenList},
		{"acl token info", "Show an ACL token: acl token info ACCESSOR", runACLTokenInfo},
		{"acl token self", "Show the token in use (-token or STRATA_TOKEN)", runACLTokenSelf},
		{"acl token delete", "Delete an ACL token: acl token delete ACCESSOR", runACLTokenDelete},
		{"agent token create", "Create a join token and print the agent command line: agent token create [-reusable] [-ttl D]", runTokenCreate},
		{"agent token list", "List join tokens", runTokenList},
		{"agent token revoke", "Revoke a join token: agent token revoke ID", runTokenRevoke},
		{"alloc status", "Show an allocation, its tasks' states and recent events: alloc status ALLOC (ID or unique prefix)", runAllocStatus},
		{"alloc logs", "Print a task's stdout (or -stderr): alloc logs [-f] [-stderr] [-tail N] ALLOC [TASK]", runAllocLogs},
		{"alloc stop", "Stop an allocation; the scheduler replaces it: alloc stop [-detach] ALLOC", runAllocStop},
		{"alloc restart", "Restart an allocation's running tasks in place: alloc restart [-task T] ALLOC [TASK]", runAllocRestart},
		{"alloc signal", "Send a signal to an allocation's tasks: alloc signal [-s SIGNAL] [-task T] ALLOC [TASK]", runAllocSignal},
		{"alloc stats", "Show an allocation's resource use: alloc stats [-task T] ALLOC [TASK]", runAllocStats},
		{"node status", "List the agents' nodes", runNodeStatus},
		{"node drain", "Move a node's allocations elsewhere: node drain -enable [-deadline D] NODE | -disable NODE", runNodeDrain},
		{"node eligibility", "Allow or stop new placements on a node: node eligibility -enable NODE | -disable NODE", runNodeEligibility},
		{"server members", "List the servers and whether each answers", runServerMembers},
		{"system gc", "Collect finished allocations, done evaluations, dead jobs and old job versions", runSystemGC},
		{"operator raft list-peers", "List the servers of the Raft configuration", runRaftListPeers},
		{"operator raft remove-peer", "Remove a server: remove-peer -peer-id ID | -peer-address ADDR", runRaftRemovePeer},
		{"operator state check", "Check a stopped server's state.db and Raft log fully: operator state check -data-dir D", runStateCheck},
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
	fmt.Fprintln(w, "\nThe API address is -address, or STRATA_ADDR (default http://127.0.0.1:4700); several servers are")
	fmt.Fprintln(w, "-address repeated or a comma-separated list, and a call moves on when one cannot answer; the ACL token")
	fmt.Fprintln(w, "-token or STRATA_TOKEN; an HTTPS server is verified with -ca-cert (STRATA_CACERT) or -ca-pin (STRATA_CAPIN).")
	fmt.Fprintln(w, "Read commands take -json (the API's answer) or -t '{{...}}' (a Go template over it).")
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("strata "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parseOne parses a command that takes exactly one positional argument
// and returns it; usage is the message for any other number.
func parseOne(fs *flag.FlagSet, args []string, usage string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usageError("%s", usage)
	}
	return pos[0], nil
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
		if len(args) == 0 || args[0] == "--" {
			if len(args) > 0 {
				pos = append(pos, args[1:]...)
			}
			if err := checkOutputFlags(fs); err != nil {
				return nil, err
			}
			return pos, loadAPIFlags(fs)
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// apiFlags are the flags every command that calls the API takes: the
// address, the ACL token and how to verify an HTTPS server. parse builds
// the client once they are parsed (a CA file that cannot be read is a
// usage error there), so client(*addr) cannot fail.
type apiFlags struct {
	address, token, caCert, caPin string
	c                             *api.Client
}

// caCertFlag is -ca-cert; parse finds the apiFlags through it.
type caCertFlag struct{ f *apiFlags }

func (v *caCertFlag) String() string {
	if v.f == nil {
		return ""
	}
	return v.f.caCert
}

func (v *caCertFlag) Set(s string) error { v.f.caCert = s; return nil }

// addressFlag adds -address (STRATA_ADDR), -token (STRATA_TOKEN),
// -ca-cert (STRATA_CACERT) and -ca-pin (STRATA_CAPIN).
func addressFlag(fs *flag.FlagSet, env *Env) *apiFlags {
	f := &apiFlags{address: env.Getenv("STRATA_ADDR"), token: env.Getenv("STRATA_TOKEN"),
		caCert: env.Getenv("STRATA_CACERT"), caPin: env.Getenv("STRATA_CAPIN")}
	if f.address == "" {
		f.address = "http://127.0.0.1:4700"
	}
	fs.Var(&addressList{f: f}, "address", "HTTP API address; repeat it, or separate addresses with commas, to name several servers: a call moves to the next when one cannot answer (env STRATA_ADDR)")
	fs.StringVar(&f.token, "token", f.token, "ACL token secret, sent as X-Strata-Token (env STRATA_TOKEN)")
	fs.Var(&caCertFlag{f}, "ca-cert", "PEM file of the CA that signed the server's HTTPS certificate (env STRATA_CACERT)")
	fs.StringVar(&f.caPin, "ca-pin", f.caPin, "sha256:<hex> of the cluster CA certificate, as `strata server` prints it, to verify an HTTPS server instead of -ca-cert (env STRATA_CAPIN)")
	return f
}

// addressList is -address: the first use replaces STRATA_ADDR's list,
// each further use adds to it.
type addressList struct {
	f   *apiFlags
	set bool
}

func (v *addressList) String() string {
	if v.f == nil {
		return ""
	}
	return v.f.address
}

func (v *addressList) Set(s string) error {
	if strings.TrimSpace(strings.ReplaceAll(s, ",", "")) == "" {
		return errors.New("an empty address")
	}
	if !v.set {
		v.f.address, v.set = s, true
		return nil
	}
	v.f.address += "," + s
	return nil
}

// load builds the client from the parsed flags.
func (f *apiFlags) load() error {
	cfg := api.Config{Address: f.address, Token: f.token, CAPin: f.caPin}
	if f.caCert != "" {
		b, err := os.ReadFile(f.caCert)
		if err != nil {
			return usageError("-ca-cert: %v", err)
		}
		cfg.CACertPEM = b
	}
	c, err := api.New(cfg)
	if err != nil {
		return usageError("%v", err)
	}
	f.c = c
	return nil
}

// loadAPIFlags builds the client of a command that has the API flags.
func loadAPIFlags(fs *flag.FlagSet) error {
	fl := fs.Lookup("ca-cert")
	if fl == nil {
		return nil
	}
	if v, ok := fl.Value.(*caCertFlag); ok {
		return v.f.load()
	}
	return nil
}

func client(f apiFlags) *api.Client {
	if f.c != nil {
		return f.c
	}
	c := api.NewClient(f.address)
	c.Token = f.token
	return c
}
