package coordinator

import (
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// Job statuses, Nomad's words, plus complete for a finished batch job.
const (
	jobPending  = "pending"
	jobRunning  = "running"
	jobDead     = "dead"
	jobComplete = "complete"
)

// jobStatusOf is a job's status by Nomad's rules (state_store.go
// getJobStatus), from its allocations and latest evaluation:
//
//   - a system job, and a periodic one, runs until stopped;
//   - any allocation still wanted and not finished: running;
//   - stopped, with nothing left running: dead;
//   - its latest evaluation not done (pending, blocked), or a failed
//     allocation waiting for its reschedule: pending;
//   - nothing placed yet: pending;
//   - a batch job whose allocations still wanted all completed
//     successfully: complete;
//   - otherwise (finished with failures nobody will retry, a service job
//     whose allocations all ended): dead.
//
// Nomad has no "complete": it calls a finished batch job dead whatever
// its allocations did; complete tells success from failure at a glance.
func jobStatusOf(rec *structs.JobRecord, allocs []*structs.Alloc, latest *structs.Eval) string {
	if (rec.Job.Type == spec.JobTypeSystem || rec.Job.IsTemplate()) && !rec.Stopped {
		return jobRunning // a periodic job runs as long as it launches
	}
	wanted, completed, waiting := 0, 0, false
	for _, a := range allocs {
		if !a.Terminal() {
			return jobRunning
		}
		if a.DesiredStatus != sched.DesiredRun {
			continue
		}
		wanted++
		switch {
		case a.ClientStatus == sched.ClientComplete:
			completed++
		case a.ClientStatus == sched.ClientFailed && a.FollowupEvalID != "" && a.NextAllocation == "":
			waiting = true
		}
	}
	switch {
	case rec.Stopped:
		return jobDead
	case latest != nil && (latest.Status == structs.EvalPending || latest.Status == structs.EvalBlocked):
		return jobPending
	case waiting || len(allocs) == 0:
		return jobPending
	case rec.Job.Type == spec.JobTypeBatch && wanted > 0 && completed == wanted:
		return jobComplete
	}
	return jobDead
}
