package coordinator

import (
	"net/http"
	"time"

	"github.com/hashicorp/raft"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// serverMetrics are one server's Prometheus metrics, in a registry of its
// own (never the global default, so several servers in one process keep
// theirs apart), served at GET /v1/metrics?format=prometheus.
//
// Events are counted where they happen, by the part that sees them
// (each holds this pointer; a nil *serverMetrics counts nothing, for
// parts built by tests); states (Raft's, allocations, nodes, deployments,
// the broker's queue) are read at scrape time by stateCollector from
// what is already in memory. Labels are bounded: command names, route
// patterns, status names, rcodes; never a job, node or path.
type serverMetrics struct {
	reg *prometheus.Registry

	raftCommit prometheus.Histogram
	fsmBatch   prometheus.Histogram
	fsmApply   map[state.CmdType]prometheus.Observer // by command type, resolved once
	fsmOther   prometheus.Observer                   // a type this build does not know
	fsmMark    time.Time                             // when the entry being applied started (FSM goroutine only)

	evalWait   prometheus.Histogram
	placements prometheus.Counter
	rejections prometheus.Counter
	beats      prometheus.Counter
	missed     prometheus.Counter

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	dnsQueries  *prometheus.CounterVec
	dnsByRcode  [dns.RcodeBadCookie + 1]prometheus.Counter // the rcodes a reply can carry, resolved once
	dnsDuration prometheus.Histogram
}

// latencyBuckets are for work measured in microseconds to seconds.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 4, 10) // 100µs … 26s

// dnsBuckets are for DNS answers, microseconds to milliseconds.
var dnsBuckets = prometheus.ExponentialBuckets(0.00001, 4, 9) // 10µs … 0.65s

func newServerMetrics(store *state.Store, node *raftNode, broker func() *evalQueue) *serverMetrics {
	m := &serverMetrics{reg: prometheus.NewRegistry()}
	f := promFactory{m.reg}
	m.raftCommit = f.histogram("strata_raft_commit_duration_seconds",
		"Time from proposing a command to Raft on the leader until it is committed and applied.", latencyBuckets)
	m.fsmBatch = f.histogram("strata_fsm_batch_duration_seconds",
		"Time to apply one batch of Raft entries to the state, its bbolt commit included.", latencyBuckets)
	apply := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_fsm_apply_duration_seconds",
		Help: "Time to apply one command to the state inside its batch's transaction, by command type.", Buckets: latencyBuckets},
		[]string{"command"})
	m.reg.MustRegister(apply)
	m.fsmApply = map[state.CmdType]prometheus.Observer{}
	for _, t := range state.CmdTypes() {
		m.fsmApply[t] = apply.WithLabelValues(state.CmdName(t))
	}
	m.fsmOther = apply.WithLabelValues("unknown")
	m.evalWait = f.histogram("strata_eval_wait_duration_seconds",
		"Time from an evaluation entering the leader's broker until a worker acknowledged it (scheduled, or failed).", latencyBuckets)
	m.placements = f.counter("strata_placements_total", "Allocations the plan applier committed.")
	m.rejections = f.counter("strata_plan_rejections_total",
		"Placements the plan applier rejected at apply time (the node's capacity changed since the plan's snapshot); they are re-planned.")
	m.beats = f.counter("strata_heartbeats_total", "Agent heartbeats the leader recorded.")
	m.missed = f.counter("strata_heartbeats_missed_total", "Nodes the leader marked down for missing their heartbeat deadline.")
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_http_requests_total",
		Help: "HTTP API requests answered, by route pattern and status code."}, []string{"route", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_http_request_duration_seconds",
		Help: "Time to answer an HTTP API request, by route pattern.", Buckets: latencyBuckets}, []string{"route"})
	m.dnsQueries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_dns_queries_total",
		Help: "DNS queries answered, by response code."}, []string{"rcode"})
	m.dnsDuration = f.histogram("strata_dns_query_duration_seconds", "Time to answer a DNS query (build, pack and write).", dnsBuckets)
	m.reg.MustRegister(m.httpRequests, m.httpDuration, m.dnsQueries)
	for code := range m.dnsByRcode {
		if name, ok := dns.RcodeToString[code]; ok {
			m.dnsByRcode[code] = m.dnsQueries.WithLabelValues(name)
		}
	}
	m.reg.MustRegister(&stateCollector{store: store, node: node, broker: broker},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// promFactory registers unlabelled metrics.
type promFactory struct{ reg *prometheus.Registry }

func (f promFactory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f promFactory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

// handler serves the registry in Prometheus' text exposition format (or
// OpenMetrics, if the scraper asks for it). JSON, Nomad's default, is not
// served: a request without ?format=prometheus gets 400 saying so.
func (m *serverMetrics) handler() http.Handler {
	prom := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := r.URL.Query().Get("format"); f != "prometheus" {
			writeError(w, badRequest{errMetricsFormat(f)})
			return
		}
		prom.ServeHTTP(w, r)
	})
}

