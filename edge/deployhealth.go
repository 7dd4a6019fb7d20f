package edge

import (
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// deployHealth is an allocation's deployment health as its agent decides
// it (Nomad's allocation health tracker), a pure state machine stepped
// with the time of each observation:
//
//   - healthy once everything has passed without interruption for
//     minHealthy: every task running and, in "checks" mode, every check of
//     its services passing (a task without checks counts as passing);
//   - unhealthy when a task fails for good, or when the deadline
//     (healthy_deadline after the allocation started) passes first.
//
// A restart or a failing check starts the minHealthy period again. Once
// decided the result never changes: it is the allocation's health for its
// deployment, reported with the time it was observed.
type deployHealth struct {
	checks     bool // "checks" mode: checks count, not just task states
	minHealthy time.Duration
	deadline   time.Time // healthy_deadline after the start

	since  time.Time // start of the current passing streak; zero: not passing
	result healthResult
	at     time.Time // when result was decided
}

type healthResult uint8

const (
	healthPending healthResult = iota
	healthHealthy
	healthUnhealthy
)

func (h healthResult) String() string {
	switch h {
	case healthHealthy:
		return wire.Healthy
	case healthUnhealthy:
		return wire.Unhealthy
	}
	return "pending"
}

func newDeployHealth(checkMode bool, minHealthy, healthyDeadline time.Duration, start time.Time) *deployHealth {
	return &deployHealth{checks: checkMode, minHealthy: minHealthy, deadline: start.Add(healthyDeadline)}
}

// healthInput is what the runner knows of the allocation at one moment.
type healthInput struct {
	tasksRunning  bool // every main task is running
	taskFailed    bool // a task failed and will not restart
	checksPassing bool // every check of the allocation's services passes
}

// observe steps the tracker at now and returns its result and whether it
// was decided by this observation.
func (h *deployHealth) observe(now time.Time, in healthInput) (healthResult, bool) {
	if h.result != healthPending {
		return h.result, false
	}
	passing := in.tasksRunning && (!h.checks || in.checksPassing)
	switch {
	case in.taskFailed:
		return h.decide(healthUnhealthy, now), true
	case !passing:
		h.since = time.Time{}
	case h.since.IsZero():
		h.since = now
	}
	if !h.since.IsZero() && now.Sub(h.since) >= h.minHealthy {
		return h.decide(healthHealthy, now), true
	}
	if !now.Before(h.deadline) {
		return h.decide(healthUnhealthy, now), true
	}
	return healthPending, false
}

func (h *deployHealth) decide(r healthResult, now time.Time) healthResult {
	h.result, h.at = r, now
	return r
}

// next is when observe must run again although nothing changed: the end
// of the current passing streak's minHealthy, else the deadline; zero
// once decided.
func (h *deployHealth) next() time.Time {
	if h.result != healthPending {
		return time.Time{}
	}
	if !h.since.IsZero() {
		if t := h.since.Add(h.minHealthy); t.Before(h.deadline) {
			return t
		}
	}
	return h.deadline
}
