package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// RolloutConfig configures `strata-bench rollout`.
type RolloutConfig struct {
	Strata      string // the strata binary, run as `strata server`
	Agents      int    // simulated agents
	Count       int    // the job's allocations
	MaxParallel int    // update.max_parallel
	Tiny        string // the job's module
	Out         io.Writer
}

// Rollout runs one `strata server` and Agents simulated agents (which
// report every allocation healthy as soon as it runs), deploys a job of
// Count allocations, then a new version of it, and measures the rolling
// update: its time, the batches it took (distinct evaluations among the
// new version's placements) against the fewest possible
// (ceil(Count/MaxParallel)), and the server's CPU while it ran.
func Rollout(ctx context.Context, cfg RolloutConfig) error {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	tiny, err := os.ReadFile(cfg.Tiny)
	if err != nil {
		return fmt.Errorf("the job's module: %w", err)
	}
	dir, err := os.MkdirTemp("", "strata-bench-rollout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := startServerProcess(ctx, cfg.Strata, dir)
	if err != nil {
		return err
	}
	defer srv.stop()
	f, err := startFleet(ctx, srv.link, cfg.Agents, "sim", false)
	if err != nil {
		return err
	}
	defer f.stop()
	fmt.Fprintf(cfg.Out, "server pid %d; %d simulated agents registered, %s\n", srv.pid, cfg.Agents, loadavg())
	var before procSample
	r, err := rollingUpdate(ctx, api.NewClient("http://"+srv.httpAddr), cfg, tiny, func() { before, _ = readProc(srv.pid) })
	if err != nil {
		return err
	}
	after, err := readProc(srv.pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "version 0: %d allocations placed and healthy in %s\n", cfg.Count, r.first.Round(time.Millisecond))
	fmt.Fprintf(cfg.Out, "version 1 rolled out in %s: %d allocations placed in %d batches (fewest possible: %d at max_parallel %d), %d running; server CPU %.1f%% of one core, %s\n",
		r.took.Round(time.Millisecond), r.placed, r.batches, r.fewest, cfg.MaxParallel, r.live, after.cpuPercent(before), loadavg())
	out := &report{w: cfg.Out}
	out.set("batches", "%d", r.batches)
	out.set("fewest_batches", "%d", r.fewest)
	out.set("server_cpu_pct", "%.1f", after.cpuPercent(before))
	out.set("rollout_ms", "%d", r.took.Milliseconds())
	out.flush()
	return nil
}

// rolloutResult is what rollingUpdate measured.
type rolloutResult struct {
	first, took                   time.Duration // version 0 healthy; version 1 rolled out
	placed, live, batches, fewest int
}

// rollingUpdate deploys the job's version 0 and then version 1 on the server
// behind c (whose agents report health), calling mark between the two.
func rollingUpdate(ctx context.Context, c *api.Client, cfg RolloutConfig, module []byte, mark func()) (*rolloutResult, error) {
	if _, err := c.PushModule(ctx, "bench-rollout", "1.0.0", module); err != nil {
		return nil, fmt.Errorf("push module: %w", err)
	}
	job := func(version string) *spec.Job {
		return &spec.Job{ID: "rollout", Type: "service", Priority: 50, Groups: []*spec.Group{{
			Name: "g", Count: cfg.Count,
			Update: &spec.Update{MaxParallel: cfg.MaxParallel, Stagger: spec.Duration(time.Millisecond),
				HealthyDeadline: spec.Duration(5 * time.Minute), ProgressDeadline: spec.Duration(10 * time.Minute), HealthCheck: spec.HealthChecks},
			Tasks: []*spec.Task{{Name: "t", Driver: "wasm", Config: spec.TaskConfig{Module: "bench-rollout@1.0.0", Mode: spec.ModeCommand},
				Env: map[string]string{"VERSION": version}, Resources: spec.Resources{CPU: 10, MemoryMB: 16}}},
		}}}
	}
	r := &rolloutResult{fewest: (cfg.Count + cfg.MaxParallel - 1) / cfg.MaxParallel}
	t0 := time.Now()
	first, err := c.RegisterJob(ctx, job("1"))
	if err != nil {
		return nil, fmt.Errorf("register job: %w", err)
	}
	if _, err := waitDeployment(ctx, c, first.DeploymentID, first.Index); err != nil {
		return nil, err
	}
	r.first = time.Since(t0)
	mark()
	t1 := time.Now()
	second, err := c.RegisterJob(ctx, job("2"))
	if err != nil {
		return nil, fmt.Errorf("register version 1: %w", err)
	}
	if _, err := waitDeployment(ctx, c, second.DeploymentID, second.Index); err != nil {
		return nil, err
	}
	r.took = time.Since(t1)
	// The evaluation that follows the last health report stops the last
	// replaced allocations: wait for it (blocking queries, bounded).
	var index uint64
	for range 100 {
		resp, idx, err := c.JobAllocs(ctx, "rollout", index, 10*time.Second)
		if err != nil {
			return nil, err
		}
		index = max(index, idx)
		evals := map[string]bool{}
		r.placed, r.live = 0, 0
		for _, a := range resp.Allocations {
			if a.JobVersion == 1 {
				r.placed++
				evals[a.EvalID] = true
			}
			if a.DesiredStatus == "run" {
				r.live++
			}
		}
		r.batches = len(evals)
		if r.live == cfg.Count {
			break
		}
	}
	if r.placed != cfg.Count || r.live != cfg.Count {
		return r, fmt.Errorf("placed %d and running %d of version 1; want %d", r.placed, r.live, cfg.Count)
	}
	return r, nil
}

// waitDeployment follows a deployment with blocking queries until it
// ends; an unsuccessful end is an error.
func waitDeployment(ctx context.Context, c *api.Client, id string, index uint64) (*structs.Deployment, error) {
	if id == "" {
		return nil, fmt.Errorf("the registration started no deployment")
	}
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		d, idx, err := c.Deployment(ctx, id, index, 30*time.Second)
		if err != nil {
			return nil, err
		}
		index = max(index, idx)
		switch d.Status {
		case structs.DeploymentSuccessful:
			return d, nil
		case structs.DeploymentFailed, structs.DeploymentCancelled:
			return nil, fmt.Errorf("deployment %s %s: %s", id, d.Status, d.StatusDescription)
		}
	}
	return nil, fmt.Errorf("deployment %s did not end within 30m", id)
}
