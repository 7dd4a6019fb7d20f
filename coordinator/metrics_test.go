package coordinator

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
)

// scrape reads a server's /v1/metrics?format=prometheus and parses it.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/v1/metrics?format=prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return mfs
}

// value is the value of the series of family name whose labels include
// want (name=value pairs): a counter's or gauge's value, a histogram's
// count. ok is false when there is no such series.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	total, found := 0.0, false
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			ok := false
			for _, l := range m.GetLabel() {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total, found
}

// Point 2 of issue 17 at the coordinator: a job run moves placements,
// allocations by state, the FSM's and Raft's latencies, the broker's
// latency; an agent's heartbeats and a missed deadline move the
// heartbeat counters; a DNS query moves the rcode counter; every API
// request is counted by its route pattern, never its path.
func TestServerMetricsMove(t *testing.T) {
	s, err := New(Config{DataDir: t.TempDir(), Bootstrap: true, DevMode: true, MinHeartbeatTTL: 200 * time.Millisecond, HeartbeatGrace: 100 * time.Millisecond, FailoverGrace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	waitLeading(t, s)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)

	before := scrape(t, ts.URL)
	if v, _ := value(before, "strata_raft_state", "state", "Leader"); v != 1 {
		t.Fatalf("strata_raft_state{state=Leader} = %v on the leader", v)
	}
	if _, ok := value(before, "strata_allocations", "desired", "run", "client", "running"); !ok {
		t.Fatal("allocations by state are not exported before there are any")
	}

	agent := connectAgent(t, s, "n1", "10.0.0.1", true)
	if _, err := s.RegisterJob(dockerJob("web", nil)); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "web running", 10*time.Second, func() bool {
		as := liveAllocs(t, s, "web")
		return len(as) == 1 && as[0].ClientStatus == sched.ClientRunning
	})
	if resp, err := http.Get(ts.URL + "/v1/job/web"); err == nil {
		resp.Body.Close()
	}
	dnsSrv, err := registry.NewDNS(registry.DNSConfig{Snapshots: s.Catalog(), Observer: s.DNSObserver()})
	if err != nil {
		t.Fatal(err)
	}
	q := new(dns.Msg)
	q.SetQuestion("nothing.service.strata.", dns.TypeA)
	dnsSrv.ServeDNS(&discardDNS{}, q)

	after := scrape(t, ts.URL)
	moved := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"strata_placements_total", nil, 1},
		{"strata_allocations", []string{"desired", "run", "client", "running"}, 1},
		{"strata_nodes", []string{"status", "ready"}, 1},
		{"strata_fsm_apply_duration_seconds", []string{"command", "PlanApply"}, 1},
		{"strata_fsm_apply_duration_seconds", []string{"command", "JobRegister"}, 1},
		{"strata_fsm_apply_duration_seconds", []string{"command", "AllocUpdate"}, 1},
		{"strata_fsm_batch_duration_seconds", nil, 1},
		{"strata_raft_commit_duration_seconds", nil, 1},
		{"strata_eval_wait_duration_seconds", nil, 1},
		{"strata_dns_queries_total", []string{"rcode", "NXDOMAIN"}, 1},
		{"strata_dns_query_duration_seconds", nil, 1},
		{"strata_http_requests_total", []string{"route", "GET /v1/job/{id}", "code", "200"}, 1},
		{"strata_http_request_duration_seconds", []string{"route", "GET /v1/job/{id}"}, 1},
		{"strata_http_requests_total", []string{"route", "GET /v1/metrics", "code", "200"}, 1},
	}
	for _, m := range moved {
		v, _ := value(after, m.name, m.labels...)
		b, _ := value(before, m.name, m.labels...)
		if v-b < m.min {
			t.Errorf("%s%v moved from %v to %v, want +%v", m.name, m.labels, b, v, m.min)
		}
	}
	for _, name := range []string{"strata_evals", "strata_deployments", "strata_plan_rejections_total", "strata_raft_applied_index"} {
		if _, ok := after[name]; !ok {
			t.Errorf("%s is not exported", name)
		}
	}
	for _, m := range after["strata_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && strings.Contains(l.GetValue(), "/web") {
				t.Errorf("a route label names a path: %q", l.GetValue())
			}
		}
	}

	// The agent stops beating: its node misses its deadline.
	beats, _ := value(after, "strata_heartbeats_total")
	if beats < 1 {
		t.Errorf("strata_heartbeats_total = %v after an agent beat", beats)
	}
	agent.kill()
	waitState(t, s, "n1 down", 10*time.Second, func() bool {
		n, _ := s.store.Node("n1")
		return n != nil && n.Status == sched.NodeDown
	})
	down := scrape(t, ts.URL)
	if v, _ := value(down, "strata_heartbeats_missed_total"); v != 1 {
		t.Errorf("strata_heartbeats_missed_total = %v after one node missed its deadline", v)
	}
	if v, _ := value(down, "strata_nodes", "status", "down"); v != 1 {
		t.Errorf("strata_nodes{status=down} = %v", v)
	}
}

// Without ?format=prometheus the endpoint says what it serves.
func TestServerMetricsFormat(t *testing.T) {
	s := startTestServer(t)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	for _, q := range []string{"", "?format=json"} {
		resp, err := http.Get(ts.URL + "/v1/metrics" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "format=prometheus") {
			t.Errorf("/v1/metrics%s: %d %s, want 400 naming format=prometheus", q, resp.StatusCode, body)
		}
	}
}

// discardDNS is a dns.ResponseWriter that drops the reply.
type discardDNS struct{ dns.ResponseWriter }

func (discardDNS) WriteMsg(*dns.Msg) error { return nil }
func (discardDNS) RemoteAddr() net.Addr    { return &net.UDPAddr{} }

// The server's DNS observer on the query path: a pre-resolved counter and
// a histogram, no allocation (the registry's hook itself:
// BenchmarkServeDNSObserved).
func BenchmarkObserveDNS(b *testing.B) {
	m := newServerMetrics(nil, &raftNode{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveDNS(dns.RcodeSuccess, 3*time.Microsecond)
	}
}
