package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/spec"
)

// MaxModuleSize bounds a pushed module.
const MaxModuleSize = 64 << 20

// maxJobSize bounds a submitted job's JSON.
const maxJobSize = 4 << 20

// Handler returns the HTTP API. Handlers are thin: decode, call the
// server, encode. Every response to a read carries X-Strata-Index.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	read := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.readMode(h)) }
	mux.HandleFunc("GET /v1/status/leader", s.handleLeader)
	mux.HandleFunc("GET /v1/status/peers", s.handlePeers)
	mux.HandleFunc("GET /v1/status/heartbeats", s.handleHeartbeats)
	read("GET /v1/jobs", s.handleJobs)
	mux.HandleFunc("PUT /v1/jobs", s.handleJobRegister)
	mux.HandleFunc("POST /v1/jobs", s.handleJobRegister)
	read("GET /v1/job/{id}", s.handleJob)
	mux.HandleFunc("DELETE /v1/job/{id}", s.handleJobStop)
	read("GET /v1/job/{id}/allocations", s.handleJobAllocs)
	read("GET /v1/job/{id}/versions", s.handleJobVersions)
	read("GET /v1/evaluation/{id}", s.handleEval)
	read("GET /v1/allocations", s.handleAllocs)
	read("GET /v1/allocation/{id}", s.handleAlloc)
	mux.HandleFunc("GET /v1/client/allocation/{id}/logs", s.handleAllocLogs)
	mux.HandleFunc("PUT /v1/module/{name}/{version}", s.handleModulePush)
	read("GET /v1/modules", s.handleModules)
	read("GET /v1/nodes", s.handleNodes)
	read("GET /v1/catalog/services", s.handleServices)
	read("GET /v1/catalog/service/{name}", s.handleService)
	mux.HandleFunc("PUT /v1/node/{id}/drain", s.handleNodeDrain)
	mux.HandleFunc("POST /v1/agent/tokens", s.handleTokenCreate)
	read("GET /v1/agent/tokens", s.handleTokens)
	mux.HandleFunc("DELETE /v1/agent/token/{id}", s.handleTokenRevoke)
	mux.HandleFunc("GET /v1/operator/raft/configuration", s.handleRaftConfiguration)
	mux.HandleFunc("DELETE /v1/operator/raft/peer", s.handleRaftRemovePeer)
	return mux
}

// readMode implements Nomad/Consul read consistency. By default a read is
// served from this server's state if it knows a leader (the state is at
// most a replication delay behind; X-Strata-Index says how far it is).
// ?stale serves it even with no leader (e.g. during an outage);
// ?consistent serves it from the leader after it confirms its leadership.
func (s *Server) readMode(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Has("stale"):
		case q.Has("consistent"):
			if !s.IsLeader() {
				s.proxyToLeader(w, r)
				return
			}
			if err := s.raft.VerifyLeader().Error(); err != nil {
				writeError(w, &NotLeaderError{Leader: s.Leader()})
				return
			}
		default:
			if s.Leader() == "" {
				writeError(w, fmt.Errorf("%w: no cluster leader is known, so this server's state may be outdated; add ?stale to read it anyway", ErrNotLeader))
				return
			}
		}
		w.Header().Set("X-Strata-KnownLeader", strconv.FormatBool(s.Leader() != ""))
		h(w, r)
	})
}

// proxyToLeader forwards a read to the leader's HTTP API.
func (s *Server) proxyToLeader(w http.ResponseWriter, r *http.Request) {
	leader := s.Leader()
	if leader == "" {
		writeError(w, &NotLeaderError{})
		return
	}
	var si ServerInfo
	if err := s.call(r.Context(), leader, "info", nil, &si); err != nil || si.HTTPAddr == "" {
		writeError(w, fmt.Errorf("cannot reach the leader's HTTP API: %v", err))
		return
	}
	target := &url.URL{Scheme: "http", Host: si.HTTPAddr}
	httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	peers, err := s.RaftPeers()
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

func (s *Server) handleRaftConfiguration(w http.ResponseWriter, r *http.Request) {
	peers, err := s.RaftPeers()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, 0, peers)
}

func (s *Server) handleRaftRemovePeer(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		id = r.URL.Query().Get("address")
	}
	if id == "" {
		writeError(w, badRequest{errors.New("name the server: ?id=ID or ?address=IP:PORT")})
		return
	}
	if err := s.RemovePeer(id); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, 0, map[string]string{"Removed": id})
}

func writeJSON(w http.ResponseWriter, status int, index uint64, v any) {
	w.Header().Set("Content-Type", "application/json")
	if index > 0 {
		w.Header().Set("X-Strata-Index", strconv.FormatUint(index, 10))
	}
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var nl *NotLeaderError
	var bad badRequest
	switch {
	case errors.As(err, &bad):
		status = http.StatusBadRequest
	case errors.Is(err, ErrModuleExists):
		status = http.StatusConflict
	case errors.As(err, &nl), errors.Is(err, ErrNotLeader):
		status = http.StatusServiceUnavailable
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrNodeUnavailable):
		status = http.StatusBadGateway
	}
	writeJSON(w, status, 0, structs.APIError{Error: err.Error()})
}

type badRequest struct{ error }

func (b badRequest) Unwrap() error { return b.error }

