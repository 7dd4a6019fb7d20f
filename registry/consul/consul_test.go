package consul

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/registry"
)

func web(id, node, addr string, health registry.Health, tags ...string) registry.Instance {
	return registry.Instance{
		ID: id, Service: "web", Tags: tags, Address: addr, Port: 8080,
		Node: node, NodeID: "id-" + node, NodeAddress: addr, AllocID: "alloc-" + id, Health: health,
	}
}

func catalog() []registry.Instance {
	return []registry.Instance{
		web("w1", "edge-1", "10.0.0.1", registry.HealthPassing, "prod", "blue"),
		web("w2", "edge-2", "10.0.0.2", registry.HealthPassing, "prod"),
		web("w3", "edge-3", "10.0.0.3", registry.HealthWarning, "prod"),
		web("w4", "edge-1", "10.0.0.1", registry.HealthCritical),
		{ID: "d1", Service: "db", Address: "10.0.0.9", Port: 5432, Node: "edge-9", NodeID: "id-edge-9", Health: registry.HealthPassing},
	}
}

func newHolder(t testing.TB) *registry.Holder {
	t.Helper()
	s, err := registry.NewSnapshot(10, catalog())
	if err != nil {
		t.Fatal(err)
	}
	return registry.NewHolder(s)
}

func newHandler(t testing.TB, h *registry.Holder) *Handler {
	t.Helper()
	hd, err := New(Config{Snapshots: h, Datacenter: "edge-west", NodeName: "server-1",
		Leader: func() (bool, time.Duration) { return true, 42 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	return hd
}

// serve runs the handler behind a real HTTP server and returns a client for it.
func serve(t *testing.T, h *registry.Holder) (*api.Client, string) {
	t.Helper()
	srv := httptest.NewServer(newHandler(t, h))
	t.Cleanup(srv.Close)
	c, err := api.NewClient(&api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv.URL
}

func serviceIDs(es []*api.ServiceEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Service.ID)
	}
	return out
}

func TestCatalogWithConsulClient(t *testing.T) {
	c, _ := serve(t, newHolder(t))

	services, meta, err := c.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]string{"web": {"blue", "prod"}, "db": {}}; len(services) != 2 ||
		!slices.Equal(services["web"], want["web"]) || services["db"] == nil || len(services["db"]) != 0 {
		t.Errorf("Services() = %v, want %v", services, want)
	}
	if meta.LastIndex != 10 || !meta.KnownLeader || meta.LastContact != 42*time.Millisecond {
		t.Errorf("meta = index %d leader %v contact %v", meta.LastIndex, meta.KnownLeader, meta.LastContact)
	}

	cs, _, err := c.Catalog().Service("web", "PROD", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("Catalog().Service(web, prod): %d entries, want 3 (any health)", len(cs))
	}
	got := cs[0]
	if got.ServiceID != "w1" || got.ServiceName != "web" || got.ServiceAddress != "10.0.0.1" || got.ServicePort != 8080 ||
		got.Node != "edge-1" || got.ID != "id-edge-1" || got.Address != "10.0.0.1" || got.Datacenter != "edge-west" ||
		!slices.Equal(got.ServiceTags, []string{"prod", "blue"}) || got.ServiceMeta["alloc_id"] != "alloc-w1" ||
		got.ServiceMeta["external-source"] != "strata" || got.ModifyIndex != 10 || got.ServiceWeights.Passing != 1 {
		t.Errorf("catalog service = %+v", got)
	}
	multi, _, err := c.Catalog().ServiceMultipleTags("web", []string{"prod", "blue"}, nil)
	if err != nil || len(multi) != 1 || multi[0].ServiceID != "w1" {
		t.Errorf("ServiceMultipleTags(prod, blue) = %v, %v", multi, err)
	}
	none, _, err := c.Catalog().Service("nope", "", nil)
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("unknown service: %v, %v (want empty, not nil)", none, err)
	}

	all, _, err := c.Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := serviceIDs(all); !slices.Equal(ids, []string{"w1", "w2", "w3", "w4"}) {
		t.Errorf("Health().Service(web) = %v", ids)
	}
	if st := all[2].Checks.AggregatedStatus(); st != api.HealthWarning {
		t.Errorf("w3 aggregated status %q, want warning", st)
	}
	if st := all[3].Checks.AggregatedStatus(); st != api.HealthCritical {
		t.Errorf("w4 aggregated status %q, want critical", st)
	}
	pass, _, err := c.Health().Service("web", "prod", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids := serviceIDs(pass); !slices.Equal(ids, []string{"w1", "w2"}) {
		t.Errorf("Health().Service(web, prod, passing) = %v", ids)
	}
	e := pass[0]
	if e.Node.Node != "edge-1" || e.Node.Address != "10.0.0.1" || e.Node.Datacenter != "edge-west" ||
		e.Service.Address != "10.0.0.1" || e.Service.Port != 8080 || len(e.Checks) != 1 ||
		e.Checks[0].Status != api.HealthPassing || e.Checks[0].ServiceID != "w1" {
		t.Errorf("health entry = node %+v service %+v checks %+v", e.Node, e.Service, e.Checks)
	}

	nodes, _, err := c.Catalog().Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Node)
	}
	if !slices.Equal(names, []string{"edge-1", "edge-2", "edge-3", "edge-9"}) {
		t.Errorf("Nodes() = %v", names)
	}
	if nodes[3].Address != "10.0.0.9" { // no node address: the instance's
		t.Errorf("edge-9 address %q", nodes[3].Address)
	}

	n, _, err := c.Catalog().Node("edge-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n == nil || n.Node.Node != "edge-1" || n.Node.ID != "id-edge-1" || len(n.Services) != 2 ||
		n.Services["w4"] == nil || n.Services["w1"].Service != "web" {
		t.Errorf("Node(edge-1) = %+v", n)
	}
	if n, _, err := c.Catalog().Node("edge-404", nil); err != nil || n != nil {
		t.Errorf("unknown node: %+v, %v; want nil, nil", n, err)
	}

	self, err := c.Agent().Self()
	if err != nil {
		t.Fatal(err)
	}
	if self["Config"]["Datacenter"] != "edge-west" || self["Member"]["Name"] != "server-1" {
		t.Errorf("Agent().Self() = %v", self)
	}
	if name, err := c.Agent().NodeName(); err != nil || name != "server-1" {
		t.Errorf("Agent().NodeName() = %q, %v", name, err)
	}
	dcs, err := c.Catalog().Datacenters()
	if err != nil || !slices.Equal(dcs, []string{"edge-west"}) {
		t.Errorf("Datacenters() = %v, %v", dcs, err)
	}
	if _, _, err := c.Catalog().Services(&api.QueryOptions{AllowStale: true, Datacenter: "edge-west"}); err != nil {
		t.Errorf("stale query in our dc: %v", err)
	}
}

