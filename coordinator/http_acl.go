package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/strata-run/strata/coordinator/acl"
	"github.com/strata-run/strata/coordinator/structs"
)

// routeNeeds is what every route of the HTTP API needs, by its pattern as
// registered (http.go): the ACL check of a request is this table. A route
// registered without an entry panics when the API is built, so no route
// can be open by omission; TestRouteTable checks every entry against the
// routes (or the list of routes other branches are adding).
//
// The choices: what reads jobs and what they run (allocations,
// evaluations, versions, modules, deployments, services) is the default
// namespace's list-jobs or read-job, what changes them (register, stop,
// plan, revert, promote, fail, module push) its submit-job, a task's log
// its read-logs; nodes are node read/write; join tokens agent read/write;
// Raft peers and heartbeat statistics operator read/write; ACL policies
// and tokens a management token. The Consul-compatible routes map as
// Consul's ACLs do: services (service:read) are namespace read-job,
// nodes (node:read) node read, /v1/agent/self (agent:read) agent read,
// the datacenters need nothing. Open: the leader and peers (as Nomad's
// /v1/status), and the bootstrap (refused once done).
var routeNeeds = map[string]acl.Need{
	"GET /v1/status/leader":     acl.NeedOpen,
	"GET /v1/status/peers":      acl.NeedOpen,
	"GET /v1/status/heartbeats": acl.NeedOperator(acl.PolicyRead),

	"GET /v1/jobs":                        acl.NeedNamespace(acl.CapListJobs),
	"PUT /v1/jobs":                        acl.NeedNamespace(acl.CapSubmitJob),
	"POST /v1/jobs":                       acl.NeedNamespace(acl.CapSubmitJob),
	"GET /v1/job/{id}":                    acl.NeedNamespace(acl.CapReadJob),
	"DELETE /v1/job/{id}":                 acl.NeedNamespace(acl.CapSubmitJob),
	"GET /v1/job/{id}/allocations":        acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/job/{id}/versions":           acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/evaluation/{id}":             acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/allocations":                 acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/allocation/{id}":             acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/client/allocation/{id}/logs": acl.NeedNamespace(acl.CapReadLogs),
	"PUT /v1/module/{name}/{version}":     acl.NeedNamespace(acl.CapSubmitJob),
	"GET /v1/modules":                     acl.NeedNamespace(acl.CapReadJob),

	// Deployments (the lead's branch): reads as the job's, changes as a
	// registration.
	"GET /v1/job/{id}/deployments":    acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/job/{id}/deployment":     acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/deployments":             acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/deployment/{id}":         acl.NeedNamespace(acl.CapReadJob),
	"PUT /v1/deployment/promote/{id}": acl.NeedNamespace(acl.CapSubmitJob),
	"PUT /v1/deployment/fail/{id}":    acl.NeedNamespace(acl.CapSubmitJob),
	"PUT /v1/job/{id}/plan":           acl.NeedNamespace(acl.CapSubmitJob),
	"PUT /v1/job/{id}/revert":         acl.NeedNamespace(acl.CapSubmitJob),

	"GET /v1/nodes":                  acl.NeedNode(acl.PolicyRead),
	"PUT /v1/node/{id}/drain":        acl.NeedNode(acl.PolicyWrite),
	"POST /v1/node/{id}/eligibility": acl.NeedNode(acl.PolicyWrite),

	// The operator's routes (http_ops.go), with Nomad's needs: a job's
	// summary is read-job, scaling scale-job or submit-job, stopping,
	// restarting and signalling an allocation alloc-lifecycle, its stats
	// read-job; the servers' members agent read (Nomad's /v1/agent/
	// members); a garbage collection a management token (Nomad's
	// /v1/system/gc); deleting a module version submit-job, as pushing.
	"GET /v1/job/{id}/summary": acl.NeedNamespace(acl.CapReadJob),
	"POST /v1/job/{id}/scale":  acl.NeedNamespaceEither(acl.CapScaleJob, acl.CapSubmitJob),
	// Forcing a periodic job's launch: submit-job, as Nomad's.
	"PUT /v1/job/{id}/periodic/force": acl.NeedNamespace(acl.CapSubmitJob),
	// Dispatching a parameterized job: dispatch-job or submit-job.
	"POST /v1/job/{id}/dispatch":              acl.NeedNamespaceEither(acl.CapDispatchJob, acl.CapSubmitJob),
	"POST /v1/allocation/{id}/stop":           acl.NeedNamespace(acl.CapAllocLifecycle),
	"POST /v1/client/allocation/{id}/signal":  acl.NeedNamespace(acl.CapAllocLifecycle),
	"POST /v1/client/allocation/{id}/restart": acl.NeedNamespace(acl.CapAllocLifecycle),
	"GET /v1/client/allocation/{id}/stats":    acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/agent/members":                   acl.NeedAgent(acl.PolicyRead),
	"PUT /v1/system/gc":                       acl.NeedManagement,
	"DELETE /v1/module/{name}/{version}":      acl.NeedNamespace(acl.CapSubmitJob),

	// Services: Strata's own view (Nomad's paths), and Consul's catalog
	// and health API (http_consul.go).
	"GET /v1/services":               acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/service/{name}":         acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/catalog/services":       acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/catalog/service/{name}": acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/health/service/{name}":  acl.NeedNamespace(acl.CapReadJob),
	"GET /v1/catalog/nodes":          acl.NeedNode(acl.PolicyRead),
	"GET /v1/catalog/node/{name}":    acl.NeedNode(acl.PolicyRead),
	"GET /v1/catalog/datacenters":    acl.NeedOpen,
	"GET /v1/agent/self":             acl.NeedAgent(acl.PolicyRead),

	"POST /v1/agent/tokens":       acl.NeedAgent(acl.PolicyWrite),
	"GET /v1/agent/tokens":        acl.NeedAgent(acl.PolicyRead),
	"DELETE /v1/agent/token/{id}": acl.NeedAgent(acl.PolicyWrite),

	"GET /v1/operator/raft/configuration": acl.NeedOperator(acl.PolicyRead),
	"DELETE /v1/operator/raft/peer":       acl.NeedOperator(acl.PolicyWrite),

	// Metrics, the event stream and the UI (the ops branch): metrics open,
	// as Nomad's /v1/metrics (a scraper sends no token; the server's
	// labels name no job, node, path or secret: docs/RATIONALE.md,
	// Metrics), the stream for any token (its events are filtered by what
	// the token may read), the UI's static files open (the UI sends the
	// token it is given).
	"GET /v1/metrics":      acl.NeedOpen,
	"GET /v1/event/stream": acl.NeedToken,
	"GET /ui/":             acl.NeedOpen,

	// The ACL system itself. A policy is readable by a token that names
	// it (the handler checks), the token's own record by the token.
	"PUT /v1/acl/bootstrap":           acl.NeedOpen,
	"POST /v1/acl/bootstrap":          acl.NeedOpen,
	"GET /v1/acl/policies":            acl.NeedManagement,
	"GET /v1/acl/policy/{name}":       acl.NeedToken,
	"PUT /v1/acl/policy/{name}":       acl.NeedManagement,
	"POST /v1/acl/policy/{name}":      acl.NeedManagement,
	"DELETE /v1/acl/policy/{name}":    acl.NeedManagement,
	"GET /v1/acl/tokens":              acl.NeedManagement,
	"PUT /v1/acl/token":               acl.NeedManagement,
	"POST /v1/acl/token":              acl.NeedManagement,
	"GET /v1/acl/token/self":          acl.NeedToken,
	"GET /v1/acl/token/{accessor}":    acl.NeedManagement,
	"DELETE /v1/acl/token/{accessor}": acl.NeedManagement,
}