type errMetricsFormat string

func (e errMetricsFormat) Error() string {
	if e == "" {
		return "/v1/metrics needs ?format=prometheus (the only format served: Prometheus' text exposition)"
	}
	return "/v1/metrics: format " + string(e) + " is not served; use ?format=prometheus"
}

// instrument counts the requests of one route (by its pattern, so the
// label set is the route table) by status code, and times them.
func (m *serverMetrics) instrument(pattern string, h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	route := prometheus.Labels{"route": pattern}
	return promhttp.InstrumentHandlerCounter(m.httpRequests.MustCurryWith(route),
		promhttp.InstrumentHandlerDuration(m.httpDuration.MustCurryWith(route), h))
}

// ObserveDNS counts one answered DNS query (registry.DNSObserver): a
// pre-resolved counter per rcode and a histogram, no allocation.
func (m *serverMetrics) ObserveDNS(rcode int, elapsed time.Duration) {
	if rcode >= 0 && rcode < len(m.dnsByRcode) && m.dnsByRcode[rcode] != nil {
		m.dnsByRcode[rcode].Inc()
	} else {
		m.dnsQueries.WithLabelValues("other").Inc()
	}
	m.dnsDuration.Observe(elapsed.Seconds())
}

func (m *serverMetrics) committed(d time.Duration) {
	if m != nil {
		m.raftCommit.Observe(d.Seconds())
	}
}

// batchStart and entryApplied time a batch's commands: the store calls
// entryApplied after each command it applied (state.Store.OnApply), on
// the FSM goroutine, so the time since the previous mark is the
// command's.
func (m *serverMetrics) batchStart(now time.Time) {
	if m != nil {
		m.fsmMark = now
	}
}

func (m *serverMetrics) entryApplied(t state.CmdType) {
	now := time.Now()
	o := m.fsmApply[t]
	if o == nil {
		o = m.fsmOther
	}
	o.Observe(now.Sub(m.fsmMark).Seconds())
	m.fsmMark = now
}

func (m *serverMetrics) batchDone(start time.Time) {
	if m != nil {
		m.fsmBatch.Observe(time.Since(start).Seconds())
	}
}

func (m *serverMetrics) planChecked(rejected int) {
	if m != nil && rejected > 0 {
		m.rejections.Add(float64(rejected))
	}
}

func (m *serverMetrics) planCommitted(placed int) {
	if m != nil && placed > 0 {
		m.placements.Add(float64(placed))
	}
}

func (m *serverMetrics) heartbeat() {
	if m != nil {
		m.beats.Inc()
	}
}

func (m *serverMetrics) nodesDown(n int) {
	if m != nil && n > 0 {
		m.missed.Add(float64(n))
	}
}

func (m *serverMetrics) evalAcked(d time.Duration) {
	if m != nil {
		m.evalWait.Observe(d.Seconds())
	}
}

