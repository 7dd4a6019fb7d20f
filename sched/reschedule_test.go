package sched

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/spec"
)

var (
	batchDefault   = &spec.Reschedule{Attempts: 1, Interval: spec.Duration(24 * time.Hour), Delay: spec.Duration(5 * time.Second), DelayFunction: spec.DelayConstant}
	serviceDefault = &spec.Reschedule{Delay: spec.Duration(30 * time.Second), DelayFunction: spec.DelayExponential, MaxDelay: spec.Duration(time.Hour), Unlimited: true}
)

// t0 is an arbitrary evaluation time.
const t0 = int64(1_700_000_000) * int64(time.Second)

func sec(n int) int64 { return int64(n) * int64(time.Second) }

// tracker is a reschedule history with the given delays, the last one
// placed at last.
func tracker(last int64, delays ...time.Duration) *RescheduleTracker {
	t := &RescheduleTracker{}
	for i, d := range delays {
		t.Events = append(t.Events, RescheduleEvent{RescheduleTime: last - sec(len(delays)-1-i), PrevAllocID: fmt.Sprint("p", i), Delay: d})
	}
	return t
}

func TestNextDelay(t *testing.T) {
	s := time.Second
	exp := &spec.Reschedule{Delay: spec.Duration(5 * s), DelayFunction: spec.DelayExponential, MaxDelay: spec.Duration(60 * s), Unlimited: true}
	fib := &spec.Reschedule{Delay: spec.Duration(5 * s), DelayFunction: spec.DelayFibonacci, MaxDelay: spec.Duration(60 * s), Unlimited: true}
	constant := &spec.Reschedule{Delay: spec.Duration(5 * s), DelayFunction: spec.DelayConstant, Unlimited: true}
	tests := []struct {
		name     string
		policy   *spec.Reschedule
		tracker  *RescheduleTracker
		failedAt int64
		want     time.Duration
	}{
		{"first failure waits the delay", exp, nil, t0, 5 * s},
		{"constant stays", constant, tracker(t0, 5*s, 5*s), t0 + sec(1), 5 * s},
		{"exponential doubles", exp, tracker(t0, 5*s), t0 + sec(1), 10 * s},
		{"exponential doubles again", exp, tracker(t0, 5*s, 10*s, 20*s), t0 + sec(1), 40 * s},
		{"exponential capped at max_delay", exp, tracker(t0, 5*s, 10*s, 20*s, 40*s), t0 + sec(1), 60 * s},
		{"capped series resets after a long run", exp, tracker(t0, 40*s, 60*s), t0 + sec(61), 5 * s},
		{"fibonacci second is the first", fib, tracker(t0, 5*s), t0 + sec(1), 5 * s},
		{"fibonacci adds the last two", fib, tracker(t0, 5*s, 5*s, 10*s), t0 + sec(1), 15 * s},
		{"fibonacci capped", fib, tracker(t0, 30*s, 50*s), t0 + sec(1), 60 * s},
		{"fibonacci starts again after a reset", fib, tracker(t0, 60*s, 5*s), t0 + sec(1), 5 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextDelay(tt.policy, tt.tracker, tt.failedAt); got != tt.want {
				t.Errorf("nextDelay = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRescheduleStatus(t *testing.T) {
	failed := func(f func(*Allocation)) *Allocation {
		a := &Allocation{ID: "a", ClientStatus: ClientFailed, DesiredStatus: DesiredRun, FinishedAt: t0}
		if f != nil {
			f(a)
		}
		return a
	}
	off := &spec.Reschedule{Attempts: 0, Delay: spec.Duration(5 * time.Second), DelayFunction: spec.DelayConstant}
	tests := []struct {
		name      string
		policy    *spec.Reschedule
		alloc     *Allocation
		eligible  bool
		next      int64
		attempted int
		reason    string
	}{
		{"batch first failure", batchDefault, failed(nil), true, t0 + sec(5), 0, ""},
		{"batch second failure within a day", batchDefault,
			failed(func(a *Allocation) { a.RescheduleTracker = tracker(t0-sec(10), 5*time.Second) }),
			false, 0, 1, "no more reschedule attempts: 1/1 within 24h0m0s"},
		{"batch failure a day after the last reschedule", batchDefault,
			failed(func(a *Allocation) { a.RescheduleTracker = tracker(t0-sec(25*3600), 5*time.Second) }),
			true, t0 + sec(5), 0, ""},
		{"service unlimited", serviceDefault,
			failed(func(a *Allocation) { a.RescheduleTracker = tracker(t0, 30*time.Second, 60*time.Second) }),
			true, t0 + sec(120), 2, ""},
		{"rescheduling off", off, failed(nil), false, 0, 0, "rescheduling is off"},
		{"no policy", nil, failed(nil), false, 0, 0, "rescheduling is off"},
		{"already replaced", serviceDefault, failed(func(a *Allocation) { a.NextAllocation = "b" }), false, 0, 0, "replaced by b"},
		{"running", serviceDefault, failed(func(a *Allocation) { a.ClientStatus = ClientRunning }), false, 0, 0, "not failed"},
		{"unknown failure time counts from now", batchDefault, failed(func(a *Allocation) { a.FinishedAt = 0 }), true, t0 + sec(7), 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := RescheduleStatus(tt.policy, tt.alloc, t0+sec(2))
			if info.Eligible != tt.eligible || info.NextTime != tt.next || info.Attempted != tt.attempted || !strings.HasPrefix(info.Reason, tt.reason) {
				t.Errorf("got %+v, want eligible %v next %d attempted %d reason %q", info, tt.eligible, tt.next, tt.attempted, tt.reason)
			}
		})
	}
}

// TestRescheduleDecisions checks what one evaluation does with failed
// allocations: replace now, ask for a follow-up evaluation, or leave
// them failed.
func TestRescheduleDecisions(t *testing.T) {
	job := func(typ string, count int, policy *spec.Reschedule) *spec.Job {
		j := newJob("j", newGroup("web", count, newTask("t", "wasm", 100, 64)))
		j.Type, j.Groups[0].Reschedule = typ, policy
		return j
	}
	failedAt := func(id string, index int, at int64, f func(*Allocation)) *Allocation {
		a := existing(id, "j", "web", index, 1, "n000")
		a.ClientStatus, a.FinishedAt = ClientFailed, at
		if f != nil {
			f(a)
		}
		return a
	}
	type followUp struct {
		wait   int64
		allocs []string
	}
	tests := []struct {
		name      string
		job       *spec.Job
		evalID    string
		now       int64
		existing  []*Allocation
		place     map[int]string // index -> the failed allocation it replaces
		followUps []followUp
	}{
		{name: "batch failure waits its delay", job: job("batch", 1, batchDefault), now: t0,
			existing:  []*Allocation{failedAt("a", 0, t0, nil)},
			followUps: []followUp{{t0 + sec(5), []string{"a"}}}},
		{name: "a failure with a follow-up waits for it", job: job("batch", 1, batchDefault), now: t0 + sec(2),
			existing: []*Allocation{failedAt("a", 0, t0, func(a *Allocation) { a.FollowupEvalID = "f" })}},
		{name: "the follow-up reschedules", job: job("batch", 1, batchDefault), evalID: "f", now: t0 + sec(5),
			existing: []*Allocation{failedAt("a", 0, t0, func(a *Allocation) { a.FollowupEvalID = "f" })},
			place:    map[int]string{0: "a"}},
		{name: "any evaluation past the delay reschedules", job: job("batch", 1, batchDefault), now: t0 + sec(60),
			existing: []*Allocation{failedAt("a", 0, t0, func(a *Allocation) { a.FollowupEvalID = "f" })},
			place:    map[int]string{0: "a"}},
		{name: "within the window counts as due", job: job("batch", 1, batchDefault), now: t0 + sec(4),
			existing: []*Allocation{failedAt("a", 0, t0, nil)},
			place:    map[int]string{0: "a"}},
		{name: "no attempts left: stays failed", job: job("batch", 1, batchDefault), now: t0 + sec(60),
			existing: []*Allocation{failedAt("b", 0, t0, func(a *Allocation) { a.RescheduleTracker = tracker(t0-sec(30), 5*time.Second) })}},
		{name: "replaced failure is left alone", job: job("service", 1, serviceDefault), now: t0 + sec(60),
			existing: []*Allocation{
				failedAt("a", 0, t0, func(a *Allocation) { a.NextAllocation = "b" }),
				existing("b", "j", "web", 0, 1, "n001")}},
		{name: "failures due close together share a follow-up", job: job("service", 3, serviceDefault), now: t0,
			existing: []*Allocation{
				failedAt("a", 0, t0, nil),
				failedAt("b", 1, t0+sec(2), nil),
				failedAt("c", 2, t0+sec(9), nil)},
			followUps: []followUp{{t0 + sec(30), []string{"a", "b"}}, {t0 + sec(39), []string{"c"}}}},
		{name: "newest failure of an index decides", job: job("service", 1, serviceDefault), now: t0 + sec(30),
			existing: []*Allocation{
				failedAt("old", 0, t0-sec(100), func(a *Allocation) { a.CreateIndex = 1 }),
				failedAt("new", 0, t0, func(a *Allocation) { a.CreateIndex = 5 })},
			place: map[int]string{0: "new"}},
		{name: "scaled down: a failure above count is not rescheduled", job: job("service", 1, serviceDefault), now: t0 + sec(60),
			existing: []*Allocation{existing("a", "j", "web", 0, 1, "n000"), failedAt("b", 1, t0, nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evalID := cmpOr(tt.evalID, "e")
			plan := mustSchedule(t, &Request{EvalID: evalID, Job: tt.job, JobVersion: 1, Nodes: nodes(3), Existing: tt.existing, Now: tt.now})
			place := map[int]string{}
			for _, a := range plan.Place {
				place[a.Index] = a.PreviousAllocation
				if a.PreviousAllocation != "" {
					ev := a.RescheduleTracker.Events
					if last := ev[len(ev)-1]; last.PrevAllocID != a.PreviousAllocation || last.RescheduleTime != tt.now {
						t.Errorf("placement %d: tracker %+v", a.Index, ev)
					}
				}
			}
			if len(place) != len(tt.place) || (len(place) > 0 && fmt.Sprint(place) != fmt.Sprint(tt.place)) {
				t.Errorf("placed %v, want %v", place, tt.place)
			}
			var fus []followUp
			for _, f := range plan.FollowUps {
				if f.EvalID == "" || f.EvalID == evalID {
					t.Errorf("follow-up ID %q", f.EvalID)
				}
				fus = append(fus, followUp{f.WaitUntil, f.AllocIDs})
			}
			if fmt.Sprint(fus) != fmt.Sprint(tt.followUps) {
				t.Errorf("follow-ups %v, want %v", fus, tt.followUps)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// crashLoop simulates a task that fails runFor after each placement,
// through the scheduler as the coordinator drives it: an evaluation when
// an allocation fails, follow-up evaluations fired when due, plans
// applied as the store applies them (a replacement stops the allocation
// it replaces). It returns the placement times within horizon.
func crashLoop(t *testing.T, job *spec.Job, runFor, horizon time.Duration) []int64 {
	t.Helper()
	type event struct {
		at     int64
		evalID string
	}
	var (
		allocs   []*Allocation
		placed   []int64
		queue    = []event{{t0, "register"}}
		attempts = 0
	)
	byID := map[string]*Allocation{}
	for len(queue) > 0 {
		if attempts++; attempts > 10_000 {
			t.Fatal("simulation did not settle")
		}
		slices.SortStableFunc(queue, func(a, b event) int { return int(a.at - b.at) })
		ev := queue[0]
		queue = queue[1:]
		if ev.at > t0+int64(horizon) {
			break
		}
		var existingAllocs []*Allocation
		for _, a := range allocs {
			c := *a
			existingAllocs = append(existingAllocs, &c)
		}
		plan := mustSchedule(t, &Request{EvalID: ev.evalID, Job: job, JobVersion: 1, Nodes: nodes(2), Existing: existingAllocs, Now: ev.at})
		for _, s := range plan.Stop {
			byID[s.ID].DesiredStatus = DesiredStop
		}
		for _, p := range plan.Place {
			a := *p
			a.ID = fmt.Sprint("alloc-", len(allocs))
			a.CreateIndex = uint64(len(allocs) + 1)
			a.ClientStatus, a.FinishedAt = ClientFailed, ev.at+int64(runFor)
			if prev := byID[a.PreviousAllocation]; prev != nil {
				prev.NextAllocation, prev.DesiredStatus, prev.DesiredDesc = a.ID, DesiredStop, DescRescheduled
			}
			allocs = append(allocs, &a)
			byID[a.ID] = &a
			placed = append(placed, ev.at)
			queue = append(queue, event{a.FinishedAt, fmt.Sprint("failed-", a.ID)})
		}
		for _, f := range plan.FollowUps {
			for _, id := range f.AllocIDs {
				byID[id].FollowupEvalID = f.EvalID
			}
			queue = append(queue, event{f.WaitUntil, f.EvalID})
		}
	}
	return placed
}

// TestCrashLoopingBatchPlacedTwiceADay is must-show 1 at the scheduler: a
// batch task that fails at once, with the batch default policy, is
// placed once and rescheduled once in 24 hours, 5 s after its failure.
func TestCrashLoopingBatchPlacedTwiceADay(t *testing.T) {
	job := newJob("j", newGroup("web", 1, newTask("t", "wasm", 100, 64)))
	job.Type, job.Groups[0].Reschedule = "batch", batchDefault
	placed := crashLoop(t, job, 100*time.Millisecond, 24*time.Hour)
	want := []int64{t0, t0 + int64(5100*time.Millisecond)}
	if !slices.Equal(placed, want) {
		t.Fatalf("placements at %v, want %v", rel(placed), rel(want))
	}
}

// TestCrashLoopingServiceBacksOff: the service default doubles the delay
// from 30 s up to an hour, and keeps rescheduling.
func TestCrashLoopingServiceBacksOff(t *testing.T) {
	job := newJob("j", newGroup("web", 1, newTask("t", "wasm", 100, 64)))
	job.Groups[0].Reschedule = serviceDefault
	placed := crashLoop(t, job, time.Second, 6*time.Hour)
	var gaps []time.Duration
	for i := 1; i < len(placed); i++ {
		gaps = append(gaps, time.Duration(placed[i]-placed[i-1]))
	}
	want := []time.Duration{31 * time.Second, 61 * time.Second, 121 * time.Second, 241 * time.Second, 481 * time.Second,
		961 * time.Second, 1921 * time.Second, 3601 * time.Second}
	if len(gaps) < len(want) || !slices.Equal(gaps[:len(want)], want) {
		t.Fatalf("gaps between placements %v, want %v then 1h0m1s", gaps, want)
	}
	for _, g := range gaps[len(want):] {
		if g != 3601*time.Second {
			t.Fatalf("gap %s after the cap, want 1h0m1s (gaps %v)", g, gaps)
		}
	}
}

func rel(ts []int64) []time.Duration {
	var out []time.Duration
	for _, x := range ts {
		out = append(out, time.Duration(x-t0))
	}
	return out
}