// routeMux is the API's ServeMux with the ACL check in front of every
// route: Handle looks the pattern up in routeNeeds.
type routeMux struct {
	mux      *http.ServeMux
	api      *httpAPI
	patterns []string // registered, in order
}

func (s *httpAPI) newRouteMux() *routeMux {
	return &routeMux{mux: http.NewServeMux(), api: s}
}

// Handle registers h for pattern behind the route's ACL check. A pattern
// without an entry in routeNeeds panics: declare what it needs.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	need, ok := routeNeeds[pattern]
	if !ok {
		panic(fmt.Sprintf("coordinator: HTTP route %q has no entry in routeNeeds (http_acl.go): say what it needs", pattern))
	}
	m.patterns = append(m.patterns, pattern)
	m.mux.Handle(pattern, m.api.metrics.instrument(pattern, checkQuery(m.api.guard(pattern, need, h))))
}

// HandleFunc is Handle for a function.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

func (m *routeMux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }

type ctxKey int

const (
	aclKey       ctxKey = iota // *requestACL of a request that passed its check
	forwardedKey               // set on requests another server forwarded here
)

// requestACL is what a request's token resolved to.
type requestACL struct {
	acl   *acl.ACL
	token *structs.ACLToken // nil: anonymous, or ACLs disabled
}