func TestBadParameters(t *testing.T) {
	_, base := serve(t, newHolder(t))
	cases := []struct {
		path, param string
		status      int
	}{
		{"/v1/health/service/web?index=abc", "index", 400},
		{"/v1/health/service/web?index=-1", "index", 400},
		{"/v1/health/service/web?index=1&wait=soon", "wait", 400},
		{"/v1/health/service/web?wait=-5s", "wait", 400},
		{"/v1/health/service/web?passing=maybe", "passing", 400},
		{"/v1/catalog/service/web?filter=Service.Port==80", "filter", 400},
		{"/v1/catalog/nodes?node-meta=rack:a", "node-meta", 400},
		{"/v1/catalog/services?consistent", "consistent", 400},
		{"/v1/catalog/services?dc=elsewhere", "dc", 400},
		{"/v1/catalog/services?ns=team-a", "ns", 400},
		{"/v1/agent/self?dc=elsewhere", "dc", 400},
	}
	for _, tc := range cases {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.HasPrefix(string(body), tc.param+":") {
			t.Errorf("GET %s: %d %q, want %d naming %q", tc.path, resp.StatusCode, body, tc.status, tc.param)
		}
	}
	resp, err := http.Post(base+"/v1/catalog/services", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	for _, ok := range []string{"/v1/health/service/web?passing", "/v1/health/service/web?passing=false&stale&cached", "/v1/catalog/services?ns=default"} {
		resp, err := http.Get(base + ok)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", ok, resp.StatusCode)
		}
	}
}

