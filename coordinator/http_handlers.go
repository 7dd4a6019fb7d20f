package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
)

// The HTTP API's handlers, by route (http.go lists them): decode the
// request, call the part that owns the operation, encode the answer.

func (s *httpAPI) handlePeers(w http.ResponseWriter, r *http.Request) {
	peers, err := s.node.peers()
	if err != nil {
		writeError(w, err)
		return
	}
	addrs := []string{}
	for _, p := range peers {
		addrs = append(addrs, p.Address)
	}
	writeJSON(w, http.StatusOK, 0, addrs)
}

func (s *httpAPI) handleRaftConfiguration(w http.ResponseWriter, r *http.Request) {
	peers, err := s.node.peers()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, 0, peers)
}

func (s *httpAPI) handleRaftRemovePeer(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		id = r.URL.Query().Get("address")
	}
	if id == "" {
		writeError(w, badRequest{errors.New("name the server: ?id=ID or ?address=IP:PORT")})
		return
	}
	if err := s.cluster.removePeer(id); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, 0, map[string]string{"Removed": id})
}

func (s *httpAPI) handleLeader(w http.ResponseWriter, r *http.Request) {
	leader := s.node.leader()
	if leader == "" {
		writeError(w, &NotLeaderError{})
		return
	}
	writeJSON(w, http.StatusOK, 0, leader)
}

// handleHeartbeats serves this server's HeartbeatStats (counted while it
// leads).
func (s *httpAPI) handleHeartbeats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, 0, s.detector.stats())
}

func (s *httpAPI) handleJobs(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	jobs, err := jobList(s.store)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, jobs)
}

