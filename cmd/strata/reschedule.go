package main

import (
	"fmt"
	"io"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// reschedulePolicy is the reschedule policy of an allocation's group in
// job (nil when the job or the group is gone).
func reschedulePolicy(job *spec.Job, a *structs.Alloc) *spec.Reschedule {
	if job == nil {
		return nil
	}
	if g := job.Lookup(a.Group); g != nil {
		return g.Reschedule
	}
	return nil
}

// rescheduleRows are the rows `alloc status` adds for rescheduling: the
// allocation it replaced and the one that replaced it, the attempts used
// within the policy's interval, and, for a failed allocation still
// wanted, when the next attempt is due or why there is none.
func rescheduleRows(a *structs.Alloc, policy *spec.Reschedule, now time.Time) [][2]string {
	var rows [][2]string
	if a.PreviousAllocation != "" {
		rows = append(rows, [2]string{"Previous Allocation", a.PreviousAllocation})
	}
	if a.NextAllocation != "" {
		rows = append(rows, [2]string{"Next Allocation", a.NextAllocation})
	}
	if a.RescheduleTracker == nil && a.ClientStatus != sched.ClientFailed {
		return rows
	}
	info := sched.RescheduleStatus(policy, &a.Allocation, now.UnixNano())
	rows = append(rows, [2]string{"Reschedule Attempts", attemptsText(info)})
	if a.ClientStatus == sched.ClientFailed && a.DesiredStatus == sched.DesiredRun && a.NextAllocation == "" {
		rows = append(rows, [2]string{"Next Reschedule", nextRescheduleText(info, now)})
	}
	return rows
}

// attemptsText is "1/1" (used within the interval / allowed), or "3
// (unlimited)".
func attemptsText(info sched.RescheduleInfo) string {
	if info.Unlimited {
		return fmt.Sprintf("%d (unlimited)", info.Attempted)
	}
	return fmt.Sprintf("%d/%d", info.Attempted, info.Attempts)
}

// nextRescheduleText says when a failed allocation is replaced: "in 25s",
// "due now", or "none: " and why not.
func nextRescheduleText(info sched.RescheduleInfo, now time.Time) string {
	if !info.Eligible {
		return "none: " + info.Reason
	}
	left := time.Duration(info.NextTime - now.UnixNano())
	if left <= 0 {
		return "due now"
	}
	return "in " + left.Round(time.Second).String()
}

// printRescheduling is `job status`'s section on failed allocations the
// job still wants: when each is rescheduled, or why it is not.
func printRescheduling(w io.Writer, job *spec.Job, allocs []*structs.Alloc, now time.Time) {
	header := false
	for _, a := range allocs {
		if a.ClientStatus != sched.ClientFailed || a.DesiredStatus != sched.DesiredRun || a.NextAllocation != "" {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nRescheduling")
			header = true
		}
		info := sched.RescheduleStatus(reschedulePolicy(job, a), &a.Allocation, now.UnixNano())
		what := "next reschedule " + nextRescheduleText(info, now)
		if !info.Eligible {
			what = "not rescheduled: " + info.Reason
		}
		fmt.Fprintf(w, "Allocation %s (%s) failed: %s (reschedule attempts %s)\n", shortAlloc(a.ID), a.Name, what, attemptsText(info))
	}
}
