package edge

import (
	"testing"
	"time"
)

func TestDeployHealth(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ok := healthInput{tasksRunning: true, checksPassing: true}
	failingCheck := healthInput{tasksRunning: true}
	type obs struct {
		at   time.Duration
		in   healthInput
		want healthResult
	}
	for _, tt := range []struct {
		name   string
		checks bool
		steps  []obs
		// next is when the tracker asks to be stepped after the last observation.
		next time.Duration
	}{
		{"healthy after min_healthy_time of passing checks", true, []obs{
			{0, ok, healthPending}, {9 * time.Second, ok, healthPending}, {10 * time.Second, ok, healthHealthy},
		}, -1},
		{"a failing check restarts the streak", true, []obs{
			{0, ok, healthPending}, {8 * time.Second, failingCheck, healthPending},
			{9 * time.Second, ok, healthPending}, {18 * time.Second, ok, healthPending}, {19 * time.Second, ok, healthHealthy},
		}, -1},
		{"checks never pass: unhealthy at the deadline", true, []obs{
			{0, failingCheck, healthPending}, {59 * time.Second, failingCheck, healthPending}, {time.Minute, failingCheck, healthUnhealthy},
		}, -1},
		{"task_states ignores checks", false, []obs{
			{0, failingCheck, healthPending}, {10 * time.Second, failingCheck, healthHealthy},
		}, -1},
		{"a failed task is unhealthy at once", true, []obs{
			{0, ok, healthPending}, {time.Second, healthInput{taskFailed: true}, healthUnhealthy},
		}, -1},
		{"a restart (task not running) restarts the streak", false, []obs{
			{0, ok, healthPending}, {5 * time.Second, healthInput{}, healthPending}, {6 * time.Second, ok, healthPending},
		}, 16 * time.Second},
		{"passing: wakes at the end of min_healthy_time", true, []obs{{2 * time.Second, ok, healthPending}}, 12 * time.Second},
		{"not passing: wakes at the deadline", true, []obs{{2 * time.Second, failingCheck, healthPending}}, time.Minute},
		{"the deadline comes before min_healthy_time ends", true, []obs{{55 * time.Second, ok, healthPending}}, time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newDeployHealth(tt.checks, 10*time.Second, time.Minute, t0)
			for _, o := range tt.steps {
				got, decided := h.observe(t0.Add(o.at), o.in)
				if got != o.want || decided != (o.want != healthPending) {
					t.Fatalf("at %s: %v (decided %v), want %v", o.at, got, decided, o.want)
				}
			}
			if tt.next >= 0 {
				if got := h.next(); !got.Equal(t0.Add(tt.next)) {
					t.Fatalf("next = %s, want %s", got.Sub(t0), tt.next)
				}
			} else if !h.next().IsZero() {
				t.Fatalf("decided, yet next = %s", h.next().Sub(t0))
			}
			// Decided results never change.
			if h.result != healthPending {
				r := h.result
				if got, decided := h.observe(t0.Add(time.Hour), healthInput{taskFailed: true}); got != r || decided {
					t.Fatalf("a decided %v changed to %v", r, got)
				}
			}
		})
	}
}
