package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/strata-run/strata/registry"
)

// Consul's blocking-query limits: a query without wait waits DefaultWait, a
// longer wait is cut to MaxWait, and up to wait/16 of random jitter is added so
// that watchers started together do not return together.
const (
	DefaultWait = 5 * time.Minute
	MaxWait     = 10 * time.Minute

	// DefaultDatacenter is Config.Datacenter's default, as in Consul.
	DefaultDatacenter = "dc1"
)

// ErrNoSnapshots is returned by New without Config.Snapshots.
var ErrNoSnapshots = errors.New("consul: Config.Snapshots is required")

// Config configures a Handler.
type Config struct {
	Snapshots  *registry.Holder // required: the catalog served
	Datacenter string           // default "dc1"; a request naming another dc gets 400
	NodeName   string           // this server's name in /v1/agent/self; default "strata"
	// Leader reports whether this server knows the cluster leader and how long
	// ago it last heard from it, for X-Consul-KnownLeader and
	// X-Consul-LastContact. Nil means a leader is always known, contact 0.
	Leader func() (known bool, lastContact time.Duration)
	Logger *slog.Logger // nil = discard
}

// Handler serves Consul's catalog and health HTTP API over a Holder. It is
// safe for concurrent use.
type Handler struct {
	snaps  *registry.Holder
	dc     string
	node   string
	leader func() (bool, time.Duration)
	log    *slog.Logger
	mux    *http.ServeMux
}

// New validates cfg and returns the handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Snapshots == nil {
		return nil, ErrNoSnapshots
	}
	h := &Handler{snaps: cfg.Snapshots, dc: cfg.Datacenter, node: cfg.NodeName, leader: cfg.Leader, log: cfg.Logger}
	if h.dc == "" {
		h.dc = DefaultDatacenter
	}
	if h.node == "" {
		h.node = "strata"
	}
	if h.leader == nil {
		h.leader = func() (bool, time.Duration) { return true, 0 }
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("component", "registry.consul")
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /v1/catalog/services", h.catalogServices)
	h.mux.HandleFunc("GET /v1/catalog/service/{name}", h.catalogService)
	h.mux.HandleFunc("GET /v1/health/service/{name}", h.healthService)
	h.mux.HandleFunc("GET /v1/catalog/nodes", h.catalogNodes)
	h.mux.HandleFunc("GET /v1/catalog/node/{name}", h.catalogNode)
	h.mux.HandleFunc("GET /v1/catalog/datacenters", h.datacenters)
	h.mux.HandleFunc("GET /v1/agent/self", h.agentSelf)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// query is the parsed common query string of a request.
type query struct {
	index uint64        // blocking: wait for the watched index to pass this
	wait  time.Duration // blocking: at most this long (with jitter)
	tags  []string      // tag filters (all must match), where the endpoint takes them
}

// paramError is a 400 naming the parameter.
type paramError struct{ param, msg string }

func (e *paramError) Error() string { return e.param + ": " + e.msg }

// unsupported are Consul parameters that would change the result and that
// Strata does not implement: refused rather than ignored.
var unsupported = []string{"filter", "node-meta", "near", "hash", "peer", "sameness-group", "consistent"}

func (h *Handler) parseQuery(r *http.Request) (query, error) {
	v := r.URL.Query()
	var q query
	for _, p := range unsupported {
		if v.Has(p) {
			return q, &paramError{p, "not supported by Strata (every answer comes from this server's catalog snapshot, as with ?stale)"}
		}
	}
	for _, p := range []string{"ns", "partition"} {
		if s := v.Get(p); s != "" && s != "default" {
			return q, &paramError{p, fmt.Sprintf("%q does not exist: Strata has only the default one", s)}
		}
	}
	if dc := v.Get("dc"); dc != "" && dc != h.dc {
		return q, &paramError{"dc", fmt.Sprintf("no path to datacenter %q (this is %q)", dc, h.dc)}
	}
	if s := v.Get("index"); s != "" {
		i, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, &paramError{"index", fmt.Sprintf("invalid value %q", s)}
		}
		q.index = i
	}
	q.wait = DefaultWait
	if s := v.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return q, &paramError{"wait", fmt.Sprintf("invalid duration %q", s)}
		}
		q.wait = min(d, MaxWait)
	}
	q.tags = v["tag"]
	return q, nil
}

// block waits until watched(snapshot) passes q.index, for at most q.wait plus
// jitter, and returns the snapshot to answer from and the index to report. A
// query without index (or 0) returns at once. It never polls: it sleeps until
// a snapshot is published and re-checks only then.
func (h *Handler) block(ctx context.Context, q query, watched func(*registry.Snapshot) uint64) (*registry.Snapshot, uint64) {
	snap := h.snaps.Snapshot()
	idx := watched(snap)
	if q.index == 0 || idx > q.index {
		return snap, max(idx, 1)
	}
	wait := q.wait
	if j := int64(wait / 16); j > 0 {
		wait += time.Duration(rand.Int64N(j))
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		next, err := h.snaps.Wait(ctx, snap.Index())
		snap = next
		idx = watched(snap)
		if err != nil || idx > q.index {
			return snap, max(idx, 1) // Consul never reports index 0
		}
	}
}

