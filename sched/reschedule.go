package sched

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/strata-run/strata/spec"
)

// RescheduleTracker is the history of reschedules of a chain of
// allocations, each a replacement of the failed one before it. A
// replacement carries its predecessor's events that still count (within
// the policy's interval; the last maxPastRescheduleEvents when unlimited)
// and one more for itself.
type RescheduleTracker struct {
	Events []RescheduleEvent `json:"Events"`
}

// RescheduleEvent is one reschedule: when the replacement was placed, the
// allocation it replaced, and the delay waited since that one failed.
type RescheduleEvent struct {
	RescheduleTime int64         `json:"RescheduleTime"` // unix nanoseconds
	PrevAllocID    string        `json:"PrevAllocID"`
	PrevNodeID     string        `json:"PrevNodeID"`
	Delay          time.Duration `json:"Delay"`
}

// FollowUp is a delayed evaluation the plan asks for: due at WaitUntil
// (unix nanoseconds), it reschedules the failed allocations AllocIDs.
// The coordinator commits it with the plan and marks the allocations
// with its ID, so later evaluations do not ask again.
type FollowUp struct {
	EvalID    string   `json:"EvalID"`
	WaitUntil int64    `json:"WaitUntil"`
	AllocIDs  []string `json:"AllocIDs"`
}

const (
	// rescheduleWindow: a failed allocation due within this much of the
	// evaluation's time is rescheduled by it (Nomad's
	// rescheduleWindowSize), rather than by a follow-up a moment later.
	rescheduleWindow = time.Second
	// followUpBatch: failed allocations due within this much of the first
	// share its follow-up evaluation (Nomad's batchedFailedAllocWindowSize).
	followUpBatch = 5 * time.Second
	// maxPastRescheduleEvents bounds an unlimited policy's tracker; the
	// delay functions read only the last two events.
	maxPastRescheduleEvents = 5
)

// DescRescheduled is the DesiredDesc the store gives a failed allocation
// once its replacement is placed (Nomad's words).
const DescRescheduled = "alloc was rescheduled because it failed"

// RescheduleInfo is where an allocation stands with its group's
// reschedule policy at a time (RescheduleStatus).
type RescheduleInfo struct {
	// Attempted counts the reschedules within the interval before the
	// failure (before now for an allocation that has not failed);
	// Attempts is how many the policy allows (0 when Unlimited).
	Attempted int           `json:"Attempted"`
	Attempts  int           `json:"Attempts"`
	Unlimited bool          `json:"Unlimited,omitempty"`
	Interval  time.Duration `json:"Interval,omitempty"`
	// Eligible: a failed allocation will be replaced, Delay after it
	// failed, at NextTime (unix nanoseconds).
	Eligible bool          `json:"Eligible"`
	NextTime int64         `json:"NextTime,omitempty"`
	Delay    time.Duration `json:"Delay,omitempty"`
	// Reason says why a failed allocation will not be replaced.
	Reason string `json:"Reason,omitempty"`
}

// RescheduleStatus applies Nomad's reschedule policy to a at time now
// (unix nanoseconds): how many attempts it used within the interval and,
// for a failed allocation its job still wants (desired run, not yet
// replaced), whether and when it will be replaced. The failure time is
// a.FinishedAt, or now when unknown. policy nil: rescheduling is off.
func RescheduleStatus(policy *spec.Reschedule, a *Allocation, now int64) RescheduleInfo {
	var info RescheduleInfo
	if policy != nil {
		info.Attempts, info.Unlimited, info.Interval = policy.Attempts, policy.Unlimited, policy.Interval.D()
	}
	at := now
	if a.ClientStatus == ClientFailed && a.FinishedAt != 0 {
		at = a.FinishedAt
	}
	info.Attempted = attemptedWithin(policy, a.RescheduleTracker, at)
	switch {
	case a.ClientStatus != ClientFailed:
		info.Reason = "not failed"
		return info
	case a.DesiredStatus != DesiredRun:
		info.Reason = "not wanted: " + a.DesiredDesc
		return info
	case a.NextAllocation != "":
		info.Reason = "replaced by " + a.NextAllocation
		return info
	case policy == nil || (policy.Attempts <= 0 && !policy.Unlimited):
		info.Reason = "rescheduling is off (reschedule attempts = 0)"
		return info
	}
	info.Delay = nextDelay(policy, a.RescheduleTracker, at)
	info.NextTime = at + int64(info.Delay)
	switch {
	case policy.Unlimited:
		info.Eligible = true
	case info.Attempted >= policy.Attempts:
		info.Reason = fmt.Sprintf("no more reschedule attempts: %d/%d within %s", info.Attempted, policy.Attempts, policy.Interval)
	case a.RescheduleTracker != nil && len(a.RescheduleTracker.Events) > 0 && info.Delay >= policy.Interval.D():
		info.Reason = fmt.Sprintf("reschedule delay %s is not shorter than the interval %s", info.Delay, policy.Interval)
	default:
		info.Eligible = true
	}
	if !info.Eligible {
		info.NextTime, info.Delay = 0, 0
	}
	return info
}