func (s *httpAPI) handleJobRegister(w http.ResponseWriter, r *http.Request) {
	var req structs.JobRegisterRequest
	if err := decodeJSON(r, maxJobSize, "job JSON", &req, false); err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.jobs.registerJob(req.Job, req.EnforceIndex, req.JobModifyIndex)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

func (s *httpAPI) handleJob(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	rec, err := s.store.Job(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if rec == nil {
		writeError(w, fmt.Errorf("job %q: %w", r.PathValue("id"), ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, idx, rec)
}

// handleJobStop stops a job; ?purge=true removes it and its history
// (Nomad's purge).
func (s *httpAPI) handleJobStop(w http.ResponseWriter, r *http.Request) {
	purge := false
	if v := r.URL.Query().Get("purge"); v != "" {
		var err error
		if purge, err = strconv.ParseBool(v); err != nil {
			writeError(w, badRequest{fmt.Errorf("purge=%q: want true or false", v)})
			return
		}
	}
	resp, err := s.jobs.stopJob(r.PathValue("id"), purge)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

func (s *httpAPI) handleJobAllocs(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	resp, err := jobAllocs(s.store, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, resp)
}

func (s *httpAPI) handleEval(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.Eval(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if e == nil {
		writeError(w, fmt.Errorf("evaluation %q: %w", r.PathValue("id"), ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), e)
}

func (s *httpAPI) handleModulePush(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxModuleSize {
		writeError(w, tooLarge{what: "the module", limit: MaxModuleSize})
		return
	}
	m, idx, err := s.jobs.pushModuleFrom(r.Context(), r.PathValue("name"), r.PathValue("version"), r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, m)
}

func (s *httpAPI) handleModules(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	mods, err := s.store.Modules()
	if err != nil {
		writeError(w, err)
		return
	}
	if mods == nil {
		mods = []*structs.Module{}
	}
	writeJSON(w, http.StatusOK, idx, mods)
}

func (s *httpAPI) handleNodes(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	nodes, err := s.store.Nodes()
	if err != nil {
		writeError(w, err)
		return
	}
	if nodes == nil {
		nodes = []*structs.NodeRecord{}
	}
	writeJSON(w, http.StatusOK, idx, nodes)
}

func (s *httpAPI) handleServices(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	writeJSON(w, http.StatusOK, s.store.Index(), s.store.Services())
}

func (s *httpAPI) handleService(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	eps := s.store.Endpoints(r.PathValue("name"))
	if r.URL.Query().Has("passing") {
		eps = registry.HealthyWithTag(eps, r.URL.Query().Get("tag"))
	}
	if eps == nil {
		eps = []registry.Endpoint{}
	}
	writeJSON(w, http.StatusOK, idx, eps)
}

// handleAllocs lists allocations, those whose ID starts with ?prefix= if
// given (how the CLI resolves a short ID).
func (s *httpAPI) handleAllocs(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	allocs, err := s.store.AllocsByPrefix(r.URL.Query().Get("prefix"))
	if err != nil {
		writeError(w, err)
		return
	}
	if allocs == nil {
		allocs = []*structs.Alloc{}
	}
	writeJSON(w, http.StatusOK, idx, allocs)
}

// handleAlloc is one allocation with its task states and events.
func (s *httpAPI) handleAlloc(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	a, err := s.store.Alloc(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if a == nil {
		writeError(w, fmt.Errorf("allocation %q: %w", r.PathValue("id"), ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, idx, a)
}

// handleAllocLogs streams a task's log from its agent:
// ?task=NAME (optional for one task), ?type=stdout|stderr, ?follow=true,
// ?tail=N lines. Errors before the first byte are JSON with a status; the
// log itself is text/plain, flushed as it arrives. The agent stops
// streaming when the client goes away.
func (s *httpAPI) handleAllocLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := structs.LogRequest{AllocID: r.PathValue("id"), Task: q.Get("task"), Type: q.Get("type")}
	var err error
	if v := q.Get("follow"); v != "" {
		if req.Follow, err = strconv.ParseBool(v); err != nil {
			writeError(w, badRequest{fmt.Errorf("follow=%q: want true or false", v)})
			return
		}
	}
	if v := q.Get("tail"); v != "" {
		if req.TailLines, err = strconv.Atoi(v); err != nil || req.TailLines < 0 {
			writeError(w, badRequest{fmt.Errorf("tail=%q: want a number of lines", v)})
			return
		}
	}
	rc, err := s.logs.open(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	stop := context.AfterFunc(r.Context(), func() { rc.Close() })
	defer stop()
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rcw := http.NewResponseController(w)
	rcw.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rcw.Flush()
		}
		if err != nil {
			return
		}
	}
}

func (s *httpAPI) handleNodeDrain(w http.ResponseWriter, r *http.Request) {
	var req structs.DrainRequest
	if err := decodeJSON(r, maxSmallBody, "drain request", &req, false); err != nil {
		writeError(w, err)
		return
	}
	var deadline time.Duration
	if req.Deadline != "" {
		d, err := time.ParseDuration(req.Deadline)
		if err != nil || d < 0 || d > maxDrainDeadline {
			writeError(w, badRequest{fmt.Errorf("field Deadline %q: want a duration from 0 to %s, like \"1h\" (0: no deadline)", req.Deadline, maxDrainDeadline)})
			return
		}
		deadline = d
	}
	n, err := s.drainer.drain(r.PathValue("id"), req.Enable, deadline, time.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), n)
}

func (s *httpAPI) handleTokenCreate(w http.ResponseWriter, r *http.Request) {
	var req structs.JoinTokenRequest
	if err := decodeJSON(r, maxSmallBody, "token request", &req, true); err != nil {
		writeError(w, err)
		return
	}
	tok, err := s.tokens.create(req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), tok)
}

func (s *httpAPI) handleTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := s.store.JoinTokens()
	if err != nil {
		writeError(w, err)
		return
	}
	if toks == nil {
		toks = []structs.JoinToken{}
	}
	writeJSON(w, http.StatusOK, s.store.Index(), toks)
}

func (s *httpAPI) handleTokenRevoke(w http.ResponseWriter, r *http.Request) {
	if err := s.tokens.revoke(r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), map[string]string{"Revoked": r.PathValue("id")})
}
