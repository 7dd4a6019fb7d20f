package coordinator

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// The routes of periodic and parameterized jobs (Nomad's paths): launch
// a periodic job's child now, dispatch a parameterized job.

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

func (s *httpAPI) handleJobDispatch(w http.ResponseWriter, r *http.Request) {
	var req struct { // structs.JobDispatchRequest, the payload decoded below
		Payload string            `json:"Payload,omitempty"`
		Meta    map[string]string `json:"Meta,omitempty"`
	}
	if err := decodeOptional(r, "dispatch request", &req); err != nil {
		writeError(w, err)
		return
	}
	payload, err := base64.StdEncoding.DecodeString(req.Payload)
	if err != nil {
		writeError(w, badRequest{fmt.Errorf("the dispatch request's Payload is not base64: %v", err)})
		return
	}
	resp, err := s.jobs.dispatch(r.PathValue("id"), req.Meta, payload, time.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

// dispatch launches a child of parameterized job id with meta and
// payload: <id>/dispatch-<unix>-<8 hex>.
func (s *registrar) dispatch(id string, meta map[string]string, payload []byte, now time.Time) (*structs.JobDispatchResponse, error) {
	rec, err := s.store.Job(id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if err := rec.Job.CheckDispatch(meta, payload); err != nil {
		return nil, badRequest{err}
	}
	child := spec.DispatchChildID(id, now, newEvalID()[:8])
	// The child is checked here, by the proposer: applying a command
	// must not depend on the validation rules of the build that applies it.
	cj, err := rec.Job.DispatchChild(child, meta, payload)
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(cj); err != nil {
		return nil, badRequest{fmt.Errorf("dispatched job: %w", err)}
	}
	c := &state.JobDispatch{JobID: id, ChildID: child, Meta: meta, Payload: payload, EvalID: newEvalID(), SubmitTime: now.UnixNano()}
	_, idx, err := s.apply(c)
	if err != nil {
		return nil, err
	}
	return &structs.JobDispatchResponse{DispatchedJobID: child, EvalID: c.EvalID, Index: idx}, nil
}
