package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// The operator's commands a Nomad user reaches for first: job status and
// scale, alloc stop, restart, signal and stats, node eligibility, server
// members, system gc and module delete (stop -purge is in jobs.go).

// jobStatus is what `job status -json` prints (Nomad's shape: the job,
// its summary, its latest deployment and its allocations), each part as
// the API answers it; Status is the job's status from the job list.
type jobStatus struct {
	Job              *structs.JobRecord  `json:"Job"`
	Status           string              `json:"Status"`
	Summary          *structs.JobSummary `json:"Summary"`
	LatestDeployment *structs.Deployment `json:"LatestDeployment"`
	Allocations      []*structs.Alloc    `json:"Allocations"`
}

func runJobStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "job status")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	all := fs.Bool("all-allocs", false, "show the allocations of every version the servers keep, not only the current version's")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	c := client(*addr)
	switch {
	case len(pos) == 0 && !*all:
		return printJobList(ctx, env, c, out)
	case len(pos) != 1:
		return usageError("usage: strata job status [-all-allocs] [-json | -t TEMPLATE] [JOB]")
	}
	id := pos[0]
	rec, err := c.Job(ctx, id)
	if err != nil {
		return err
	}
	sum, err := c.JobSummary(ctx, id)
	if err != nil {
		return err
	}
	var dep *structs.Deployment
	if d, _, err := c.LatestDeployment(ctx, id, 0, 0); err == nil {
		dep = d
	} else if !isNotFound(err) {
		return err
	}
	r, _, err := c.JobAllocs(ctx, id, 0, 0)
	if err != nil {
		return err
	}
	shown, hidden := versionAllocs(r.Allocations, rec.Version, r.LatestEval, *all)
	st := &jobStatus{Job: rec, Status: jobStatusWord(ctx, c, id, rec.Stopped), Summary: sum, LatestDeployment: dep, Allocations: shown}
	if out.raw() {
		return out.write(env.Stdout, st)
	}
	printJobStatus(env, st, r.LatestEval, hidden)
	return nil
}

// printJobStatus is Nomad's `job status` layout: the job, its summary by
// group, its latest deployment, its placement failures, its allocations.
func printJobStatus(env *Env, st *jobStatus, eval *structs.Eval, hidden int) {
	w, j := env.Stdout, st.Job.Job
	dcs := strings.Join(j.Datacenters, ",")
	if dcs == "" {
		dcs = "<any>"
	}
	kv := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, row := range [][2]string{
		{"ID", j.ID}, {"Submit Date", showTime(st.Job.SubmitTime, env.location())},
		{"Type", j.Type}, {"Priority", strconv.Itoa(j.Priority)}, {"Datacenters", dcs},
		{"Status", st.Status}, {"Version", strconv.FormatUint(st.Job.Version, 10)},
	} {
		fmt.Fprintf(kv, "%s\t= %s\n", row[0], row[1])
	}
	kv.Flush()

	fmt.Fprintln(w, "\nSummary")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Task Group\tQueued\tStarting\tRunning\tFailed\tComplete\tLost\tUnknown")
	for _, g := range sortedKeys(st.Summary.Summary) {
		s := st.Summary.Summary[g]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", g, s.Queued, s.Starting, s.Running, s.Failed, s.Complete, s.Lost, s.Unknown)
	}
	tw.Flush()

	if d := st.LatestDeployment; d != nil {
		fmt.Fprintf(w, "\nLatest Deployment\nID          = %s\nJob Version = %d\nStatus      = %s\nDescription = %s\n",
			short(d.ID), d.JobVersion, d.Status, d.StatusDescription)
		fmt.Fprintln(w, "\nDeployed")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Task Group\tPromoted\tDesired\tCanaries\tPlaced\tHealthy\tUnhealthy")
		for _, g := range sortedKeys(d.Groups) {
			s := d.Groups[g]
			fmt.Fprintf(tw, "%s\t%t\t%d\t%d\t%d\t%d\t%d\n", g, s.Promoted, s.DesiredTotal, s.DesiredCanaries, s.PlacedAllocs, s.HealthyAllocs, s.UnhealthyAllocs)
		}
		tw.Flush()
	}
	if eval != nil && eval.Status == structs.EvalBlocked {
		fmt.Fprintln(w, "\nPlacement Failure")
		for _, g := range sortedKeys(eval.Failed) {
			fmt.Fprintf(w, "Task Group %q: %s\n", g, eval.Failed[g])
		}
	}
	fmt.Fprintln(w, "\nAllocations")
	if len(st.Allocations) == 0 {
		fmt.Fprintln(w, "No allocations placed")
	} else {
		printAllocTable(w, st.Allocations, nil, false)
	}
	printRescheduling(w, j, st.Allocations, time.Now())
	if hidden > 0 {
		fmt.Fprintf(w, "\n%d allocation(s) of older versions or earlier runs not shown: strata job status -all-allocs %s\n", hidden, j.ID)
	}
}