// scale returns the delta that scales web to n passing instances w1..wn (the
// critical w4 is removed, w3 becomes passing).
func scale(index uint64, n int) registry.Delta {
	d := registry.Delta{Index: index, Deletes: []string{"w4"}}
	for i := 1; i <= n; i++ {
		id := "w" + string(rune('0'+i))
		if id == "w4" {
			id = "w4b"
		}
		d.Upserts = append(d.Upserts, web(id, "edge-"+id, "10.0.1."+string(rune('0'+i)), registry.HealthPassing, "prod"))
	}
	return d
}

// TestBlockingQueryRealServer: the consul/api client's blocking Health().Service
// over a real socket returns, with the new instances, as soon as the service
// changes (the brief's 100 ms) and not on a change to another service.
func TestBlockingQueryRealServer(t *testing.T) {
	h := newHolder(t)
	arrived := make(chan struct{}, 10)
	hd := newHandler(t, h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("index") {
			arrived <- struct{}{}
		}
		hd.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := api.NewClient(&api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, meta, err := c.Health().Service("web", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		entries []*api.ServiceEntry
		meta    *api.QueryMeta
		at      time.Time
		err     error
	}
	done := make(chan result, 1)
	go func() {
		es, m, err := c.Health().Service("web", "", true, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		done <- result{es, m, time.Now(), err}
	}()
	<-arrived
	// Another service changes first: the query must keep waiting.
	if _, err := h.Apply(registry.Delta{Index: 11, Deletes: []string{"d1"}}); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	if _, err := h.Apply(scale(12, 5)); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if ids := serviceIDs(r.entries); len(ids) != 5 || r.meta.LastIndex != 12 {
		t.Errorf("after scaling to 5: %v at index %d", ids, r.meta.LastIndex)
	}
	if lat := r.at.Sub(changed); lat > 100*time.Millisecond {
		t.Errorf("blocking query returned %v after the change, want within 100ms", lat)
	}
}

// memListener is an in-memory net.Listener (net.Pipe connections), so a real
// http.Server and the real consul/api client can run inside a synctest bubble.
type memListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *memListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8500} }

func (l *memListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestBlockingQueryTiming runs the same client against the same handler on a
// fake clock: a blocking query returns at the instant of the change (0 ms),
// ignores changes to other services, and returns after wait (plus at most
// Consul's wait/16 jitter) when nothing changes, with the index unchanged.
func TestBlockingQueryTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHolder(t)
		ln := newMemListener()
		srv := &http.Server{Handler: newHandler(t, h)}
		go srv.Serve(ln)
		tr := &http.Transport{DialContext: ln.dial}
		defer func() {
			tr.CloseIdleConnections()
			srv.Close()
		}()
		c, err := api.NewClient(&api.Config{Address: "strata.test:8500", HttpClient: &http.Client{Transport: tr}})
		if err != nil {
			t.Fatal(err)
		}
		_, meta, err := c.Health().Service("web", "", true, nil)
		if err != nil {
			t.Fatal(err)
		}

		// Nothing changes: back after wait, same index.
		start := time.Now()
		_, m, err := c.Health().Service("web", "", true, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 2*time.Second || el > 2*time.Second+2*time.Second/16 || m.LastIndex != meta.LastIndex {
			t.Errorf("idle blocking query returned after %v at index %d, want 2s..2.125s at %d", el, m.LastIndex, meta.LastIndex)
		}

		// A change to db at 1s does not wake the web watcher; scaling web at 3s does, at once.
		done := make(chan time.Time, 1)
		var got []*api.ServiceEntry
		go func() {
			es, _, err := c.Health().Service("web", "", true, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
			if err != nil {
				t.Error(err)
			}
			got = es
			done <- time.Now()
		}()
		synctest.Wait()
		testutil.Elapse(time.Second)
		if _, err := h.Apply(registry.Delta{Index: 11, Deletes: []string{"d1"}}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("a change to db woke a watcher of web")
		default:
		}
		testutil.Elapse(2 * time.Second)
		changed := time.Now()
		if _, err := h.Apply(scale(12, 5)); err != nil {
			t.Fatal(err)
		}
		at := <-done
		if at.Sub(changed) != 0 || len(got) != 5 {
			t.Errorf("returned %v after the scale change with %d instances, want at once with 5", at.Sub(changed), len(got))
		}
	})
}
