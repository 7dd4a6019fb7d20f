package edge

import (
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// restartTracker decides, after each failure of a task, whether and when
// to restart it, with Nomad's semantics: at most Attempts restarts within
// Interval, each after Delay; once exhausted, mode "fail" gives up and
// mode "delay" waits for the interval to end and starts counting again.
// It is a pure state machine: the caller passes the time.
type restartTracker struct {
	policy  *wire.RestartPolicy
	start   time.Time // start of the current interval
	count   int       // restarts in the current interval
	started bool
}

func newRestartTracker(p *wire.RestartPolicy) *restartTracker {
	return &restartTracker{policy: p}
}

// next is called after a failure at now. It returns the delay before the
// restart, or ok=false when the task must not be restarted.
func (t *restartTracker) next(now time.Time) (delay time.Duration, ok bool) {
	interval := t.policy.Interval
	if !t.started || (interval > 0 && now.Sub(t.start) >= interval) {
		t.started, t.start, t.count = true, now, 0
	}
	if t.count < t.policy.Attempts {
		t.count++
		return t.policy.Delay, true
	}
	if t.policy.Mode == "delay" {
		// Wait out the rest of the interval, then a fresh interval begins.
		wait := t.start.Add(interval).Sub(now)
		t.start, t.count = t.start.Add(interval), 0
		if wait < t.policy.Delay {
			wait = t.policy.Delay
		}
		return wait, true
	}
	return 0, false
}