func runJobScale(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "job scale")
	addr := addressFlag(fs, env)
	detach := fs.Bool("detach", false, "return as soon as the new count is registered")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the allocations to run")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 || len(pos) > 3 {
		return usageError("usage: strata job scale [-detach] JOB [GROUP] COUNT")
	}
	count, err := strconv.Atoi(pos[len(pos)-1])
	if err != nil || count < 0 {
		return usageError("job scale: count %q is not a number of allocations", pos[len(pos)-1])
	}
	id, group := pos[0], ""
	if len(pos) == 3 {
		group = pos[1]
	}
	c := client(*addr)
	resp, err := c.ScaleJob(ctx, id, group, count)
	if err != nil {
		return fmt.Errorf("scaling job %q: %w", id, err)
	}
	if !resp.Changed {
		fmt.Fprintf(env.Stdout, "==> Job %q is at count %d already (version %d)\n", id, count, resp.Version)
		return nil
	}
	fmt.Fprintf(env.Stdout, "==> Job %q scaled to %d: version %d, evaluation %s (in place, no deployment)\n", id, count, resp.Version, short(resp.EvalID))
	if *detach {
		return nil
	}
	rec, err := c.Job(ctx, id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return watchJob(ctx, env, c, rec.Job, resp.Version, resp.Index)
}

func runAllocStop(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "alloc stop")
	addr := addressFlag(fs, env)
	detach := fs.Bool("detach", false, "return once the stop is committed, without waiting for the replacement")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the replacement to run")
	arg, err := parseOne(fs, args, "usage: strata alloc stop [-detach] ALLOC")
	if err != nil {
		return err
	}
	c := client(*addr)
	a, err := resolveAlloc(ctx, c, arg)
	if err != nil {
		return err
	}
	r, err := c.StopAlloc(ctx, a.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "==> Allocation %s (%s) stopped; evaluation %s places its replacement\n", shortAlloc(a.ID), a.Name, short(r.EvalID))
	if *detach {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return watchReplacement(ctx, env, c, a, r.Index)
}

// watchReplacement follows a job's allocations until another allocation
// of the stopped one's name runs (exit 0), cannot be placed (exit 1), or
// ctx ends.
func watchReplacement(ctx context.Context, env *Env, c *api.Client, stopped *structs.Alloc, index uint64) error {
	for {
		r, idx, err := c.JobAllocs(ctx, stopped.JobID, index, 30*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("timed out waiting for the replacement of %s; see `strata status %s`", stopped.Name, stopped.JobID)}
			}
			return err
		}
		index = idx
		for _, a := range r.Allocations {
			if a.Name == stopped.Name && a.ID != stopped.ID && a.DesiredStatus == sched.DesiredRun && a.ClientStatus == sched.ClientRunning {
				fmt.Fprintf(env.Stdout, "==> Replacement %s runs on node %s\n", shortAlloc(a.ID), a.NodeName)
				return nil
			}
		}
		if e := r.LatestEval; e != nil && e.Status == structs.EvalBlocked && len(e.Failed) > 0 {
			return &exitError{code: 1, msg: fmt.Sprintf("the replacement of %s cannot be placed now: %s", stopped.Name, e.Failed[stopped.Group])}
		}
		if r.Stopped {
			return nil // the job was stopped meanwhile: nothing replaces it
		}
	}
}

func runAllocRestart(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "alloc restart")
	addr := addressFlag(fs, env)
	task := fs.String("task", "", "the task to restart (default: every running task; the TASK argument does the same)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError("usage: strata alloc restart [-task TASK] ALLOC [TASK]")
	}
	if *task == "" && len(pos) == 2 {
		*task = pos[1]
	}
	c := client(*addr)
	a, err := resolveAlloc(ctx, c, pos[0])
	if err != nil {
		return err
	}
	r, err := c.RestartAlloc(ctx, a.ID, *task)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "==> Restarted %s of allocation %s (%s) in place\n", taskList(r.Tasks), shortAlloc(a.ID), a.Name)
	return nil
}

