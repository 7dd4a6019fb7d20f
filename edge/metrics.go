package edge

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// agentMetrics are one agent's Prometheus metrics, in a registry of its
// own (several agents in one process keep theirs apart), served by
// `strata agent -http-addr` at /v1/metrics?format=prometheus.
//
// Events are counted where they happen (restarts by the runner, requests
// by an http task's observer, cache hits by the module cache); states
// (tasks by state, the module cache's bytes, the link's sessions) are read
// at scrape time. A nil *agentMetrics counts nothing.
type agentMetrics struct {
	reg          *prometheus.Registry
	restarts     *prometheus.CounterVec
	wasmRequests *prometheus.CounterVec
	wasmDuration *prometheus.HistogramVec
}

// wasmBuckets are for per-request instances: tens of microseconds (a
// small module) to seconds (a Go module's start-up, a slow handler).
var wasmBuckets = prometheus.ExponentialBuckets(0.00005, 4, 10) // 50µs … 13s

func newAgentMetrics(a *Agent) *agentMetrics {
	m := &agentMetrics{reg: prometheus.NewRegistry()}
	m.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_agent_task_restarts_total",
		Help: "Task restarts on this agent, by reason: failure (the restart policy) or requested (alloc restart)."}, []string{"reason"})
	m.wasmRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_agent_wasm_requests_total",
		Help: "Requests answered by http-mode wasm tasks, by job, group, task and status class (2xx … 5xx; canceled: the client left first)."},
		[]string{"job", "group", "task", "code"})
	m.wasmDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_agent_wasm_request_duration_seconds",
		Help: "Time to answer a request to an http-mode wasm task (a fresh instance each), by job, group and task.", Buckets: wasmBuckets},
		[]string{"job", "group", "task"})
	for _, reason := range []string{reasonFailure, reasonRequested} {
		m.restarts.WithLabelValues(reason)
	}
	m.reg.MustRegister(m.restarts, m.wasmRequests, m.wasmDuration,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_agent_module_cache_hits_total",
			Help: "Module fetches served from the agent's disk cache."}, func() float64 { return float64(a.mods.hits.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_agent_module_cache_misses_total",
			Help: "Module fetches that downloaded the module from a server."}, func() float64 { return float64(a.mods.misses.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_agent_module_cache_bytes",
			Help: "Bytes of modules (and partial downloads) in the agent's disk cache."}, func() float64 { return float64(a.mods.bytes()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_agent_link_sessions_total",
			Help: "Sessions the agent's link established with a server."}, func() float64 { return float64(a.link.sessions.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_agent_link_reconnects_total",
			Help: "Sessions established after the first: reconnects to a server."}, func() float64 { return float64(max(a.link.sessions.Load()-1, 0)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_agent_link_up",
			Help: "1 while the agent has a session with a server."}, func() float64 {
			a.link.connMu.Lock()
			defer a.link.connMu.Unlock()
			if a.link.conn != nil && a.link.conn.Context().Err() == nil {
				return 1
			}
			return 0
		}),
		&taskCollector{allocs: a.allocs},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Restart reasons (strata_agent_task_restarts_total).
const (
	reasonFailure   = "failure"
	reasonRequested = "requested"
)

func (m *agentMetrics) restarted(reason string) {
	if m != nil {
		m.restarts.WithLabelValues(reason).Inc()
	}
}

// wasmObserver returns the Observe hook (wasmhost.HTTPConfig) of one
// http task: its label children are resolved here, once, so a request
// costs two atomic adds and a histogram observation, no allocation.
func (m *agentMetrics) wasmObserver(job, group, task string) func(status int, elapsed time.Duration) {
	if m == nil {
		return nil
	}
	var byClass [6]prometheus.Counter // 0: canceled, 1: 1xx … 5: 5xx
	for i := range byClass {
		class := "canceled"
		if i > 0 {
			class = string(rune('0'+i)) + "xx"
		}
		byClass[i] = m.wasmRequests.WithLabelValues(job, group, task, class)
	}
	latency := m.wasmDuration.WithLabelValues(job, group, task)
	return func(status int, elapsed time.Duration) {
		class := status / 100
		if class < 0 || class >= len(byClass) {
			class = 5
		}
		byClass[class].Inc()
		latency.Observe(elapsed.Seconds())
	}
}

// MetricsHandler serves the agent's metrics in Prometheus' text exposition
// format at any path; a request without ?format=prometheus gets 400 (as
// the servers' /v1/metrics). It needs no token: the agent has no ACLs, so
// bind it (strata agent -http-addr) where only scrapers reach it.
func (a *Agent) MetricsHandler() http.Handler {
	prom := promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/metrics" {
			http.Error(w, "the agent serves only /v1/metrics?format=prometheus", http.StatusNotFound)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "/v1/metrics answers GET", http.StatusMethodNotAllowed)
			return
		}
		if f := r.URL.Query().Get("format"); f != "prometheus" {
			http.Error(w, "/v1/metrics needs ?format=prometheus (the only format served: Prometheus' text exposition)", http.StatusBadRequest)
			return
		}
		prom.ServeHTTP(w, r)
	})
}

// taskCollector counts the agent's tasks by state at scrape time.
type taskCollector struct{ allocs *allocSet }

var descTasks = prometheus.NewDesc("strata_agent_tasks", "Tasks on this agent by state (pending, running, failed, complete).", []string{"state"}, nil)

func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descTasks }

func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{"pending": 0, "running": 0, "failed": 0, "complete": 0}
	for st, n := range c.allocs.taskCounts() {
		counts[strings.ToLower(st)] += n
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n), st)
	}
}

// taskCounts counts the tasks of every runner, stopping ones included,
// by state.
func (s *allocSet) taskCounts() map[string]int {
	s.mu.Lock()
	runners := make([]*allocRunner, 0, len(s.runners)+len(s.stopping))
	for _, r := range s.runners {
		runners = append(runners, r)
	}
	for _, r := range s.stopping {
		runners = append(runners, r)
	}
	s.mu.Unlock()
	out := map[string]int{}
	for _, r := range runners {
		r.mu.Lock()
		for _, ts := range r.tasks {
			out[ts.state]++
		}
		r.mu.Unlock()
	}
	return out
}

// bytes is the size of what the module cache holds on disk.
func (c *moduleCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, e := range c.entries {
		n += e.size
	}
	return n
}
