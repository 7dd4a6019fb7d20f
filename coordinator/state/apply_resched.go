package state

import (
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// replaced links a placement that reschedules a failed allocation to it:
// the failed one gets NextAllocation and is stopped, in the same
// transaction, so a plan whose placement is rejected leaves it failed and
// still wanted (the next evaluation tries again, with its tracker).
func (b *batch) replaced(a *structs.Alloc) error {
	if a.PreviousAllocation == "" {
		return nil
	}
	prev, err := b.alloc(a.PreviousAllocation)
	if err != nil || prev == nil {
		return err
	}
	before := *prev
	prev.NextAllocation, prev.ModifyIndex = a.ID, b.index
	if prev.DesiredStatus == sched.DesiredRun {
		prev.DesiredStatus, prev.DesiredDesc = sched.DesiredStop, sched.DescRescheduled
	}
	if err := b.putAlloc(prev); err != nil {
		return err
	}
	b.wrote(prev)
	b.allocChanged(&before, prev)
	return nil
}

// checkFollowUps refuses a plan whose follow-ups cannot be written,
// before the plan writes anything.
func (c *PlanApply) checkFollowUps() error {
	if len(c.FollowUps) > 0 && c.Eval == nil {
		return refuse("state: plan with follow-up evaluations but no evaluation")
	}
	for _, f := range c.FollowUps {
		if f.EvalID == "" {
			return refuse("state: follow-up evaluation without an ID")
		}
	}
	return nil
}

// followUps writes a plan's delayed evaluations (pending, with their
// WaitUntil) and marks each failed allocation with the one that will
// reschedule it. An allocation no longer failed and wanted, or already
// marked, is left alone.
func (b *batch) followUps(c *PlanApply) error {
	for _, f := range c.FollowUps {
		e := &structs.Eval{ID: f.EvalID, JobID: c.Eval.JobID, TriggeredBy: "alloc-failure",
			Status: structs.EvalPending, WaitUntil: f.WaitUntil}
		if err := b.eval(e); err != nil {
			return err
		}
		for _, id := range f.AllocIDs {
			a, err := b.alloc(id)
			if err != nil {
				return err
			}
			if a == nil || a.ClientStatus != sched.ClientFailed || a.DesiredStatus != sched.DesiredRun || a.FollowupEvalID != "" {
				continue
			}
			a.FollowupEvalID, a.ModifyIndex = f.EvalID, b.index
			if err := b.putAlloc(a); err != nil {
				return err
			}
			b.wrote(a)
		}
	}
	return nil
}
