package edge

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/strata-run/strata/internal/wire"
)

// agentScrape serves h and reads its metrics.
func agentScrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/metrics?format=prometheus", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return mfs
}

// metricValue is the value (a histogram's count) of the series of name
// whose labels include want, summed; -1 if there is none.
func metricValue(mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	total, found := 0.0, false
	for _, m := range mfs[name].GetMetric() {
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			has := false
			for _, l := range m.GetLabel() {
				has = has || (l.GetName() == want[i] && l.GetValue() == want[i+1])
			}
			match = match && has
		}
		if !match {
			continue
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
	if !found {
		return -1
	}
	return total
}

// An http task's requests are counted by job, group, task and status
// class and timed; a requested restart is counted; the running task is
// counted by state; the module fetch from disk is a cache hit.
func TestAgentMetricsMove(t *testing.T) {
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t)
	task := wasmTask(t, n, tiny, wire.ModeHTTP)
	set := newAllocSet(n.deps, n.outbox, nil, func(map[string]bool) {}, n.deps.log)
	a := &Agent{mods: n.mods, link: &link{}, allocs: set}
	a.metrics = newAgentMetrics(a)
	n.deps.metrics = a.metrics
	n.drivers[wire.DriverWasm].(*wasmDriver).metrics = a.metrics
	h := a.MetricsHandler()

	before := agentScrape(t, h)
	for _, name := range []string{"strata_agent_module_cache_bytes", "strata_agent_link_reconnects_total", "strata_agent_link_up"} {
		if metricValue(before, name) < 0 {
			t.Errorf("%s is not exported", name)
		}
	}
	if v := metricValue(before, "strata_agent_module_cache_bytes"); v != float64(len(tiny)) {
		t.Errorf("module cache bytes %v, want the module's %d", v, len(tiny))
	}

	al := testAlloc(t, task, wire.Port{Label: "http"})
	r, done := startRunner(t, n, al)
	set.mu.Lock()
	set.runners[al.ID] = r
	set.mu.Unlock()
	waitStatus(t, n.outbox, al.ID, done, "running")
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(al.Ports[0].Value)) + "/"
	for range 3 {
		if got := getBody(t, url); got != "hello" {
			t.Fatalf("body %q", got)
		}
	}
	if _, err := set.restart(context.Background(), al.ID, ""); err != nil {
		t.Fatal(err)
	}
	waitReport(t, n.outbox, al.ID, done, "running again after the restart", func(st wire.AllocStatus) bool {
		ts := st.TaskStates["task"]
		return st.ClientStatus == "running" && ts != nil && ts.Restarts == 1 && ts.State == wire.TaskRunning
	})

	after := agentScrape(t, h)
	task3 := []string{"job", al.JobID, "group", al.Group, "task", "task"}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"strata_agent_wasm_requests_total", append(task3, "code", "2xx"), 3},
		{"strata_agent_wasm_requests_total", append(task3, "code", "5xx"), 0},
		{"strata_agent_wasm_request_duration_seconds", task3, 3},
		{"strata_agent_task_restarts_total", []string{"reason", "requested"}, 1},
		{"strata_agent_task_restarts_total", []string{"reason", "failure"}, 0},
		{"strata_agent_tasks", []string{"state", "running"}, 1},
		{"strata_agent_module_cache_hits_total", nil, 2},
	} {
		if got := metricValue(after, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// The agent's endpoint serves only /v1/metrics?format=prometheus.
func TestAgentMetricsHandlerRefuses(t *testing.T) {
	a := &Agent{mods: newTestNode(t).mods, link: &link{}, allocs: &allocSet{}}
	a.metrics = newAgentMetrics(a)
	for _, c := range []struct {
		method, path string
		code         int
		says         string
	}{
		{"GET", "/v1/metrics", 400, "format=prometheus"},
		{"GET", "/v1/metrics?format=json", 400, "format=prometheus"},
		{"GET", "/v1/jobs", 404, "only /v1/metrics"},
		{"POST", "/v1/metrics?format=prometheus", 405, "GET"},
	} {
		rec := httptest.NewRecorder()
		a.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != c.code || !strings.Contains(string(body), c.says) {
			t.Errorf("%s %s: %d %s, want %d saying %q", c.method, c.path, rec.Code, body, c.code, c.says)
		}
	}
}

// A dropped link that comes back is one reconnect; the link is up again.
func TestAgentMetricsLinkReconnects(t *testing.T) {
	f := newLinkFixture(t)
	h := f.agent.MetricsHandler()
	if got := metricValue(agentScrape(t, h), "strata_agent_link_reconnects_total"); got != 0 {
		t.Fatalf("reconnects %v before any", got)
	}
	conn, err := f.agent.link.liveConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.CloseWithError(0, "test: drop the link")
	waitAgent(t, f.agent, "the agent to reconnect", 20*time.Second, func() bool { return f.agent.link.sessions.Load() == 2 })
	m := agentScrape(t, h)
	if got := metricValue(m, "strata_agent_link_reconnects_total"); got != 1 {
		t.Errorf("reconnects %v after one", got)
	}
	if got := metricValue(m, "strata_agent_link_up"); got != 1 {
		t.Errorf("link up %v after the reconnect", got)
	}
}