// blockingWait implements Consul/Nomad blocking queries: with ?index=N the
// request waits (up to ?wait=, default 5m, max 10m) until the state index
// passes N, then answers.
func (s *Server) blockingWait(r *http.Request) {
	q := r.URL.Query()
	min, err := strconv.ParseUint(q.Get("index"), 10, 64)
	if err != nil || min == 0 {
		return
	}
	wait := 5 * time.Minute
	if d, err := time.ParseDuration(q.Get("wait")); err == nil && d > 0 {
		wait = min64(d, 10*time.Minute)
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	for {
		ch := s.store.Watch()
		if s.store.Index() > min {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

func min64(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func (s *Server) handleLeader(w http.ResponseWriter, r *http.Request) {
	leader := s.Leader()
	if leader == "" {
		writeError(w, &NotLeaderError{})
		return
	}
	writeJSON(w, http.StatusOK, 0, leader)
}

// handleHeartbeats serves this server's HeartbeatStats (counted while it
// leads).
func (s *Server) handleHeartbeats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, 0, s.HeartbeatStats())
}

func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	idx := s.store.Index()
	jobs, err := s.store.Jobs()
	if err != nil {
		writeError(w, err)
		return
	}
	out := []structs.JobListEntry{}
	for _, j := range jobs {
		allocs, err := s.store.JobAllocs(j.Job.ID)
		if err != nil {
			writeError(w, err)
			return
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
	writeJSON(w, http.StatusOK, idx, out)
}

func (s *Server) handleJobRegister(w http.ResponseWriter, r *http.Request) {
	var req structs.JobRegisterRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxJobSize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, badRequest{fmt.Errorf("malformed job JSON: %w", err)})
		return
	}
	resp, err := s.RegisterJob(req.Job)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp.Index, resp)
}

func (s *Server) handleJob(w http.ResponseWriter, r *http.Request) {
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

func (s *Server) handleJobStop(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	evalID := newEvalID()
	_, idx, err := s.apply(&state.JobStop{JobID: id, EvalID: evalID})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, map[string]any{"JobID": id, "EvalID": evalID, "Index": idx})
}

func (s *Server) handleJobAllocs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.blockingWait(r)
	idx := s.store.Index()
	rec, err := s.store.Job(id)
	if err != nil {
		writeError(w, err)
		return
	}
	if rec == nil {
		writeError(w, fmt.Errorf("job %q: %w", id, ErrNotFound))
		return
	}
	allocs, err := s.store.JobAllocs(id)
	if err != nil {
		writeError(w, err)
		return
	}
	resp := structs.JobAllocsResponse{Allocations: allocs, Stopped: rec.Stopped, Version: rec.Version}
	if resp.Allocations == nil {
		resp.Allocations = []*structs.Alloc{}
	}
	if rec.LatestEvalID != "" {
		if resp.LatestEval, err = s.store.Eval(rec.LatestEvalID); err != nil {
			writeError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, idx, resp)
}

func (s *Server) handleJobVersions(w http.ResponseWriter, r *http.Request) {
	vs, err := s.store.JobVersions(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if len(vs) == 0 {
		writeError(w, fmt.Errorf("job %q: %w", r.PathValue("id"), ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), vs)
}

func (s *Server) handleEval(w http.ResponseWriter, r *http.Request) {
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

func (s *Server) handleModulePush(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if err := spec.ValidModuleName(name); err != nil {
		writeError(w, badRequest{err})
		return
	}
	if err := spec.ValidVersion(version); err != nil {
		writeError(w, badRequest{err})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxModuleSize+1))
	if err != nil {
		writeError(w, badRequest{fmt.Errorf("reading module: %w", err)})
		return
	}
	if len(body) > MaxModuleSize {
		writeError(w, badRequest{fmt.Errorf("module is larger than %d MiB", MaxModuleSize>>20)})
		return
	}
	m, idx, err := s.PushModule(r.Context(), name, version, body)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, idx, m)
}

func (s *Server) handleModules(w http.ResponseWriter, r *http.Request) {
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

func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request) {
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

func (s *Server) handleServices(w http.ResponseWriter, r *http.Request) {
	s.blockingWait(r)
	writeJSON(w, http.StatusOK, s.store.Index(), s.store.Services())
}

func (s *Server) handleService(w http.ResponseWriter, r *http.Request) {
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
func (s *Server) handleAllocs(w http.ResponseWriter, r *http.Request) {
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
func (s *Server) handleAlloc(w http.ResponseWriter, r *http.Request) {
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
func (s *Server) handleAllocLogs(w http.ResponseWriter, r *http.Request) {
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
	rc, err := s.AllocLogs(r.Context(), req)
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

func (s *Server) handleNodeDrain(w http.ResponseWriter, r *http.Request) {
	var req structs.DrainRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, badRequest{fmt.Errorf("malformed drain request: %w", err)})
		return
	}
	var deadline time.Duration
	if req.Deadline != "" {
		d, err := time.ParseDuration(req.Deadline)
		if err != nil || d < 0 {
			writeError(w, badRequest{fmt.Errorf("deadline %q: want a duration like \"1h\"", req.Deadline)})
			return
		}
		deadline = d
	}
	n, err := s.DrainNode(r.PathValue("id"), req.Enable, deadline)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.store.Index(), n)
}
