package coordinator

import (
	"fmt"
	"net/http"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
)

// The periodic jobs' route (Nomad's path): launch a child now.

func (s *httpAPI) handlePeriodicForce(w http.ResponseWriter, r *http.Request) {
	if err := decodeOptional(r, "periodic force request", &struct{}{}); err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.jobs.forcePeriodic(r.PathValue("id"), time.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

// forcePeriodic launches a child of periodic job id now, outside its
// schedule (`strata job periodic force`); the schedule goes on as before.
func (s *registrar) forcePeriodic(id string, now time.Time) (*structs.PeriodicForceResponse, error) {
	rec, err := s.store.Job(id)
	if err != nil {
		return nil, err
	}
	switch {
	case rec == nil:
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	case rec.Job.Periodic == nil:
		return nil, badRequest{fmt.Errorf("job %q is not periodic: only a job with a periodic block can be forced", id)}
	case rec.Stopped:
		return nil, badRequest{fmt.Errorf("job %q is stopped: run it again first", id)}
	}
	res, idx, err := s.apply(&state.PeriodicLaunch{JobID: id, Tick: now.Unix(), Force: true, EvalID: newEvalID(), SubmitTime: now.UnixNano()})
	if err != nil {
		return nil, err
	}
	r := res.(*state.PeriodicLaunchResult)
	return &structs.PeriodicForceResponse{JobID: r.ChildID, Launched: r.Launched, EvalID: r.EvalID, Index: idx}, nil
}