func runAllocSignal(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "alloc signal")
	addr := addressFlag(fs, env)
	sig := fs.String("s", "SIGKILL", "the signal to send (a name like SIGHUP or HUP, or a number); a wasm task takes only SIGTERM, SIGINT, SIGQUIT and SIGKILL, which end it")
	task := fs.String("task", "", "the task to signal (default: every task; the TASK argument does the same)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError("usage: strata alloc signal [-s SIGNAL] [-task TASK] ALLOC [TASK]")
	}
	if *task == "" && len(pos) == 2 {
		*task = pos[1]
	}
	c := client(*addr)
	a, err := resolveAlloc(ctx, c, pos[0])
	if err != nil {
		return err
	}
	r, err := c.SignalAlloc(ctx, a.ID, *task, *sig)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "==> Sent %s to %s of allocation %s (%s)\n", *sig, taskList(r.Tasks), shortAlloc(a.ID), a.Name)
	return nil
}

func taskList(tasks []string) string {
	if len(tasks) == 1 {
		return fmt.Sprintf("task %q", tasks[0])
	}
	return "tasks " + strings.Join(tasks, ", ")
}

func runAllocStats(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "alloc stats")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	task := fs.String("task", "", "the task to measure (default: every task; the TASK argument does the same)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError("usage: strata alloc stats [-task TASK] [-json | -t TEMPLATE] ALLOC [TASK]")
	}
	if *task == "" && len(pos) == 2 {
		*task = pos[1]
	}
	c := client(*addr)
	a, err := resolveAlloc(ctx, c, pos[0])
	if err != nil {
		return err
	}
	st, err := c.AllocStats(ctx, a.ID, *task)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, st)
	}
	printAllocStats(env.Stdout, st)
	return nil
}

// printAllocStats shows what each task's driver measured; "-" is not
// measured (a wasm task has no cgroup: its instances and requests).
func printAllocStats(w io.Writer, st *structs.AllocStats) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "Task\tMemory\tMemory Limit\tCPU\tCPU Time\tInstances\tRequests\tError")
	for _, t := range st.Tasks {
		m := func(what, v string) string {
			if slices.Contains(t.Measured, what) {
				return v
			}
			return "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Task,
			m(structs.MeasuredMemory, mib(t.MemoryBytes)), m(structs.MeasuredMemory, mib(t.MemoryLimitBytes)),
			m(structs.MeasuredCPU, fmt.Sprintf("%.1f%%", t.CPUPercent)), m(structs.MeasuredCPU, time.Duration(t.CPUTotalNanos).Round(time.Millisecond).String()),
			m(structs.MeasuredInstances, strconv.Itoa(t.Instances)), m(structs.MeasuredRequests, strconv.FormatInt(t.Requests, 10)), orNone(t.Error))
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func runNodeEligibility(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "node eligibility")
	addr := addressFlag(fs, env)
	enable := fs.Bool("enable", false, "let the scheduler place new allocations on the node")
	disable := fs.Bool("disable", false, "place no new allocations on the node; what runs there stays")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *enable == *disable {
		return usageError("usage: strata node eligibility -enable NODE | -disable NODE")
	}
	n, err := client(*addr).NodeEligibility(ctx, pos[0], *enable)
	if err != nil {
		return err
	}
	word := "eligible"
	if !n.Eligible {
		word = "ineligible"
	}
	fmt.Fprintf(env.Stdout, "Node %s (%s) is %s for new allocations\n", n.Name, short(n.ID), word)
	return nil
}

func runServerMembers(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "server members")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("server members takes no arguments")
	}
	m, err := client(*addr).Members(ctx)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, m)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "ID\tRaft Address\tHTTP Address\tAgent Address\tStatus\tLeader\tVoter\tApplied Index")
	for _, s := range m.Members {
		idx := "-"
		if s.LastIndex > 0 {
			idx = strconv.FormatUint(s.LastIndex, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%t\t%s\n", s.ID, s.RaftAddr, dash(s.HTTPAddr), dash(s.AgentAddr), s.Status, s.Leader, s.Voter, idx)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runSystemGC(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "system gc")
	addr := addressFlag(fs, env)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("system gc takes no arguments")
	}
	r, err := client(*addr).SystemGC(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "==> Garbage collected %d allocation(s), %d evaluation(s), %d deployment(s), %d job(s), %d job version(s)\n",
		r.Allocs, r.Evals, r.Deployments, r.Jobs, r.Versions)
	return nil
}

func runModuleDelete(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "module delete")
	addr := addressFlag(fs, env)
	arg, err := parseOne(fs, args, "usage: strata module delete NAME@VERSION")
	if err != nil {
		return err
	}
	name, version, digest, err := spec.ParseModuleRef(arg)
	if err != nil || digest != "" {
		return usageError("module delete takes NAME@VERSION, got %q", arg)
	}
	if err := client(*addr).DeleteModule(ctx, name, version); err != nil {
		return fmt.Errorf("deleting %s@%s: %w", name, version, err)
	}
	fmt.Fprintf(env.Stdout, "==> Module %s@%s deleted; every server deletes its bytes unless another version has them\n", name, version)
	return nil
}
