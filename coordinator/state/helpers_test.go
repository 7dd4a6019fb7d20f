package state

import (
	"path/filepath"
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

func openTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// harness applies commands to a store as Raft would: each command one
// entry, at the next index.
type harness struct {
	t     *testing.T
	st    *Store
	index uint64
	log   []Entry // every entry applied, for replays
}

func newHarness(t *testing.T) *harness {
	st, _ := openTestStore(t)
	return &harness{t: t, st: st}
}

func mustEncode(t *testing.T, c Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entries makes the next entries for raw command data.
func (h *harness) entries(data ...[]byte) []Entry {
	var out []Entry
	for _, d := range data {
		h.index++
		out = append(out, Entry{Index: h.index, Command: true, Data: d})
	}
	return out
}

// applyRaw applies raw entries in one batch.
func (h *harness) applyRaw(data ...[]byte) ([]Result, *Effects) {
	h.t.Helper()
	es := h.entries(data...)
	res, fx, err := h.st.Apply(es)
	if err != nil {
		h.t.Fatalf("apply: %v", err)
	}
	h.log = append(h.log, es...)
	return res, fx
}

// apply applies commands in one batch.
func (h *harness) apply(cmds ...Command) ([]Result, *Effects) {
	h.t.Helper()
	var data [][]byte
	for _, c := range cmds {
		data = append(data, mustEncode(h.t, c))
	}
	return h.applyRaw(data...)
}

// must applies commands in one batch and fails the test on a refusal.
func (h *harness) must(cmds ...Command) *Effects {
	h.t.Helper()
	res, fx := h.apply(cmds...)
	for i, r := range res {
		if r.Err != nil {
			h.t.Fatalf("command %d (%T) refused: %v", i, cmds[i], r.Err)
		}
	}
	return fx
}

// refused applies one command and returns its refusal, failing the test
// if it was applied.
func (h *harness) refused(c Command) error {
	h.t.Helper()
	res, _ := h.apply(c)
	if res[0].Err == nil {
		h.t.Fatalf("%T applied, want it refused", c)
	}
	return res[0].Err
}

func testJob(id, module string) *spec.Job {
	return &spec.Job{ID: id, Type: "service", Priority: 50, Groups: []*spec.Group{{
		Name: "g", Count: 1, Tasks: []*spec.Task{{
			Name: "t", Driver: "wasm",
			Config:    spec.TaskConfig{Module: module, Mode: "http"},
			Resources: spec.Resources{CPU: 100, MemoryMB: 64},
		}},
	}}}
}

func testNode(id string, cpu, mem int) sched.Node {
	return sched.Node{ID: id, Name: id, Datacenter: "dc1", Address: "127.0.0.1", Drivers: map[string]bool{"wasm": true},
		Capacity: sched.Resources{CPU: cpu, MemoryMB: mem}, Status: sched.NodeReady, Eligible: true}
}

func testAlloc(id, job, node string) *sched.Allocation {
	return &sched.Allocation{ID: id, Name: job + ".g[0]", JobID: job, Group: "g", NodeID: node, NodeName: node,
		Resources: sched.Resources{CPU: 100, MemoryMB: 64}, DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientPending}
}

func endpoint(service, alloc string, port int) registry.Endpoint {
	return registry.Endpoint{Service: service, AllocID: alloc, Address: "127.0.0.1", Port: port, Healthy: true}
}

// dump is every query's answer: two stores that hold the same state
// dump equal.
type dump struct {
	Index      uint64
	Jobs       []*structs.JobRecord
	Versions   map[string][]*spec.Job
	Modules    []*structs.Module
	Nodes      []*structs.NodeRecord
	Allocs     []*structs.Alloc
	JobAllocs  map[string][]*structs.Alloc
	NodeAllocs map[string][]*structs.Alloc
	Evals      []*structs.Eval
	Tokens     []structs.JoinToken
	CA         *ClusterCA
	Services   map[string]int
	Endpoints  map[string][]registry.Endpoint
	States     []sched.NodeState
	Draining   []string
	Live       int
	Deploys    []*structs.Deployment
	VerInfo    map[string]map[uint64]VersionInfo
}

func dumpStore(t *testing.T, st *Store) dump {
	t.Helper()
	d := dump{Index: st.Index(), Versions: map[string][]*spec.Job{}, JobAllocs: map[string][]*structs.Alloc{},
		NodeAllocs: map[string][]*structs.Alloc{}, Endpoints: map[string][]registry.Endpoint{}}
	var err error
	check := func(e error) {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
	}
	d.Jobs, err = st.Jobs()
	check(err)
	for _, j := range d.Jobs {
		d.Versions[j.Job.ID], err = st.JobVersions(j.Job.ID)
		check(err)
		d.JobAllocs[j.Job.ID], err = st.JobAllocs(j.Job.ID)
		check(err)
	}
	d.Modules, err = st.Modules()
	check(err)
	d.Nodes, err = st.Nodes()
	check(err)
	d.Allocs, err = st.AllocsByPrefix("")
	check(err)
	for _, a := range d.Allocs {
		if _, ok := d.NodeAllocs[a.NodeID]; !ok {
			d.NodeAllocs[a.NodeID], err = st.NodeAllocs(a.NodeID)
			check(err)
		}
	}
	d.Evals, err = st.Evals("")
	check(err)
	d.Tokens, err = st.JoinTokens()
	check(err)
	d.CA, err = st.CA()
	check(err)
	d.Services = st.Services()
	for svc := range d.Services {
		d.Endpoints[svc] = st.Endpoints(svc)
	}
	for _, ns := range st.NodeStates() {
		d.States = append(d.States, *ns)
	}
	d.Draining = st.DrainingNodes()
	d.Live = st.LiveAllocs()
	d.Deploys, err = st.Deployments("")
	check(err)
	d.VerInfo = map[string]map[uint64]VersionInfo{}
	for _, j := range d.Jobs {
		d.VerInfo[j.Job.ID], err = st.JobVersionInfo(j.Job.ID)
		check(err)
	}
	return d
}