// serviceIndex is the index a service's watchers wait on: its own while it
// exists, else the catalog's last change (which covers its removal).
func serviceIndex(name string) func(*registry.Snapshot) uint64 {
	return func(s *registry.Snapshot) uint64 {
		if i, ok := s.ServiceIndex(name); ok {
			return i
		}
		return s.ChangeIndex()
	}
}

func nodeIndex(name string) func(*registry.Snapshot) uint64 {
	return func(s *registry.Snapshot) uint64 {
		if n, ok := s.Node(name); ok {
			return n.Index
		}
		return s.ChangeIndex()
	}
}

func changeIndex(s *registry.Snapshot) uint64 { return s.ChangeIndex() }

// serve parses the query, blocks as asked, and writes the JSON that build makes.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, watched func(*registry.Snapshot) uint64,
	build func(*registry.Snapshot, query) any) {
	q, err := h.parseQuery(r)
	if err == nil && r.URL.Query().Has("passing") {
		_, err = passing(r)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	snap, idx := h.block(r.Context(), q, watched)
	known, last := h.leader()
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	hd.Set("X-Consul-KnownLeader", strconv.FormatBool(known))
	hd.Set("X-Consul-LastContact", strconv.FormatInt(last.Milliseconds(), 10))
	hd.Set("X-Consul-Effective-Consistency", "stale")
	if err := json.NewEncoder(w).Encode(build(snap, q)); err != nil {
		h.log.Debug("writing a response", "path", r.URL.Path, "err", err)
	}
}

// passing parses ?passing as Consul does: present and empty means true.
func passing(r *http.Request) (bool, error) {
	v := r.URL.Query()
	if !v.Has("passing") {
		return false, nil
	}
	s := v.Get("passing")
	if s == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, &paramError{"passing", fmt.Sprintf("invalid value %q", s)}
	}
	return b, nil
}

func (h *Handler) catalogServices(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, changeIndex, func(s *registry.Snapshot, _ query) any {
		out := make(map[string][]string, len(s.Services()))
		for _, name := range s.Services() {
			tags := s.ServiceTags(name)
			if tags == nil {
				tags = []string{}
			}
			out[name] = tags
		}
		return out
	})
}

// instances returns a service's instances carrying every tag in tags.
func instances(s *registry.Snapshot, service string, tags []string) []*registry.Entry {
	if len(tags) == 0 {
		return s.Instances(service, "")
	}
	var out []*registry.Entry
	for _, e := range s.Instances(service, tags[0]) {
		if hasAll(e, tags[1:]) {
			out = append(out, e)
		}
	}
	return out
}

func hasAll(e *registry.Entry, tags []string) bool {
	for _, t := range tags {
		found := false
		for _, et := range e.Tags {
			if equalFold(et, t) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (h *Handler) catalogService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	h.serve(w, r, serviceIndex(name), func(s *registry.Snapshot, q query) any {
		eps := instances(s, name, q.tags)
		out := make([]catalogService, 0, len(eps))
		for _, e := range eps {
			out = append(out, h.catalogServiceOf(e))
		}
		return out
	})
}

func (h *Handler) healthService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	h.serve(w, r, serviceIndex(name), func(s *registry.Snapshot, q query) any {
		onlyPassing, _ := passing(r) // validated by serve
		eps := instances(s, name, q.tags)
		out := make([]serviceEntry, 0, len(eps))
		for _, e := range eps {
			if onlyPassing && e.Health != registry.HealthPassing {
				continue
			}
			out = append(out, serviceEntry{
				Node:    h.nodeOfEntry(e),
				Service: agentServiceOf(e, h.dc),
				Checks:  []healthCheck{checkOf(e)},
			})
		}
		return out
	})
}

func (h *Handler) catalogNodes(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, changeIndex, func(s *registry.Snapshot, _ query) any {
		out := make([]node, 0, len(s.Nodes()))
		for _, name := range s.Nodes() {
			n, _ := s.Node(name)
			out = append(out, h.nodeOf(n, s.NodeInstances(name)))
		}
		return out
	})
}

func (h *Handler) catalogNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	h.serve(w, r, nodeIndex(name), func(s *registry.Snapshot, _ query) any {
		n, ok := s.Node(name)
		if !ok {
			return nil // Consul answers null for an unknown node
		}
		eps := s.NodeInstances(name)
		out := catalogNode{Node: h.nodeOf(n, eps), Services: make(map[string]agentService, len(eps))}
		for _, e := range eps {
			out.Services[e.ID] = agentServiceOf(e, h.dc)
		}
		return out
	})
}

func (h *Handler) datacenters(w http.ResponseWriter, r *http.Request) {
	if _, err := h.parseQuery(r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode([]string{h.dc})
}

// agentSelf is what clients read from /v1/agent/self: the datacenter
// (Prometheus's consul_sd_configs), the node name (Agent().NodeName()).
func (h *Handler) agentSelf(w http.ResponseWriter, r *http.Request) {
	if _, err := h.parseQuery(r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"Config": map[string]any{
			"Datacenter":        h.dc,
			"PrimaryDatacenter": h.dc,
			"NodeName":          h.node,
			"Server":            true,
		},
		"Member": map[string]any{
			"Name":   h.node,
			"Tags":   map[string]string{"dc": h.dc, "role": "consul"},
			"Status": 1,
		},
		"Meta": map[string]string{},
	})
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
