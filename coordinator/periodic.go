package coordinator

import (
	"context"
	"log/slog"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// periodicLauncher is the leader's part that launches periodic jobs'
// children: one goroutine (Run) with one timer, set to the next tick of
// any periodic job, and woken early when the state changes (kick).
//
// Every decision is read from the state: a job's next tick is the first
// after its last launched one (JobRecord.PeriodicLast) or its submission,
// so a new leader launches a tick missed during the failover at once, and
// only the latest of several missed ticks (once); the launch command is
// keyed by job and tick and idempotent, so a tick proposed twice
// launches one child.
type periodicLauncher struct {
	store *state.Store
	apply applyFunc
	now   func() time.Time
	log   *slog.Logger
	wake  chan struct{}
}

// periodicIdle is how long the launcher sleeps with no periodic job; a
// kick wakes it earlier. periodicRetry is the wait after a failed launch.
const (
	periodicIdle  = time.Hour
	periodicRetry = time.Second
)

func newPeriodicLauncher(store *state.Store, apply applyFunc, now func() time.Time, log *slog.Logger) *periodicLauncher {
	return &periodicLauncher{store: store, apply: apply, now: now, log: log, wake: make(chan struct{}, 1)}
}

// kick tells the launcher the state changed (a job registered or
// stopped, an allocation finished); it never blocks.
func (p *periodicLauncher) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run launches children until ctx ends (leadership lost).
func (p *periodicLauncher) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-p.wake:
		}
		timer.Reset(p.step(ctx))
	}
}

// step launches every periodic job's due tick and returns how long to
// wait for the next one.
func (p *periodicLauncher) step(ctx context.Context) time.Duration {
	jobs, err := p.store.Jobs()
	if err != nil {
		p.log.Error("reading jobs", "err", err)
		return periodicRetry
	}
	wait := periodicIdle
	for _, rec := range jobs {
		if ctx.Err() != nil {
			return wait
		}
		if rec.Stopped || rec.Job == nil || !rec.Job.Periodic.On() {
			continue
		}
		sch, err := rec.Job.Periodic.Schedule()
		if err != nil { // validated at registration: a job from an older version
			p.log.Error("periodic job", "job", rec.Job.ID, "err", err)
			continue
		}
		now := p.now()
		from := max(rec.PeriodicLast, time.Unix(0, rec.SubmitTime).Unix())
		if tick := latestTick(sch, time.Unix(from, 0), now); !tick.IsZero() {
			if err := p.launch(rec, tick, jobs); err != nil {
				p.log.Error("launching periodic job", "job", rec.Job.ID, "tick", tick.Unix(), "err", err)
				wait = min(wait, periodicRetry)
				continue
			}
		}
		if next := sch.Next(now); !next.IsZero() {
			wait = min(wait, max(next.Sub(now), 0))
		}
	}
	return wait
}

// launch proposes the launch of rec's child for tick, skipped while a
// child runs if the job prohibits overlap.
func (p *periodicLauncher) launch(rec *structs.JobRecord, tick time.Time, jobs []*structs.JobRecord) error {
	skip := rec.Job.Periodic.ProhibitOverlap && p.childRunning(rec.Job.ID, jobs)
	c := &state.PeriodicLaunch{JobID: rec.Job.ID, Tick: tick.Unix(), Skip: skip, EvalID: newEvalID(), SubmitTime: p.now().UnixNano()}
	res, _, err := p.apply(c)
	if err != nil {
		return err
	}
	if r, ok := res.(*state.PeriodicLaunchResult); ok && r.Launched {
		p.log.Info("launched periodic job", "job", rec.Job.ID, "child", r.ChildID)
	} else if skip {
		p.log.Info("skipped a periodic tick: a child still runs (prohibit_overlap)", "job", rec.Job.ID, "tick", tick.Unix())
	}
	return nil
}

// childRunning reports whether a child of parent is pending or running.
func (p *periodicLauncher) childRunning(parent string, jobs []*structs.JobRecord) bool {
	for _, rec := range jobs {
		if rec.Job == nil || rec.Job.ParentID != parent || rec.Stopped {
			continue
		}
		allocs, err := p.store.JobAllocs(rec.Job.ID)
		if err != nil {
			return true // cannot tell: do not overlap
		}
		var latest *structs.Eval
		if rec.LatestEvalID != "" {
			latest, _ = p.store.Eval(rec.LatestEvalID)
		}
		switch jobStatusOf(rec, allocs, latest) {
		case jobPending, jobRunning:
			return true
		}
	}
	return false
}

// latestTick is the latest tick of s after from and at or before now;
// zero if there is none. It looks back through windows of growing size
// from now, so that a schedule of every second missed for a year costs a
// bounded number of steps.
func latestTick(s *spec.Schedule, from, now time.Time) time.Time {
	first := s.Next(from)
	if first.IsZero() || first.After(now) {
		return time.Time{}
	}
	const steps = 4096
	for _, w := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 366 * 24 * time.Hour, 10 * 366 * 24 * time.Hour} {
		start := now.Add(-w)
		if start.Before(from) {
			start = from
		}
		var last time.Time
		for t, i := s.Next(start), 0; !t.IsZero() && !t.After(now) && i < steps; t, i = s.Next(t), i+1 {
			last = t
		}
		if !last.IsZero() {
			return last
		}
	}
	return first
}
