package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// The rescheduling rows of `alloc status` and the section of `job
// status`: attempts used, when the next one is due, or why none is.
func TestRescheduleOutput(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	batch := &spec.Reschedule{Attempts: 1, Interval: spec.Duration(24 * time.Hour), Delay: spec.Duration(30 * time.Second), DelayFunction: spec.DelayConstant}
	job := &spec.Job{ID: "j", Type: "batch", Groups: []*spec.Group{{Name: "g", Count: 2, Reschedule: batch}}}
	first := &structs.Alloc{Allocation: sched.Allocation{ID: "aaaaaaaa-1111", Name: "j.g[0]", Group: "g",
		DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientFailed, FinishedAt: now.Add(-5 * time.Second).UnixNano(), FollowupEvalID: "f"}}
	second := &structs.Alloc{Allocation: sched.Allocation{ID: "bbbbbbbb-2222", Name: "j.g[1]", Group: "g",
		DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientFailed, FinishedAt: now.UnixNano(), PreviousAllocation: "cccccccc-3333",
		RescheduleTracker: &sched.RescheduleTracker{Events: []sched.RescheduleEvent{{RescheduleTime: now.Add(-time.Minute).UnixNano(), PrevAllocID: "cccccccc-3333", Delay: 30 * time.Second}}}}}

	var b bytes.Buffer
	printAllocReschedule(&b, first, batch, now)
	for _, want := range []string{"Reschedule Attempts = 0/1", "Next Reschedule     = in 25s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("alloc status of a failure waiting for its reschedule lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printAllocReschedule(&b, second, batch, now)
	for _, want := range []string{"Previous Allocation = cccccccc-3333", "Reschedule Attempts = 1/1",
		"Next Reschedule     = none: no more reschedule attempts: 1/1 within 24h0m0s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("alloc status of a failure out of attempts lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	running := &structs.Alloc{Allocation: sched.Allocation{ID: "x", Group: "g", DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientRunning}}
	printAllocReschedule(&b, running, batch, now)
	if b.Len() != 0 {
		t.Errorf("a running allocation never rescheduled shows rescheduling:\n%s", b.String())
	}

	b.Reset()
	printRescheduling(&b, job, []*structs.Alloc{first, second, running}, now)
	for _, want := range []string{"Rescheduling",
		"Allocation aaa-1111 (j.g[0]) failed: next reschedule in 25s (reschedule attempts 0/1)",
		"Allocation bbb-2222 (j.g[1]) failed: not rescheduled: no more reschedule attempts: 1/1 within 24h0m0s (reschedule attempts 1/1)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("job status lacks %q:\n%s", want, b.String())
		}
	}
}
