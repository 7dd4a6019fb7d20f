package main

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/strata-run/strata/internal/testutil"
)

// Point 2 of issue 17: a server process and an agent process started
// with -http-addr; `promtool check metrics` (Debian's prometheus package,
// installed by `make test`) accepts both endpoints, and the metrics named
// in the issue are present and move when a job runs, its task answers
// requests and DNS is asked.
func TestMetricsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: `make tools` installs it (Debian's prometheus package); this test checks the metrics with it")
	}
	srv, agentAddr, pin := startSingleServer(t)
	dnsAddr := srv.args[slices.Index(srv.args, "-dns-addr")+1]
	agent := startAgent(t, srv, "edge-1", "127.0.0.1", agentAddr, pin, "-http-addr", "127.0.0.1:0")
	var agentMetrics string
	testutil.Await(t, 10*time.Second, "the agent prints its metrics address", agent.out.Changed, func() error {
		m := regexp.MustCompile(`Metrics:\s+(http://\S+)`).FindStringSubmatch(agent.out.String())
		if m == nil {
			return errors.New("not printed yet")
		}
		agentMetrics = m[1]
		return nil
	})
	serverMetrics := "http://" + srv.httpAddr + "/v1/metrics?format=prometheus"
	d := &devProc{t: t, httpAddr: srv.httpAddr, dnsAddr: dnsAddr, out: srv.out}
	waitNodes(t, d, 1)
	before := scrapeProcess(t, serverMetrics)

	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	d.mustCLI("run", filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	addr := waitAddrs(t, d, func(a []string) bool { return len(a) == 1 })[0] // DNS: NOERROR
	for i := range 3 {
		if code, _, err := httpGet(fmt.Sprintf("http://%s/r%d", addr, i)); err != nil || code != 200 {
			t.Fatalf("GET the task: %d %v", code, err)
		}
	}
	if _, err := resolveSRV(t, dnsAddr, "no-such-service.service.strata"); err == nil || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Fatalf("a name that does not exist: %v, want NXDOMAIN", err)
	}

	for _, url := range []string{serverMetrics, agentMetrics} {
		body := get(t, url)
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics %s: %v\n%s", url, err, out)
		}
	}

	server := scrapeProcess(t, serverMetrics)
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"strata_placements_total", nil},
		{"strata_allocations", []string{"desired", "run", "client", "running"}},
		{"strata_eval_wait_duration_seconds", nil},
		{"strata_raft_commit_duration_seconds", nil},
		{"strata_fsm_apply_duration_seconds", []string{"command", "JobRegister"}},
		{"strata_heartbeats_total", nil},
		{"strata_dns_queries_total", []string{"rcode", "NXDOMAIN"}},
		{"strata_dns_queries_total", []string{"rcode", "NOERROR"}},
		{"strata_dns_query_duration_seconds", nil},
		{"strata_http_requests_total", []string{"route", "PUT /v1/jobs", "code", "200"}},
		{"strata_http_request_duration_seconds", []string{"route", "PUT /v1/module/{name}/{version}"}},
	} {
		was, now := seriesValue(before, c.name, c.labels...), seriesValue(server, c.name, c.labels...)
		if now <= max(was, 0) {
			t.Errorf("server: %s%v did not move: %v before the job, %v after", c.name, c.labels, was, now)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"strata_raft_state", []string{"state", "Leader"}, 1},
		{"strata_nodes", []string{"status", "ready"}, 1},
		{"strata_deployments", []string{"status", "running"}, -2}, // present: any value
		{"strata_plan_rejections_total", nil, -2},
		{"strata_heartbeats_missed_total", nil, 0},
		{"strata_evals", []string{"state", "queued"}, -2},
	} {
		got := seriesValue(server, c.name, c.labels...)
		if got == -1 || (c.want != -2 && got != c.want) {
			t.Errorf("server: %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	agentNow := scrapeProcess(t, agentMetrics)
	task := []string{"job", "hello", "group", "web", "task", "hello"}
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"strata_agent_wasm_requests_total", append(task, "code", "2xx"), 3},
		{"strata_agent_wasm_request_duration_seconds", task, 3},
		{"strata_agent_tasks", []string{"state", "running"}, 1},
		{"strata_agent_module_cache_misses_total", nil, 1},
		{"strata_agent_module_cache_bytes", nil, 1},
		{"strata_agent_link_up", nil, 1},
		{"strata_agent_link_reconnects_total", nil, 0},
		{"strata_agent_task_restarts_total", []string{"reason", "failure"}, 0},
	} {
		if got := seriesValue(agentNow, c.name, c.labels...); got < c.min {
			t.Errorf("agent: %s%v = %v, want at least %v", c.name, c.labels, got, c.min)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	code, body, err := httpGet(url)
	if err != nil || code != 200 {
		t.Fatalf("GET %s: %d %v %s", url, code, err, body)
	}
	return body
}

func scrapeProcess(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader([]byte(get(t, url))))
	if err != nil {
		t.Fatalf("%s does not parse: %v", url, err)
	}
	return mfs
}

// seriesValue sums the series of name whose labels include want (a
// histogram counts its observations); -1 when there is none.
func seriesValue(mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	total, found := 0.0, false
	for _, m := range mfs[name].GetMetric() {
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == want[i] && l.GetValue() == want[i+1]
			})
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

// strata dev serves its agent's metrics with -agent-http-addr, beside the
// server's on its API.
func TestDevServesAgentMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts strata dev")
	}
	buildArtifacts(t)
	agentAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDev(t, t.TempDir(), freePort(t), freePort(t), "-agent-http-addr", agentAddr)
	agent := scrapeProcess(t, "http://"+agentAddr+"/v1/metrics?format=prometheus")
	if got := seriesValue(agent, "strata_agent_link_up"); got != 1 {
		t.Errorf("the dev agent's strata_agent_link_up = %v", got)
	}
	server := scrapeProcess(t, "http://"+d.httpAddr+"/v1/metrics?format=prometheus")
	if got := seriesValue(server, "strata_nodes", "status", "ready"); got != 1 {
		t.Errorf("the dev server's strata_nodes{status=ready} = %v", got)
	}
}
