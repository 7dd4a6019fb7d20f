package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/strata-run/strata/spec"
)

// runJobPeriodicForce launches a child of a periodic job now (Nomad's
// `job periodic force`).
func runJobPeriodicForce(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "job periodic force")
	addr := addressFlag(fs, env)
	arg, err := parseOne(fs, args, "usage: strata job periodic force JOB")
	if err != nil {
		return err
	}
	resp, err := client(*addr).ForcePeriodic(ctx, arg)
	if err != nil {
		return fmt.Errorf("forcing periodic job %q: %w", arg, err)
	}
	if !resp.Launched {
		fmt.Fprintf(env.Stdout, "==> Job %q launched %q already this second\n", arg, resp.JobID)
		return nil
	}
	fmt.Fprintf(env.Stdout, "==> Job %q launched %q, evaluation %s\n", arg, resp.JobID, short(resp.EvalID))
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

// runJobDispatch launches a child of a parameterized job with meta and a
// payload read from a file, or stdin for "-" (Nomad's `job dispatch`).
func runJobDispatch(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "job dispatch")
	addr := addressFlag(fs, env)
	var metas multiFlag
	fs.Var(&metas, "meta", "KEY=VALUE of the child's meta (repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError("usage: strata job dispatch [-meta KEY=VALUE]... JOB [PAYLOAD_FILE|-]")
	}
	meta := map[string]string{}
	for _, kv := range metas {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageError("job dispatch: -meta %q is not KEY=VALUE", kv)
		}
		meta[k] = v
	}
	var payload []byte
	if len(pos) == 2 {
		if payload, err = readPayload(pos[1]); err != nil {
			return err
		}
	}
	resp, err := client(*addr).DispatchJob(ctx, pos[0], meta, payload)
	if err != nil {
		return fmt.Errorf("dispatching job %q: %w", pos[0], err)
	}
	fmt.Fprintf(env.Stdout, "==> Job %q dispatched %q, evaluation %s\n", pos[0], resp.DispatchedJobID, short(resp.EvalID))
	return nil
}

// readPayload reads a dispatch payload from a file or stdin ("-"),
// refusing one over the servers' limit before sending it.
func readPayload(name string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("job dispatch: payload: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, spec.MaxPayloadSize+1))
	if err != nil {
		return nil, fmt.Errorf("job dispatch: payload %s: %w", name, err)
	}
	if len(b) > spec.MaxPayloadSize {
		return nil, fmt.Errorf("job dispatch: payload %s is over the limit of %d bytes", name, spec.MaxPayloadSize)
	}
	return b, nil
}
