package coordinator

import (
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

func TestJobStatusOf(t *testing.T) {
	rec := func(typ string, stopped bool) *structs.JobRecord {
		return &structs.JobRecord{Job: &spec.Job{ID: "j", Type: typ}, Stopped: stopped}
	}
	alloc := func(desired, client string, f ...func(*structs.Alloc)) *structs.Alloc {
		a := &structs.Alloc{Allocation: sched.Allocation{DesiredStatus: desired, ClientStatus: client}}
		for _, g := range f {
			g(a)
		}
		return a
	}
	run, stop := sched.DesiredRun, sched.DesiredStop
	awaiting := func(a *structs.Alloc) { a.FollowupEvalID = "f" }
	done := &structs.Eval{Status: structs.EvalComplete}
	tests := []struct {
		name   string
		rec    *structs.JobRecord
		allocs []*structs.Alloc
		latest *structs.Eval
		want   string
	}{
		{"new job, evaluation pending", rec("service", false), nil, &structs.Eval{Status: structs.EvalPending}, "pending"},
		{"nothing placed", rec("service", false), nil, done, "pending"},
		{"placement blocked", rec("service", false), nil, &structs.Eval{Status: structs.EvalBlocked}, "pending"},
		{"starting", rec("service", false), []*structs.Alloc{alloc(run, sched.ClientPending)}, done, "running"},
		{"running", rec("service", false), []*structs.Alloc{alloc(run, sched.ClientRunning), alloc(run, sched.ClientFailed)}, done, "running"},
		{"batch completed", rec("batch", false), []*structs.Alloc{alloc(run, sched.ClientComplete), alloc(run, sched.ClientComplete)}, done, "complete"},
		{"batch completed after a reschedule", rec("batch", false),
			[]*structs.Alloc{alloc(stop, sched.ClientFailed), alloc(run, sched.ClientComplete)}, done, "complete"},
		{"batch failed, reschedule due", rec("batch", false), []*structs.Alloc{alloc(run, sched.ClientFailed, awaiting)}, done, "pending"},
		{"batch failed for good", rec("batch", false),
			[]*structs.Alloc{alloc(stop, sched.ClientFailed), alloc(run, sched.ClientFailed), alloc(run, sched.ClientComplete)}, done, "dead"},
		{"service all ended", rec("service", false), []*structs.Alloc{alloc(run, sched.ClientFailed)}, done, "dead"},
		{"stopped", rec("service", true), []*structs.Alloc{alloc(stop, sched.ClientRunning), alloc(stop, sched.ClientLost)}, done, "dead"},
		{"stopped, still stopping", rec("service", true), []*structs.Alloc{alloc(run, sched.ClientRunning)}, done, "running"},
		{"stopped batch that had completed", rec("batch", true), []*structs.Alloc{alloc(stop, sched.ClientComplete)}, done, "dead"},
		{"system runs until stopped", rec("system", false), nil, done, "running"},
		{"system stopped", rec("system", true), nil, done, "dead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jobStatusOf(tt.rec, tt.allocs, tt.latest); got != tt.want {
				t.Errorf("status %q, want %q", got, tt.want)
			}
		})
	}
}
