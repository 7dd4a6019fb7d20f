package coordinator

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
)

// The operator's routes (Nomad's paths): job summary and scaling,
// allocation stop, restart, signal and stats, node eligibility, server
// members, garbage collection and module deletion.

// opsRoutes registers the operator's routes on mux.
func (s *httpAPI) opsRoutes(mux *routeMux, read func(string, http.HandlerFunc)) {
	read("GET /v1/job/{id}/summary", s.handleJobSummary)
	mux.HandleFunc("POST /v1/job/{id}/scale", s.handleJobScale)
	mux.HandleFunc("PUT /v1/job/{id}/periodic/force", s.handlePeriodicForce)
	mux.HandleFunc("POST /v1/job/{id}/dispatch", s.handleJobDispatch)
	mux.HandleFunc("POST /v1/allocation/{id}/stop", s.handleAllocStop)
	mux.HandleFunc("POST /v1/client/allocation/{id}/signal", s.handleAllocSignal)
	mux.HandleFunc("POST /v1/client/allocation/{id}/restart", s.handleAllocRestart)
	mux.HandleFunc("GET /v1/client/allocation/{id}/stats", s.handleAllocStats)
	mux.HandleFunc("POST /v1/node/{id}/eligibility", s.handleNodeEligibility)
	mux.HandleFunc("GET /v1/agent/members", s.handleMembers)
	mux.HandleFunc("PUT /v1/system/gc", s.handleSystemGC)
	mux.HandleFunc("DELETE /v1/module/{name}/{version}", s.handleModuleDelete)
}

// decodeOptional decodes a small JSON body, refusing fields the route
// does not take (decodeBody); an empty body leaves v as it is.
func decodeOptional(r *http.Request, what string, v any) error {
	return decodeJSON(r, maxSmallBody, what, v, true)
}

func (s *httpAPI) handleJobSummary(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	sum, err := jobSummary(s.store, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, sum)
}

func (s *httpAPI) handleJobScale(w http.ResponseWriter, r *http.Request) {
	var req structs.JobScaleRequest
	if err := decodeOptional(r, "scaling request", &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Count == nil {
		writeError(w, badRequest{errors.New("the scaling request has no Count")})
		return
	}
	group := ""
	for k, v := range req.Target {
		if k != "Group" {
			writeError(w, badRequest{fmt.Errorf("scaling target %q: Strata scales a group only (Target.Group)", k)})
			return
		}
		group = v
	}
	resp, err := s.jobs.scaleJob(r.PathValue("id"), group, *req.Count)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

func (s *httpAPI) handleAllocStop(w http.ResponseWriter, r *http.Request) {
	resp, err := s.ops.stop(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

func (s *httpAPI) handleAllocSignal(w http.ResponseWriter, r *http.Request) {
	var req structs.AllocSignalRequest
	if err := decodeOptional(r, "signal request", &req); err != nil {
		writeError(w, err)
		return
	}
	tasks, err := s.ops.signal(r.Context(), r.PathValue("id"), req.Task, req.Signal)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), structs.AllocTasksResponse{Tasks: tasks})
}

func (s *httpAPI) handleAllocRestart(w http.ResponseWriter, r *http.Request) {
	var req structs.AllocRestartRequest
	if err := decodeOptional(r, "restart request", &req); err != nil {
		writeError(w, err)
		return
	}
	tasks, err := s.ops.restart(r.Context(), r.PathValue("id"), req.TaskName)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), structs.AllocTasksResponse{Tasks: tasks})
}

// handleAllocStats is each task's resource use (?task=NAME for one).
func (s *httpAPI) handleAllocStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.ops.stats(r.Context(), r.PathValue("id"), r.URL.Query().Get("task"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), st)
}

func (s *httpAPI) handleNodeEligibility(w http.ResponseWriter, r *http.Request) {
	var req structs.NodeEligibilityRequest
	if err := decodeOptional(r, "eligibility request", &req); err != nil {
		writeError(w, err)
		return
	}
	var eligible bool
	switch req.Eligibility {
	case structs.NodeEligible:
		eligible = true
	case structs.NodeIneligible:
	default:
		writeError(w, badRequest{fmt.Errorf("eligibility %q: want %q or %q", req.Eligibility, structs.NodeEligible, structs.NodeIneligible)})
		return
	}
	n, err := findNode(s.store, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	_, idx, err := s.node.apply(&state.NodeEligibility{NodeID: n.ID, Eligible: eligible})
	if err != nil {
		writeError(w, err)
		return
	}
	waitApplied(s.store, idx, applyTimeout)
	n, err = s.store.Node(n.ID)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, n)
}

func (s *httpAPI) handleMembers(w http.ResponseWriter, r *http.Request) {
	m, err := s.cluster.members(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), m)
}

// gcKeepVersions is how many of each job's newest versions a garbage
// collection keeps (Nomad's JobTrackedVersions).
const gcKeepVersions = 6

func (s *httpAPI) handleSystemGC(w http.ResponseWriter, r *http.Request) {
	res, idx, err := s.node.apply(&state.SystemGC{KeepVersions: gcKeepVersions})
	if err != nil {
		writeError(w, err)
		return
	}
	out, _ := res.(*state.GCResult)
	if out == nil {
		out = &structs.GCResult{}
	}
	writeJSON(w, http.StatusOK, idx, out)
}

func (s *httpAPI) handleModuleDelete(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	idx, err := s.jobs.deleteModule(name, version)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, map[string]string{"Deleted": name + "@" + version})
}
