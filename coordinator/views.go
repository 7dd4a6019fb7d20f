package coordinator

import (
	"fmt"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
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
		switch {
		case j.Stopped:
			e.Status = "dead"
		case e.Summary["running"] > 0:
			e.Status = "running"
		default:
			e.Status = "pending"
		}
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
