package coordinator

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// The HTTP handlers of job versions, plans and deployments (Nomad's
// routes and shapes).

// handleJobVersions is GET /v1/job/{id}/versions[?diffs=true]: every
// stored version, newest first, with its stability and submit time.
func (s *httpAPI) handleJobVersions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	diffs, err := boolParam(r, "diffs")
	if err != nil {
		writeError(w, err)
		return
	}
	idx := s.store.Index()
	vs, err := s.store.JobVersions(id)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(vs) == 0 {
		writeError(w, fmt.Errorf("job %q: %w", id, ErrNotFound))
		return
	}
	info, err := s.store.JobVersionInfo(id)
	if err != nil {
		writeError(w, err)
		return
	}
	out := structs.JobVersionsResponse{}
	for v := len(vs) - 1; v >= 0; v-- {
		vi := info[uint64(v)]
		out.Versions = append(out.Versions, &structs.JobVersion{Version: uint64(v), Stable: vi.Stable, SubmitTime: vi.SubmitTime, Job: vs[v]})
		if diffs && v > 0 {
			out.Diffs = append(out.Diffs, spec.Diff(vs[v-1], vs[v]))
		}
	}
	writeJSON(w, http.StatusOK, idx, out)
}

// decodeBody reads a JSON body of at most limit bytes, refusing unknown
// fields, into v.
func decodeBody(r *http.Request, limit int64, what string, v any) error {
	return decodeJSON(r, limit, what, v, false)
}

// handleJobPlan is PUT /v1/job/{id}/plan: what registering the job would
// do, committing nothing.
func (s *httpAPI) handleJobPlan(w http.ResponseWriter, r *http.Request) {
	var req structs.JobPlanRequest
	if err := decodeBody(r, maxJobSize, "plan request", &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Job != nil && req.Job.ID != r.PathValue("id") {
		writeError(w, badRequest{fmt.Errorf("the job in the body is %q, the path names %q", req.Job.ID, r.PathValue("id"))})
		return
	}
	idx := s.store.Index()
	resp, err := s.deploys.plan(req.Job)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, resp)
}

// handleJobRevert is PUT /v1/job/{id}/revert.
func (s *httpAPI) handleJobRevert(w http.ResponseWriter, r *http.Request) {
	var req structs.JobRevertRequest
	if err := decodeBody(r, 1<<16, "revert request", &req); err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.deploys.revert(r.PathValue("id"), req.JobVersion, req.EnforcePriorVersion)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

// handleJobDeployments is GET /v1/job/{id}/deployments, newest first.
func (s *httpAPI) handleJobDeployments(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	ds, err := s.store.JobDeployments(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if ds == nil {
		ds = []*structs.Deployment{}
	}
	writeJSON(w, http.StatusOK, idx, ds)
}

// handleJobDeployment is GET /v1/job/{id}/deployment: the newest one.
func (s *httpAPI) handleJobDeployment(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	d, err := s.store.LatestDeployment(r.PathValue("id"))
	switch {
	case err != nil:
		writeError(w, err)
	case d == nil:
		writeJSON(w, http.StatusNotFound, idx, structs.APIError{Error: fmt.Sprintf("job %q: %v", r.PathValue("id"), errNoDeployment)})
	default:
		writeJSON(w, http.StatusOK, idx, d)
	}
}

// handleDeployments is GET /v1/deployments[?prefix=], newest first.
func (s *httpAPI) handleDeployments(w http.ResponseWriter, r *http.Request) {
	idx := s.store.Index()
	ds, err := s.store.Deployments(r.URL.Query().Get("prefix"))
	if err != nil {
		writeError(w, err)
		return
	}
	if ds == nil {
		ds = []*structs.Deployment{}
	}
	writeJSON(w, http.StatusOK, idx, ds)
}

// handleDeployment is GET /v1/deployment/{id}.
func (s *httpAPI) handleDeployment(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	d, err := s.deploys.deployment(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, d)
}

// handleDeploymentPromote is PUT /v1/deployment/promote/{id}.
func (s *httpAPI) handleDeploymentPromote(w http.ResponseWriter, r *http.Request) {
	var req structs.DeploymentPromoteRequest
	if err := decodeBody(r, 1<<16, "promote request", &req); err != nil {
		writeError(w, err)
		return
	}
	if req.All && len(req.Groups) > 0 {
		writeError(w, badRequest{fmt.Errorf("promote names groups %v and All: give one or the other", req.Groups)})
		return
	}
	resp, err := s.deploys.promote(r.PathValue("id"), slices.Clone(req.Groups))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

// handleDeploymentFail is PUT /v1/deployment/fail/{id}.
func (s *httpAPI) handleDeploymentFail(w http.ResponseWriter, r *http.Request) {
	resp, err := s.deploys.fail(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

// boolParam reads a boolean query parameter; absent is false.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest{fmt.Errorf("parameter %s=%q is not a boolean", name, v)}
	}
	return b, nil
}
