package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/structs"

	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

func runValidate(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "validate")
	vars := addVarFlags(fs)
	arg, err := parseOne(fs, args, "validate takes one job file")
	if err != nil {
		return err
	}
	job, err := vars.parseJob(env, arg)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Job %q is valid.\n", job.ID)
	return nil
}

func runRun(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "run")
	addr := addressFlag(fs, env)
	detach := fs.Bool("detach", false, "return as soon as the job is registered")
	checkIndex := fs.String("check-index", "", "register only if the job's modify index is still this one (from `strata plan`; 0: the job must not exist)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the allocations to run")
	vars := addVarFlags(fs)
	arg, err := parseOne(fs, args, "run takes one job file")
	if err != nil {
		return err
	}
	job, err := vars.parseJob(env, arg)
	if err != nil {
		return err
	}
	c := client(*addr)
	var resp *structs.JobRegisterResponse
	if *checkIndex != "" {
		idx, perr := strconv.ParseUint(*checkIndex, 10, 64)
		if perr != nil {
			return usageError("run: -check-index %q is not an index", *checkIndex)
		}
		resp, err = c.RegisterJobAt(ctx, job, idx)
	} else {
		resp, err = c.RegisterJob(ctx, job)
	}
	if err != nil {
		return fmt.Errorf("submitting job %q: %w", job.ID, err)
	}
	if !resp.Changed {
		fmt.Fprintf(env.Stdout, "==> Job %q is unchanged (version %d)\n", job.ID, resp.Version)
	} else {
		fmt.Fprintf(env.Stdout, "==> Job %q registered: version %d, evaluation %s\n", job.ID, resp.Version, short(resp.EvalID))
	}
	if job.Periodic != nil {
		printNextLaunch(env, job)
		return nil
	}
	if job.Parameterized != nil {
		fmt.Fprintf(env.Stdout, "==> Job %q is parameterized: launch it with strata job dispatch %s\n", job.ID, job.ID)
		return nil
	}
	if *detach {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if resp.DeploymentID == "" {
		return watchJob(ctx, env, c, job, resp.Version, resp.Index)
	}
	if err := followDeployment(ctx, env, c, job.ID, resp.DeploymentID, resp.Index); err != nil {
		return err
	}
	r, _, err := c.JobAllocs(ctx, job.ID, 0, 0)
	if err != nil {
		return err
	}
	want, running := 0, 0
	for _, g := range job.Groups {
		want += g.Count
	}
	for _, a := range r.Allocations {
		if a.JobVersion == resp.Version && a.DesiredStatus == sched.DesiredRun && a.ClientStatus == sched.ClientRunning {
			running++
		}
	}
	fmt.Fprintf(env.Stdout, "==> Job %q version %d: %d/%d allocations running\n", job.ID, resp.Version, running, want)
	printServices(env, r.Allocations, resp.Version, nodeAddrs(ctx, c))
	return nil
}

// watchJob follows a job's allocations with blocking queries, printing
// each change, until every wanted copy of version runs (exit 0), one
// fails or cannot be placed (exit 1), or ctx ends.
func watchJob(ctx context.Context, env *Env, c *api.Client, job *spec.Job, version, index uint64) error {
	want := 0
	for _, g := range job.Groups {
		want += g.Count
	}
	nodes := map[string]string{}
	seen := map[string]string{}
	for {
		r, idx, err := c.JobAllocs(ctx, job.ID, index, 30*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("timed out waiting for job %q to run; it stays registered: see `strata status %s`", job.ID, job.ID)}
			}
			return err
		}
		index = idx
		running := 0
		for _, a := range r.Allocations {
			if a.JobVersion != version || a.DesiredStatus != sched.DesiredRun {
				continue
			}
			if _, ok := nodes[a.NodeID]; !ok {
				nodes = nodeAddrs(ctx, c)
			}
			line := describeAlloc(a, nodes[a.NodeID])
			if seen[a.ID] != line {
				seen[a.ID] = line
				fmt.Fprintf(env.Stdout, "    %s\n", line)
			}
			switch a.ClientStatus {
			case sched.ClientRunning:
				running++
			case sched.ClientFailed:
				return &exitError{code: 1, msg: fmt.Sprintf("allocation %s failed: %s", a.Name, a.ClientDescription)}
			}
		}
		if e := r.LatestEval; e != nil && e.Status == structs.EvalBlocked && len(e.Failed) > 0 {
			var msgs []string
			for _, g := range sortedKeys(e.Failed) {
				msgs = append(msgs, fmt.Sprintf("group %q: %d unplaced: %s", g, e.Failed[g].Missing, e.Failed[g]))
			}
			return &exitError{code: 1, msg: "placement failed:\n  " + strings.Join(msgs, "\n  ") +
				"\nThe job stays registered and is placed when capacity frees."}
		}
		if running >= want {
			fmt.Fprintf(env.Stdout, "==> Job %q version %d: %d/%d allocations running\n", job.ID, version, running, want)
			printServices(env, r.Allocations, version, nodes)
			return nil
		}
	}
}