// aclFrom is what the request's token may do (everything with ACLs
// disabled): for handlers that filter what they answer (the event
// stream) or check more than their route's need.
func aclFrom(ctx context.Context) (*acl.ACL, *structs.ACLToken) {
	if ra, ok := ctx.Value(aclKey).(*requestACL); ok {
		return ra.acl, ra.token
	}
	return nil, nil
}

// isForwarded reports whether another server forwarded the request.
func isForwarded(ctx context.Context) bool { return ctx.Value(forwardedKey) != nil }

// guard is the ACL check of one route. With ACLs on, a write that reaches
// a follower is forwarded to the leader as it came, token included, and
// checked there against the leader's state (a token just deleted on the
// leader is refused, one just created accepted); reads are checked here.
func (s *httpAPI) guard(pattern string, need acl.Need, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.acls.enabled && r.Method != http.MethodGet && r.Method != http.MethodHead &&
			!isForwarded(r.Context()) && !s.node.isLeader() {
			s.leader.forward(w, r)
			return
		}
		a, tok, err := s.acls.resolve(secretOf(r.Header))
		switch {
		case err != nil && need.Scope == acl.ScopeOpen:
			// An open route checks no token: a stale one does not stop
			// `strata acl bootstrap`.
			a, tok, err = acl.Anonymous(), nil, nil
		case errors.Is(err, ErrACLTokenNotFound), errors.Is(err, ErrACLTokenExpired):
			writeError(w, fmt.Errorf("%w: %s needs %s, which a token that does not resolve cannot grant", err, pattern, need))
			return
		case err != nil:
			writeError(w, fmt.Errorf("resolving the request's ACL token: %w", err))
			return
		}
		if !a.Allows(need) {
			who := "the request's token does not grant it"
			if tok == nil {
				who = "the request has no ACL token (send X-Strata-Token, or set STRATA_TOKEN or -token in the CLI)"
			}
			writeError(w, fmt.Errorf("%w: %s needs %s; %s", ErrPermissionDenied, pattern, need, who))
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), aclKey, &requestACL{acl: a, token: tok})))
	})
}

// leaderProxy forwards an HTTP API request to the leader over the Raft
// port (muxHTTP), headers and token included, so the leader checks it
// against its own state; the leader serves it on the same handler as its
// HTTP API (Server.serveForwarded). After a forwarded write it waits
// until this server has applied the write's index, so the client reads
// its own write here.
type leaderProxy struct {
	node *raftNode
	rp   *httputil.ReverseProxy
}

func newLeaderProxy(node *raftNode) *leaderProxy {
	p := &leaderProxy{node: node}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "leader"
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				leader := node.leader()
				if leader == "" {
					return nil, &NotLeaderError{NotApplied: true}
				}
				return dialMuxContext(ctx, node.mux.localIP(), leader, muxHTTP)
			},
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     time.Minute,
		},
		FlushInterval: -1, // followed logs stream
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method == http.MethodGet || resp.StatusCode/100 != 2 {
				return nil
			}
			if idx, err := strconv.ParseUint(resp.Header.Get("X-Strata-Index"), 10, 64); err == nil && idx > 0 {
				node.waitIndex(idx, 10*time.Second)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var nl *NotLeaderError
			if errors.As(err, &nl) {
				writeError(w, err)
				return
			}
			writeError(w, &NotLeaderError{Leader: node.leader(), NotApplied: isDialError(err),
				Cause: fmt.Errorf("cannot reach it to forward the request: %v", err)})
		},
	}
	return p
}

func (p *leaderProxy) forward(w http.ResponseWriter, r *http.Request) { p.rp.ServeHTTP(w, r) }
