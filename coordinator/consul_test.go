package coordinator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/strata-run/strata/registry"
)

// consulFixture is a server with ACLs on, a fake agent, and the real
// consul/api client against the server's HTTP API; arrived receives when
// a blocking query (one with ?index) reaches the server.
type consulFixture struct {
	*aclFixture
	agent   *fakeAgent
	client  *api.Client // with a read token, sent as X-Consul-Token
	anon    *api.Client // without a token
	arrived chan string
}

func startConsulFixture(t *testing.T) *consulFixture {
	t.Helper()
	f := &consulFixture{aclFixture: startACLServer(t), arrived: make(chan string, 16)}
	h := f.s.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("index") {
			f.arrived <- r.URL.Path
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	var err error
	if f.client, err = api.NewClient(&api.Config{Address: ts.URL, Token: f.readTok.SecretID}); err != nil {
		t.Fatal(err)
	}
	if f.anon, err = api.NewClient(&api.Config{Address: ts.URL}); err != nil {
		t.Fatal(err)
	}
	f.agent = connectFakeAgent(t, f.s, "edge-1", "127.0.0.1")
	return f
}

// place registers job with count copies and reports every new one with an
// endpoint of service, tagged prod; seen maps allocations to their ports.
func (f *consulFixture) place(t *testing.T, job string, count int, service string, seen map[string]int) {
	t.Helper()
	j := dockerJob(job, nil)
	j.Groups[0].Count = count
	if _, err := f.s.RegisterJob(j); err != nil {
		t.Fatal(err)
	}
	waitState(t, f.s, "placements", 10*time.Second, func() bool { return len(liveAllocs(t, f.s, job)) == count })
	reportNew(t, f.s, f.agent, job, service, seen)
}

func entryPorts(es []*api.ServiceEntry) []int {
	var out []int
	for _, e := range es {
		out = append(out, e.Service.Port)
	}
	slices.Sort(out)
	return out
}

// The official consul/api client reads a real Strata server's catalog
// with its token in X-Consul-Token, and its blocking Health().Service
// returns when the service scales (latency logged) and after wait when
// only other services change.
func TestConsulClientAgainstServer(t *testing.T) {
	f := startConsulFixture(t)
	const svc = "web-g-t"
	seen := map[string]int{}
	f.place(t, "web", 3, svc, seen)
	waitCatalog(t, f.s.Catalog(), "3 instances", func(s *registry.Snapshot) bool { return len(s.Passing(svc, "")) == 3 })

	if _, _, err := f.anon.Catalog().Services(nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("catalog without a token, ACLs on: %v, want 403", err)
	}
	services, meta, err := f.client.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(services[svc], []string{"prod"}) || len(services) != 1 || !meta.KnownLeader || meta.LastIndex == 0 {
		t.Fatalf("services %v, meta %+v: want %s with tag prod, a known leader and an index", services, meta, svc)
	}
	entries, meta, err := f.client.Health().Service(svc, "prod", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := entryPorts(entries); !slices.Equal(got, []int{21000, 21001, 21002}) {
		t.Fatalf("passing prod instances on ports %v, want 21000-21002", got)
	}
	for _, e := range entries {
		if e.Node.Node != "edge-1" || e.Node.Address != "127.0.0.1" || e.Service.Address != "127.0.0.1" || e.Checks.AggregatedStatus() != api.HealthPassing {
			t.Fatalf("entry node %+v service %+v checks %s", e.Node, e.Service, e.Checks.AggregatedStatus())
		}
	}
	if self, err := f.client.Agent().Self(); err != nil || self["Config"]["Datacenter"] != "dc1" {
		t.Fatalf("agent self: %v %v", self["Config"], err)
	}

	// Scale to 5: the blocked query returns as soon as the catalog changes.
	type result struct {
		entries []*api.ServiceEntry
		meta    *api.QueryMeta
		at      time.Time
		err     error
	}
	query := func(index uint64, wait time.Duration) <-chan result {
		out := make(chan result, 1)
		go func() {
			es, m, err := f.client.Health().Service(svc, "", true, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
			out <- result{es, m, time.Now(), err}
		}()
		if p := <-f.arrived; p != "/v1/health/service/"+svc {
			t.Errorf("blocking query at %s", p)
		}
		return out
	}
	blocked := query(meta.LastIndex, time.Minute)
	published := make(chan time.Time, 1)
	before := f.s.Catalog().Index()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f.s.Catalog().Wait(ctx, before)
		published <- time.Now()
	}()
	reported := time.Now()
	f.place(t, "web", 5, svc, seen)
	r := <-blocked
	if r.err != nil {
		t.Fatal(r.err)
	}
	at := <-published
	if n := len(r.entries); n <= 3 || r.meta.LastIndex <= meta.LastIndex {
		t.Fatalf("after scaling: %d instances at index %d (was %d)", n, r.meta.LastIndex, meta.LastIndex)
	}
	t.Logf("blocking Health().Service returned %v after the catalog changed (%v after the scale was submitted)",
		r.at.Sub(at).Round(time.Microsecond), r.at.Sub(reported).Round(time.Millisecond))
	for last := r.meta.LastIndex; len(r.entries) < 5; last = r.meta.LastIndex { // the other copy's report
		if r = <-query(last, time.Minute); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if got := entryPorts(r.entries); !slices.Equal(got, []int{21000, 21001, 21002, 21003, 21004}) {
		t.Fatalf("after scaling to 5: ports %v", got)
	}

	// Nothing changes in this service (another one registers meanwhile):
	// the query returns after its wait, at the same index.
	const wait = 500 * time.Millisecond
	start := time.Now()
	idle := query(r.meta.LastIndex, wait)
	f.place(t, "db", 1, "db-g-t", map[string]int{})
	waitCatalog(t, f.s.Catalog(), "the other service", func(s *registry.Snapshot) bool { return len(s.Passing("db-g-t", "")) == 1 })
	q := <-idle
	if q.err != nil {
		t.Fatal(q.err)
	}
	if q.meta.LastIndex != r.meta.LastIndex || len(q.entries) != 5 || q.at.Sub(start) < wait {
		t.Fatalf("idle query: index %d (want %d), %d instances, returned after %v (wait %v)", q.meta.LastIndex, r.meta.LastIndex, len(q.entries), q.at.Sub(start), wait)
	}
	t.Logf("idle blocking query returned after %v (wait %v)", q.at.Sub(start).Round(time.Millisecond), wait)
}