// attemptedWithin counts the tracker's reschedules within the policy's
// interval before at (all of them when the policy is unlimited).
func attemptedWithin(policy *spec.Reschedule, t *RescheduleTracker, at int64) int {
	if t == nil {
		return 0
	}
	if policy == nil || policy.Unlimited || policy.Interval <= 0 {
		return len(t.Events)
	}
	n := 0
	for _, e := range t.Events {
		if at-e.RescheduleTime < int64(policy.Interval) {
			n++
		}
	}
	return n
}

// nextDelay is Nomad's Allocation.NextDelay: the policy's delay, grown by
// its delay function from the last reschedules' delays, capped at
// max_delay; once capped, a failure later than max_delay after the last
// reschedule starts the series again.
func nextDelay(policy *spec.Reschedule, t *RescheduleTracker, failedAt int64) time.Duration {
	base := policy.Delay.D()
	if t == nil || len(t.Events) == 0 {
		return base
	}
	ev := t.Events
	last := ev[len(ev)-1]
	d := base
	switch policy.DelayFunction {
	case spec.DelayExponential:
		d = last.Delay * 2
	case spec.DelayFibonacci:
		if len(ev) >= 2 {
			prev := ev[len(ev)-2].Delay
			if prev == policy.MaxDelay.D() && last.Delay == base {
				d = last.Delay // the series was reset: start again
			} else {
				d = last.Delay + prev
			}
		}
	default:
		return base
	}
	if maxD := policy.MaxDelay.D(); maxD > 0 && d > maxD {
		d = maxD
		if failedAt-last.RescheduleTime > int64(maxD) {
			d = base
		}
	}
	return d
}

// nextTracker is the tracker of the replacement of prev, placed at now
// after waiting delay.
func nextTracker(policy *spec.Reschedule, prev *Allocation, now int64, delay time.Duration) *RescheduleTracker {
	var events []RescheduleEvent
	if prev.RescheduleTracker != nil {
		old := prev.RescheduleTracker.Events
		switch {
		case policy != nil && policy.Attempts > 0:
			for _, e := range old {
				if policy.Interval > 0 && now-e.RescheduleTime <= int64(policy.Interval) {
					events = append(events, e)
				}
			}
		default:
			events = slices.Clone(old[max(0, len(old)-maxPastRescheduleEvents):])
		}
	}
	events = append(events, RescheduleEvent{RescheduleTime: now, PrevAllocID: prev.ID, PrevNodeID: prev.NodeID, Delay: delay})
	return &RescheduleTracker{Events: events}
}

// replacement is a failed allocation rescheduled by this plan.
type replacement struct {
	prev  *Allocation
	delay time.Duration
}

// delayedAlloc is a failed allocation to reschedule later.
type delayedAlloc struct {
	id  string
	due int64
}

// rescheduleFailed decides the group's failed allocations: each holds
// its index, and is either replaced now (returned by index: its delay
// has passed, or this is its follow-up evaluation), replaced later (a
// follow-up evaluation is asked for unless it has one), or never (the
// policy allows no more attempts: it stays failed, as in Nomad, and the
// group runs short). An index a live allocation holds is left to it,
// and the group never holds more than Count indexes.
func (p *placer) rescheduleFailed(g *groupAsk, failed []*Allocation, occupied map[int]bool) map[int]replacement {
	slices.SortFunc(failed, func(a, b *Allocation) int {
		return cmp.Or(cmp.Compare(b.CreateIndex, a.CreateIndex), cmp.Compare(a.ID, b.ID))
	})
	var now map[int]replacement
	for _, a := range failed {
		if a.Index < 0 || a.Index >= g.group.Count || occupied[a.Index] || len(occupied) >= g.group.Count {
			continue
		}
		occupied[a.Index] = true
		info := RescheduleStatus(g.group.Reschedule, a, p.req.Now)
		switch {
		case !info.Eligible:
		case a.FollowupEvalID == p.req.EvalID || info.NextTime-p.req.Now <= int64(rescheduleWindow):
			if now == nil {
				now = map[int]replacement{}
			}
			now[a.Index] = replacement{prev: a, delay: info.Delay}
		case a.FollowupEvalID == "":
			p.delayed = append(p.delayed, delayedAlloc{id: a.ID, due: info.NextTime})
		}
	}
	return now
}

// followUps batches the allocations to reschedule later into delayed
// evaluations: one per followUpBatch window, due when its first
// allocation is. Their IDs come from a generator of their own, seeded
// from the evaluation, so they leave the placements' draws unchanged.
func (p *placer) followUps() []*FollowUp {
	if len(p.delayed) == 0 {
		return nil
	}
	slices.SortFunc(p.delayed, func(a, b delayedAlloc) int {
		return cmp.Or(cmp.Compare(a.due, b.due), cmp.Compare(a.id, b.id))
	})
	rng := newRNG(p.req.EvalID+"/follow-up", p.req.Attempt)
	var out []*FollowUp
	for _, d := range p.delayed {
		if n := len(out); n > 0 && d.due-out[n-1].WaitUntil < int64(followUpBatch) {
			out[n-1].AllocIDs = append(out[n-1].AllocIDs, d.id)
			continue
		}
		out = append(out, &FollowUp{EvalID: newUUID(rng), WaitUntil: d.due, AllocIDs: []string{d.id}})
	}
	return out
}
