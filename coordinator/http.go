package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/coordinator/ui"
)

// MaxModuleSize bounds a pushed module.
const MaxModuleSize = 64 << 20

// maxJobSize bounds a submitted job's JSON.
const maxJobSize = 4 << 20

// httpAPI is the HTTP API: routes, read consistency, and handlers that
// are thin (decode, call the part that owns the operation, encode). It
// holds the parts it calls, not the Server. Every response to a read
// carries X-Strata-Index.
type httpAPI struct {
	store    *state.Store
	node     *raftNode // leadership, for read modes and the operator's Raft view
	cluster  *cluster
	jobs     *registrar
	tokens   *tokenIssuer
	drainer  *drainer
	logs     *logRouter
	detector *failureDetector
	deploys  *deployOps
	ops      *allocOps    // allocation stop, restart, signal, stats
	acls     *aclResolver // what a request's token may do (http_acl.go)
	admin    *aclAdmin    // the ACL system's writes
	leader   *leaderProxy // forwards to the leader over the Raft port
	metrics  *serverMetrics
	// consul serves Consul's catalog and health API from the service
	// catalog (consulRoutes).
	consul http.Handler
	events *eventStream // the event stream (events_http.go)
}

// handler returns the routes, each behind its ACL check (routeNeeds in
// http_acl.go says what each needs).
func (s *httpAPI) handler() http.Handler {
	mux := s.newRouteMux()
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
	read("GET /v1/job/{id}/deployments", s.handleJobDeployments)
	read("GET /v1/job/{id}/deployment", s.handleJobDeployment)
	mux.HandleFunc("PUT /v1/job/{id}/plan", s.handleJobPlan)
	mux.HandleFunc("PUT /v1/job/{id}/revert", s.handleJobRevert)
	read("GET /v1/deployments", s.handleDeployments)
	read("GET /v1/deployment/{id}", s.handleDeployment)
	mux.HandleFunc("PUT /v1/deployment/promote/{id}", s.handleDeploymentPromote)
	mux.HandleFunc("PUT /v1/deployment/fail/{id}", s.handleDeploymentFail)
	read("GET /v1/evaluation/{id}", s.handleEval)
	read("GET /v1/allocations", s.handleAllocs)
	read("GET /v1/allocation/{id}", s.handleAlloc)
	mux.HandleFunc("GET /v1/client/allocation/{id}/logs", s.handleAllocLogs)
	mux.HandleFunc("PUT /v1/module/{name}/{version}", s.handleModulePush)
	read("GET /v1/modules", s.handleModules)
	read("GET /v1/nodes", s.handleNodes)
	read("GET /v1/services", s.handleServices)
	read("GET /v1/service/{name}", s.handleService)
	for _, p := range consulRoutes {
		mux.Handle(p, s.consul)
	}
	mux.HandleFunc("PUT /v1/node/{id}/drain", s.handleNodeDrain)
	mux.HandleFunc("POST /v1/agent/tokens", s.handleTokenCreate)
	read("GET /v1/agent/tokens", s.handleTokens)
	mux.HandleFunc("DELETE /v1/agent/token/{id}", s.handleTokenRevoke)
	mux.HandleFunc("GET /v1/operator/raft/configuration", s.handleRaftConfiguration)
	mux.HandleFunc("DELETE /v1/operator/raft/peer", s.handleRaftRemovePeer)
	mux.Handle("GET /v1/metrics", s.metrics.handler())
	mux.HandleFunc("GET /v1/event/stream", s.events.serve)
	mux.Handle("GET /ui/", ui.Handler("/ui/"))
	s.opsRoutes(mux, read)
	s.aclRoutes(mux)
	return mux
}

// readMode implements Nomad/Consul read consistency. By default a read is
// consistent: it is served from this server's state once that state holds
// every write the cluster acknowledged before the read (readBarrier: the
// leader's read index). ?stale serves this server's state as it is, even
// with no leader (fast, possibly behind; X-Strata-Index says how far);
// ?consistent is served by the leader itself (forwarded) after it
// confirms its leadership.
func (s *httpAPI) readMode(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// checkQuery has refused malformed values.
		stale, _ := queryBool(r, "stale", false)
		consistent, _ := queryBool(r, "consistent", false)
		switch {
		case stale:
		case consistent:
			if !s.node.isLeader() {
				if isForwarded(r.Context()) { // forwarded once already: no second hop
					writeError(w, &NotLeaderError{Leader: s.node.leader()})
					return
				}
				s.proxyToLeader(w, r)
				return
			}
			if _, err := s.node.leaderReadIndex(); err != nil {
				writeError(w, err)
				return
			}
		default:
			if err := s.node.readBarrier(r.Context()); err != nil {
				writeError(w, err)
				return
			}
		}
		w.Header().Set("X-Strata-KnownLeader", strconv.FormatBool(s.node.leader() != ""))
		h(w, r)
	})
}

// proxyToLeader forwards a read to the leader (over the Raft port, with
// its token: leaderProxy).
func (s *httpAPI) proxyToLeader(w http.ResponseWriter, r *http.Request) {
	s.leader.forward(w, r)
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
	case errors.Is(err, ErrPermissionDenied), errors.Is(err, ErrACLTokenNotFound), errors.Is(err, ErrACLTokenExpired):
		status = http.StatusForbidden
	case errors.As(err, &bad):
		status = http.StatusBadRequest
	case errors.As(err, new(tooLarge)):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, state.ErrIndexMismatch), errors.Is(err, state.ErrDeploymentEnded):
		status = http.StatusConflict
	case errors.Is(err, ErrModuleExists):
		status = http.StatusConflict
	case errors.As(err, &nl), errors.Is(err, ErrNotLeader):
		status = http.StatusServiceUnavailable
		if nl != nil && nl.NotApplied {
			w.Header().Set(structs.NotAppliedHeader, "true")
		}
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, state.ErrRefused), errors.Is(err, ErrAllocNotRunning):
		status = http.StatusConflict
	case errors.Is(err, ErrNodeUnavailable):
		status = http.StatusBadGateway
	}
	writeJSON(w, status, 0, structs.APIError{Error: err.Error()})
}

type badRequest struct{ error }

func (b badRequest) Unwrap() error { return b.error }

// blockingWait implements Consul/Nomad blocking queries: with ?index=N the
// request waits (up to ?wait=, default 5m, max 10m: blockingParams) until the state index
// passes N, then answers.
func (s *httpAPI) blockingWait(r *http.Request) {
	min, wait, err := blockingParams(r) // checkQuery has refused malformed values
	if err != nil || min == 0 {
		return
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