// printServices lists where each service of the version answers.
func printServices(env *Env, allocs []*structs.Alloc, version uint64, nodes map[string]string) {
	for _, a := range allocs {
		if a.JobVersion != version || a.DesiredStatus != sched.DesiredRun {
			continue
		}
		for _, e := range a.Endpoints {
			addr := net.JoinHostPort(e.Address, strconv.Itoa(e.Port))
			fmt.Fprintf(env.Stdout, "    Service %s at %s (DNS: %s.service.strata)\n", e.Service, addr, e.Service)
		}
	}
}

func describeAlloc(a *structs.Alloc, nodeAddr string) string {
	var ports []string
	for _, p := range a.Ports {
		ports = append(ports, p.Label+"="+net.JoinHostPort(nodeAddr, strconv.Itoa(p.Value)))
	}
	health := ""
	for _, e := range a.Endpoints {
		if e.Healthy {
			health = " (healthy)"
		} else {
			health = " (checks pending)"
			break
		}
	}
	desc := ""
	if a.ClientDescription != "" && a.ClientStatus != sched.ClientRunning {
		desc = ": " + a.ClientDescription
	}
	return fmt.Sprintf("Allocation %s %s on node %s %s: %s%s%s", shortAlloc(a.ID), a.Name, a.NodeName, strings.Join(ports, " "), a.ClientStatus, health, desc)
}

func nodeAddrs(ctx context.Context, c *api.Client) map[string]string {
	out := map[string]string{}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return out
	}
	for _, n := range nodes {
		out[n.ID] = n.Address
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// shortAlloc is how an allocation ID is shown: its last 8 characters.
// Allocation IDs are time-ordered, so the first ones are shared by every
// allocation placed in the same minute; the last ones are random, and
// `strata alloc status|logs` take them (or any unique start or end).
func shortAlloc(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

func runStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "status")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	all := fs.Bool("all-allocs", false, "show the allocations of every version the servers keep, not only the current version's")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	c := client(*addr)
	switch {
	case len(pos) == 0 && *all:
		return usageError("-all-allocs shows a job's allocations: strata status -all-allocs JOB")
	case len(pos) == 0:
		return printJobList(ctx, env, c, out)
	case len(pos) > 1:
		return usageError("status takes at most one job ID")
	}
	id := pos[0]
	r, _, err := c.JobAllocs(ctx, id, 0, 0)
	if err != nil {
		return err
	}
	shown, hidden := versionAllocs(r.Allocations, r.Version, r.LatestEval, *all)
	if out.raw() {
		v := *r
		v.Allocations = shown
		return out.write(env.Stdout, &v)
	}
	fmt.Fprintf(env.Stdout, "Job %s, version %d, %s\n", id, r.Version, jobStatusWord(ctx, c, id, r.Stopped))
	if e := r.LatestEval; e != nil {
		for _, g := range sortedKeys(e.Failed) {
			fmt.Fprintf(env.Stdout, "Placement failure, group %q: %s\n", g, e.Failed[g])
		}
	}
	if len(shown) == 0 {
		fmt.Fprintln(env.Stdout, "No allocations.")
	} else {
		fmt.Fprintln(env.Stdout)
		printAllocTable(env.Stdout, shown, nodeAddrs(ctx, c), true)
	}
	if rec, err := c.Job(ctx, id); err == nil && rec != nil {
		printRescheduling(env.Stdout, rec.Job, shown, time.Now())
	}
	if hidden > 0 {
		fmt.Fprintf(env.Stdout, "\n%d allocation(s) of older versions or earlier runs not shown: strata status -all-allocs %s\n", hidden, id)
	}
	return nil
}

// printJobList prints every job with its version, status and allocations.
func printJobList(ctx context.Context, env *Env, c *api.Client, out *outputFlags) error {
	jobs, err := c.Jobs(ctx)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, jobs)
	}
	if len(jobs) == 0 {
		fmt.Fprintln(env.Stdout, "No jobs.")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "ID\tVersion\tStatus\tAllocations")
	for _, j := range jobs {
		var parts []string
		for _, k := range sortedKeys(j.Summary) {
			parts = append(parts, fmt.Sprintf("%d %s", j.Summary[k], k))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", j.ID, j.Version, j.Status, strings.Join(parts, ", "))
	}
	return nil
}