// stateCollector reads states at scrape time from memory: Raft's state,
// the broker's queue, allocations by status (counted by the state as it
// applies), nodes by status (the usage index). Deployments are read from
// bbolt: one bucket of small records, collected by garbage collection.
type stateCollector struct {
	store  *state.Store
	node   *raftNode
	broker func() *evalQueue
}

var (
	descRaftState = prometheus.NewDesc("strata_raft_state", "1 for this server's Raft state, 0 for the others.", []string{"state"}, nil)
	descRaftIndex = prometheus.NewDesc("strata_raft_applied_index", "The last Raft index applied to this server's state.", nil, nil)
	descEvals     = prometheus.NewDesc("strata_evals", "Evaluations in the leader's broker by state: queued (waiting for a worker), blocked (waiting for capacity), inflight (a worker has it). Zero on followers.", []string{"state"}, nil)
	descAllocs    = prometheus.NewDesc("strata_allocations", "Allocations in the state by desired and client status.", []string{"desired", "client"}, nil)
	descNodes     = prometheus.NewDesc("strata_nodes", "Registered nodes by status.", []string{"status"}, nil)
	descDeploys   = prometheus.NewDesc("strata_deployments", "Deployments by status.", []string{"status"}, nil)
	raftStates    = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftIndex, descEvals, descAllocs, descNodes, descDeploys} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if c.node.raft != nil {
		now := c.node.raft.State()
		for _, s := range raftStates {
			gauge(descRaftState, b2f(s == now), s.String())
		}
	}
	gauge(descRaftIndex, float64(c.store.Index()))
	queued, blocked, inflight := c.broker().counts()
	gauge(descEvals, float64(queued), "queued")
	gauge(descEvals, float64(blocked), "blocked")
	gauge(descEvals, float64(inflight), "inflight")

	allocs := c.store.AllocCounts()
	for _, d := range []string{sched.DesiredRun, sched.DesiredStop} {
		for _, cs := range []string{sched.ClientPending, sched.ClientRunning, sched.ClientComplete, sched.ClientFailed, sched.ClientLost, sched.ClientUnknown} {
			k := state.AllocStatus{Desired: d, Client: cs}
			if _, ok := allocs[k]; !ok {
				allocs[k] = 0 // every usual status is a series from the start
			}
		}
	}
	for _, k := range state.AllocStatuses(allocs) {
		gauge(descAllocs, float64(allocs[k]), k.Desired, k.Client)
	}

	nodes := map[string]int{sched.NodeReady: 0, sched.NodeDown: 0}
	for _, ns := range c.store.NodeStates() {
		nodes[ns.Node.Status]++
	}
	for s, n := range nodes {
		gauge(descNodes, float64(n), s)
	}

	deploys := map[string]int{structs.DeploymentRunning: 0, structs.DeploymentSuccessful: 0, structs.DeploymentFailed: 0, structs.DeploymentCancelled: 0}
	if ds, err := c.store.Deployments(""); err == nil {
		for _, d := range ds {
			deploys[d.Status]++
		}
	} else {
		ch <- prometheus.NewInvalidMetric(descDeploys, err)
	}
	for s, n := range deploys {
		gauge(descDeploys, float64(n), s)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// counts is how many evaluations the broker holds: queued for a worker,
// blocked on capacity, in a worker's hands.
func (q *evalQueue) counts() (queued, blocked, inflight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending), len(q.blocked), len(q.inflight)
}

// wireMetrics builds a server's metrics over its store, Raft node and
// (read at scrape time) the scheduler's broker, and has the store time
// each command it applies. Called in wire, before any part that counts.
func wireMetrics(store *state.Store, node *raftNode, broker func() *evalQueue) *serverMetrics {
	m := newServerMetrics(store, node, broker)
	node.metrics = m
	store.OnApply(m.entryApplied)
	return m
}
