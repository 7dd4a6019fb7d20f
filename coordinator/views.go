package coordinator

import (
	"fmt"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// Views: the API's answers that combine several of the state's records.

// jobList is every job with its version, status and a count of its
// allocations by client status.
func jobList(store *state.Store) ([]structs.JobListEntry, error) {
	jobs, err := store.Jobs()
	if err != nil {
		return nil, err
	}
	out := []structs.JobListEntry{}
	for _, j := range jobs {
		allocs, err := store.JobAllocs(j.Job.ID)
		if err != nil {
			return nil, err
		}
		e := structs.JobListEntry{ID: j.Job.ID, Version: j.Version, Summary: map[string]int{}}
		for _, a := range allocs {
			if a.DesiredStatus == "run" {
				e.Summary[a.ClientStatus]++
			}
		}
		var latest *structs.Eval
		if j.LatestEvalID != "" {
			if latest, err = store.Eval(j.LatestEvalID); err != nil {
				return nil, err
			}
		}
		e.Status = jobStatusOf(j, allocs, latest)
		out = append(out, e)
	}
	return out, nil
}

// jobAllocs is a job's allocations with its status and latest evaluation.
func jobAllocs(store *state.Store, id string) (*structs.JobAllocsResponse, error) {
	rec, err := store.Job(id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	allocs, err := store.JobAllocs(id)
	if err != nil {
		return nil, err
	}
	resp := &structs.JobAllocsResponse{Allocations: allocs, Stopped: rec.Stopped, Version: rec.Version}
	if resp.Allocations == nil {
		resp.Allocations = []*structs.Alloc{}
	}
	if rec.LatestEvalID != "" {
		if resp.LatestEval, err = store.Eval(rec.LatestEvalID); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// jobSummary is a job's allocations counted by group and client status,
// with the copies its latest evaluation could not place (Nomad's job
// summary).
func jobSummary(store *state.Store, id string) (*structs.JobSummary, error) {
	resp, err := jobAllocs(store, id)
	if err != nil {
		return nil, err
	}
	rec, err := store.Job(id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	out := &structs.JobSummary{JobID: id, Summary: map[string]structs.TaskGroupSummary{}, CreateIndex: rec.CreateIndex, ModifyIndex: rec.ModifyIndex}
	for _, g := range rec.Job.Groups {
		out.Summary[g.Name] = structs.TaskGroupSummary{}
	}
	for _, a := range resp.Allocations {
		s := out.Summary[a.Group]
		switch a.ClientStatus {
		case sched.ClientPending:
			s.Starting++
		case sched.ClientRunning:
			s.Running++
		case sched.ClientFailed:
			s.Failed++
		case sched.ClientComplete:
			s.Complete++
		case sched.ClientLost:
			s.Lost++
		case sched.ClientUnknown:
			s.Unknown++
		}
		out.Summary[a.Group] = s
	}
	if e := resp.LatestEval; e != nil && e.Status == structs.EvalBlocked && !rec.Stopped {
		for g, x := range e.Failed {
			s := out.Summary[g]
			s.Queued = x.Missing
			out.Summary[g] = s
		}
	}
	return out, nil
}