// versionAllocs are the allocations of the current version (all with
// all), and how many others it leaves out. Allocations of an earlier run
// of the same version (stopped and finished before the job's latest
// registration, latest: its evaluation; the job was stopped and run
// again) are left out too.
func versionAllocs(allocs []*structs.Alloc, version uint64, latest *structs.Eval, all bool) (shown []*structs.Alloc, hidden int) {
	shown = []*structs.Alloc{}
	for _, a := range allocs {
		earlier := latest != nil && a.CreateIndex < latest.CreateIndex && a.DesiredStatus == sched.DesiredStop && a.ClientStatus != sched.ClientRunning && a.ClientStatus != sched.ClientPending
		if all || (a.JobVersion == version && !earlier) {
			shown = append(shown, a)
		} else {
			hidden++
		}
	}
	return shown, hidden
}

// jobStatusWord is a job's status as the API's job list gives it.
func jobStatusWord(ctx context.Context, c *api.Client, id string, stopped bool) string {
	if jobs, err := c.Jobs(ctx); err == nil {
		for _, j := range jobs {
			if j.ID == id {
				return j.Status
			}
		}
	}
	if stopped {
		return "dead"
	}
	return "running"
}

// allocHealth is what people read of an allocation's health: its
// deployment health once its agent decided it, else its services'
// checks while it runs ("healthy" once every one passes), else "-".
func allocHealth(a *structs.Alloc) string {
	if a.Health != sched.HealthUnknown {
		return a.Health.String()
	}
	if a.ClientStatus != sched.ClientRunning || a.DesiredStatus != sched.DesiredRun || len(a.Endpoints) == 0 {
		return "-"
	}
	for _, e := range a.Endpoints {
		if !e.Healthy {
			return "checks pending"
		}
	}
	return "healthy"
}

// printAllocTable lists allocations with their health; withName adds
// their names and addresses (status JOB), else their group (job status).
func printAllocTable(w io.Writer, allocs []*structs.Alloc, nodes map[string]string, withName bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if withName {
		fmt.Fprintln(tw, "ID\tName\tVersion\tNode\tDesired\tStatus\tHealth\tAddress")
	} else {
		fmt.Fprintln(tw, "ID\tNode\tTask Group\tVersion\tDesired\tStatus\tHealth")
	}
	for _, a := range allocs {
		if !withName {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", shortAlloc(a.ID), a.NodeName, a.Group, a.JobVersion, a.DesiredStatus, a.ClientStatus, allocHealth(a))
			continue
		}
		var addrs []string
		for _, p := range a.Ports {
			addrs = append(addrs, p.Label+"="+net.JoinHostPort(nodes[a.NodeID], strconv.Itoa(p.Value)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", shortAlloc(a.ID), a.Name, a.JobVersion, a.NodeName,
			a.DesiredStatus, a.ClientStatus, allocHealth(a), strings.Join(addrs, " "))
	}
}

func runStop(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "stop")
	addr := addressFlag(fs, env)
	purge := fs.Bool("purge", false, "remove the job and its history (versions, deployments, finished allocations and evaluations); what still runs is stopped")
	arg, err := parseOne(fs, args, "stop takes one job ID")
	if err != nil {
		return err
	}
	r, err := client(*addr).DeregisterJob(ctx, arg, *purge)
	if err != nil {
		return err
	}
	if p := r.Purged; p != nil {
		fmt.Fprintf(env.Stdout, "==> Job %q stopped and purged: %d version(s), %d allocation(s), %d evaluation(s), %d deployment(s) removed\n",
			arg, p.Versions, p.Allocs, p.Evals, p.Deployments)
		return nil
	}
	fmt.Fprintf(env.Stdout, "==> Job %q stopped\n", arg)
	return nil
}

func runModulePush(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "module push")
	addr := addressFlag(fs, env)
	name := fs.String("name", "", "module name (required)")
	version := fs.String("version", "", "module version, semver (required)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *name == "" || *version == "" {
		return usageError("usage: strata module push FILE -name NAME -version VERSION")
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	m, err := client(*addr).PushModule(ctx, *name, *version, b)
	if err != nil {
		return fmt.Errorf("pushing %s as %s@%s: %w", pos[0], *name, *version, err)
	}
	fmt.Fprintf(env.Stdout, "%s@%s %s (%d bytes)\n", m.Name, m.Version, m.Digest, m.Size)
	return nil
}

func runModuleList(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "module list")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	mods, err := client(*addr).Modules(ctx)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, mods)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "Name\tVersion\tDigest\tSize")
	for _, m := range mods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", m.Name, m.Version, m.Digest, m.Size)
	}
	return nil
}
