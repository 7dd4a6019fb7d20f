package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// resolveAlloc finds the allocation whose ID is id or starts with it.
func resolveAlloc(ctx context.Context, c *api.Client, id string) (*structs.Alloc, error) {
	allocs, err := c.Allocs(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, a := range allocs {
		if a.ID == id {
			return a, nil
		}
	}
	switch len(allocs) {
	case 0:
		return nil, &exitError{code: 1, msg: fmt.Sprintf("no allocation with ID or ID prefix %q, or ending in it (see `strata status JOB` for a job's allocations)", id)}
	case 1:
		return allocs[0], nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ID prefix %q matches %d allocations; give more of the ID:\n", id, len(allocs))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tName\tNode\tStatus")
	for _, a := range allocs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", a.ID, a.Name, a.NodeName, a.ClientStatus)
	}
	tw.Flush()
	return nil, &exitError{code: 1, msg: strings.TrimRight(b.String(), "\n")}
}

func runAllocStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "alloc status")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	arg, err := parseOne(fs, args, "usage: strata alloc status ALLOC (an ID or a unique prefix of one)")
	if err != nil {
		return err
	}
	c := client(*addr)
	a, err := resolveAlloc(ctx, c, arg)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, a)
	}
	printAllocStatus(env.Stdout, a, env.location())
	// Rescheduling reads the group's policy: from the job as it is now
	// (a purged job has none to show).
	if rec, err := c.Job(ctx, a.JobID); err == nil && rec != nil {
		printAllocReschedule(env.Stdout, a, reschedulePolicy(rec.Job, a), time.Now())
	} else if !isNotFound(err) {
		return err
	}
	return nil
}

// printAllocReschedule writes the rescheduling rows after the task states.
func printAllocReschedule(w io.Writer, a *structs.Alloc, policy *spec.Reschedule, now time.Time) {
	rows := rescheduleRows(a, policy, now)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nRescheduling")
	kv := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, row := range rows {
		fmt.Fprintf(kv, "%s\t= %s\n", row[0], row[1])
	}
	kv.Flush()
}

// printAllocStatus writes Nomad's `alloc status` layout: the allocation,
// then each task's state and its recent events, newest first.
func printAllocStatus(w io.Writer, a *structs.Alloc, loc *time.Location) {
	orNone := func(s string) string {
		if s == "" {
			return "<none>"
		}
		return s
	}
	kv := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, row := range [][2]string{
		{"ID", a.ID},
		{"Name", a.Name},
		{"Node ID", short(a.NodeID)},
		{"Node Name", a.NodeName},
		{"Job ID", a.JobID},
		{"Job Version", fmt.Sprint(a.JobVersion)},
		{"Task Group", a.Group},
		{"Desired Status", a.DesiredStatus},
		{"Desired Description", orNone(a.DesiredDesc)},
		{"Client Status", a.ClientStatus},
		{"Client Description", orNone(a.ClientDescription)},
	} {
		fmt.Fprintf(kv, "%s\t= %s\n", row[0], row[1])
	}
	kv.Flush()
	if len(a.TaskStates) == 0 {
		fmt.Fprintln(w, "\nNo task states reported yet.")
		return
	}
	names := make([]string, 0, len(a.TaskStates))
	for n := range a.TaskStates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ts := a.TaskStates[n]
		fmt.Fprintf(w, "\nTask %q is %q\n", n, ts.State)
		kv := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
		fmt.Fprintf(kv, "Restarts\t= %d\n", ts.Restarts)
		fmt.Fprintf(kv, "Failed\t= %t\n", ts.Failed)
		fmt.Fprintf(kv, "Started At\t= %s\n", showTime(ts.StartedAt, loc))
		fmt.Fprintf(kv, "Finished At\t= %s\n", showTime(ts.FinishedAt, loc))
		kv.Flush()
		fmt.Fprintln(w, "\nRecent Events:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Time\tType\tDescription")
		for i := len(ts.Events) - 1; i >= 0; i-- {
			e := ts.Events[i]
			fmt.Fprintf(tw, "%s\t%s\t%s\n", showTime(e.Time, loc), e.Type, e.Message)
		}
		tw.Flush()
	}
}

func showTime(unixNano int64, loc *time.Location) string {
	if unixNano == 0 {
		return "N/A"
	}
	return time.Unix(0, unixNano).In(loc).Format(time.RFC3339)
}

func runAllocLogs(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "alloc logs")
	addr := addressFlag(fs, env)
	follow := fs.Bool("f", false, "follow: keep printing what the task writes, until interrupted")
	stderr := fs.Bool("stderr", false, "show the task's stderr instead of its stdout")
	tail := fs.Int("tail", 0, "start this many lines before the end (0: the whole current log file)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 || *tail < 0 {
		return usageError("usage: strata alloc logs [-f] [-stderr] [-tail N] ALLOC [TASK]")
	}
	c := client(*addr)
	a, err := resolveAlloc(ctx, c, pos[0])
	if err != nil {
		return err
	}
	req := structs.LogRequest{AllocID: a.ID, Type: "stdout", Follow: *follow, TailLines: *tail}
	if *stderr {
		req.Type = "stderr"
	}
	if len(pos) == 2 {
		req.Task = pos[1]
	}
	rc, err := c.AllocLogs(ctx, req)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(env.Stdout, rc); err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("log stream of allocation %s ended: %w", shortAlloc(a.ID), err)
	}
	return nil
}
