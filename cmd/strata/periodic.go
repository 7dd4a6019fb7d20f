package main

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-run/strata/spec"
)

// runJobPeriodicForce launches a child of a periodic job now (Nomad's
// `job periodic force`).
func runJobPeriodicForce(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "job periodic force")
	addr := addressFlag(fs, env)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("usage: strata job periodic force JOB")
	}
	resp, err := client(*addr).ForcePeriodic(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("forcing periodic job %q: %w", pos[0], err)
	}
	if !resp.Launched {
		fmt.Fprintf(env.Stdout, "==> Job %q launched %q already this second\n", pos[0], resp.JobID)
		return nil
	}
	fmt.Fprintf(env.Stdout, "==> Job %q launched %q, evaluation %s\n", pos[0], resp.JobID, short(resp.EvalID))
	return nil
}

// printNextLaunch tells when a periodic job just registered launches
// next: it is never placed itself, so there is nothing to follow.
func printNextLaunch(env *Env, job *spec.Job) {
	if !job.Periodic.On() {
		fmt.Fprintf(env.Stdout, "==> Job %q is periodic and disabled (enabled = false): it launches nothing\n", job.ID)
		return
	}
	sch, err := job.Periodic.Schedule()
	if err != nil { // validated before submission
		return
	}
	if next := sch.Next(time.Now()); !next.IsZero() {
		fmt.Fprintf(env.Stdout, "==> Job %q is periodic: its next child is launched at %s (%s)\n", job.ID, next.Format(time.RFC3339), spec.PeriodicChildID(job.ID, next))
	}
}
