package state

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
)

func TestApplyNodeEligibility(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 1000, 1024)})
	if err := h.refused(&NodeEligibility{NodeID: "nope", Eligible: false}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown node: %v, want not found", err)
	}
	fx := h.must(&NodeEligibility{NodeID: "n1", Eligible: false})
	if n, _ := h.st.Node("n1"); n.Eligible {
		t.Fatal("still eligible after -disable")
	}
	if st := h.st.NodeState("n1"); st.Node.Eligible {
		t.Fatal("the scheduler's view still has the node eligible")
	}
	if fx.Capacity {
		t.Fatal("making a node ineligible frees no capacity")
	}
	if fx := h.must(&NodeEligibility{NodeID: "n1", Eligible: true}); !fx.Capacity {
		t.Fatal("an eligible node is capacity: blocked evaluations must retry")
	}
	h.must(&NodeDrain{NodeID: "n1", Drain: &structs.Drain{Started: 1}})
	err := h.refused(&NodeEligibility{NodeID: "n1", Eligible: true})
	if !errors.Is(err, ErrNodeDraining) || !strings.Contains(err.Error(), "node drain -disable") {
		t.Fatalf("eligible while draining: %v", err)
	}
	if n, _ := h.st.Node("n1"); n.Drain == nil || n.Eligible {
		t.Fatalf("a refused command changed the node: %+v", n)
	}
}

func TestApplyModuleDelete(t *testing.T) {
	h := newHarness(t)
	mod := func(name, version, digest string) *ModuleRegister {
		return &ModuleRegister{Module: structs.Module{Name: name, Version: version, Digest: digest}}
	}
	h.must(mod("a", "1.0.0", "sha256:aa"), mod("a", "2.0.0", "sha256:bb"), mod("c", "1.0.0", "sha256:bb"))
	web := testJob("web", "a@1.0.0")
	web.Groups[0].Tasks[0].Config.ModuleDigest = "sha256:aa"
	h.must(&JobRegister{Job: web, EvalID: "e1"})
	web2 := testJob("web", "a@2.0.0")
	web2.Groups[0].Tasks[0].Config.ModuleDigest = "sha256:bb"
	h.must(&JobRegister{Job: web2, EvalID: "e2"})

	err := h.refused(&ModuleDelete{Name: "a", Version: "1.0.0"})
	if !errors.Is(err, ErrModuleInUse) || !strings.Contains(err.Error(), "web@0") || strings.Contains(err.Error(), "web@1") {
		t.Fatalf("delete of a version an old job version uses: %v", err)
	}
	err = h.refused(&ModuleDelete{Name: "a", Version: "2.0.0"})
	if !errors.Is(err, ErrModuleInUse) || !strings.Contains(err.Error(), "web@1 (current)") {
		t.Fatalf("delete of the current version's module: %v", err)
	}
	if err := h.refused(&ModuleDelete{Name: "a", Version: "9.9.9"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown module: %v", err)
	}
	// c@1.0.0 has a@2.0.0's bytes but no job names it: the blob stays
	// named by a@2.0.0, so it is not in use.
	if fx := h.must(&ModuleDelete{Name: "c", Version: "1.0.0"}); !fx.Modules {
		t.Fatal("a delete must tell the servers to collect blobs")
	}
	if m, _ := h.st.Module("c", "1.0.0"); m != nil {
		t.Fatalf("c@1.0.0 still there: %+v", m)
	}
	// Once the job is purged (nothing runs), the module can go, and a
	// registration that resolved it before the delete is refused.
	h.must(&JobStop{JobID: "web", EvalID: "e3", Purge: true})
	h.must(&ModuleDelete{Name: "a", Version: "1.0.0"})
	err = h.refused(&JobRegister{Job: web, EvalID: "e4", Modules: []string{"sha256:aa"}})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "sha256:aa") {
		t.Fatalf("registration with a deleted module: %v", err)
	}
	if rec, _ := h.st.Job("web"); rec != nil {
		t.Fatalf("the refused registration wrote the job: %+v", rec)
	}
}

// gcWorld is a job with allocations in every state the collector tells
// apart, on one node.
func gcWorld(t *testing.T) *harness {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 4000, 4096)})
	for v := range 4 {
		j := sizedJob("web", 1, 100+v) // each registration a new version: 0..3
		h.must(&JobRegister{Job: j, EvalID: "reg" + string(rune('0'+v))})
	}
	place := func(id string, version uint64, index int) *sched.Allocation {
		a := testAlloc(id, "web", "n1")
		a.JobVersion, a.Index = version, index
		return a
	}
	h.must(&PlanApply{Place: []*sched.Allocation{
		place("a-old-done", 0, 0),   // older version, finished: collected
		place("a-old-run", 1, 1),    // older version, still running: kept, keeps v1
		place("a-stopped", 3, 2),    // stopped by the scheduler and finished: collected
		place("a-cur-failed", 3, 3), // current version, failed, desired run: kept
		place("a-cur-run", 3, 4),    // current version, running: kept
	}, Eval: &structs.Eval{ID: "plan", JobID: "web", Status: structs.EvalComplete}})
	h.must(&PlanApply{Stop: []AllocStop{{ID: "a-stopped", Desc: "count reduced"}}})
	h.must(&AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{
		{AllocID: "a-old-done", ClientStatus: sched.ClientComplete},
		{AllocID: "a-old-run", ClientStatus: sched.ClientRunning},
		{AllocID: "a-stopped", ClientStatus: sched.ClientComplete},
		{AllocID: "a-cur-failed", ClientStatus: sched.ClientFailed},
		{AllocID: "a-cur-run", ClientStatus: sched.ClientRunning, Endpoints: []registry.Endpoint{endpoint("web", "a-cur-run", 20001)}},
	}})
	h.must(&EvalUpsert{Evals: []*structs.Eval{{ID: "blocked", JobID: "web", Status: structs.EvalBlocked}}})
	var done []*structs.Eval // the scheduler finished the registrations' evaluations
	for v := range 4 {
		done = append(done, &structs.Eval{ID: "reg" + string(rune('0'+v)), JobID: "web", Status: structs.EvalComplete})
	}
	h.must(&EvalUpsert{Evals: done})
	return h
}

func allocIDs(t *testing.T, st *Store, job string) []string {
	t.Helper()
	as, err := st.JobAllocs(job)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	return ids
}

func versionNumbers(t *testing.T, st *Store, job string) []uint64 {
	t.Helper()
	vs, err := st.JobVersions(job)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := st.JobVersionInfo(job)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for v := range infos {
		out = append(out, v)
	}
	slices.Sort(out)
	if len(vs) != len(out) {
		t.Fatalf("%d versions but %d version infos (%v)", len(vs), len(out), out)
	}
	return out
}

func nodeAllocIDs(t *testing.T, st *Store, node string) []string {
	t.Helper()
	as, err := st.NodeAllocs(node)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestApplySystemGC(t *testing.T) {
	h := gcWorld(t)
	if err := h.refused(&SystemGC{KeepVersions: 0}); !strings.Contains(err.Error(), "at least one version") {
		t.Fatalf("KeepVersions 0: %v", err)
	}
	res, fx := h.apply(&SystemGC{KeepVersions: 1})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	got := *res[0].Value.(*GCResult)
	// Allocations: a-old-done and a-stopped. Versions: 0 and 2 (3 is
	// current, 1 still runs, none is stable below 3: versions without a
	// deployment are as stable as their first, which was).
	want := []string{"a-cur-failed", "a-cur-run", "a-old-run"}
	if ids := allocIDs(t, h.st, "web"); !slices.Equal(ids, want) {
		t.Fatalf("allocations after gc %v, want %v", ids, want)
	}
	if ids := nodeAllocIDs(t, h.st, "n1"); !slices.Equal(ids, want) {
		t.Fatalf("the node's allocations after gc %v, want %v", ids, want)
	}
	if a, _ := h.st.Alloc("a-old-done"); a != nil {
		t.Fatal("a collected allocation is still readable")
	}
	if !slices.Contains(fx.Nodes, "n1") || !fx.Modules {
		t.Fatalf("effects %+v: the node's agent must get its new set, the servers sweep blobs", fx)
	}
	vs := versionNumbers(t, h.st, "web")
	// Version 0 was stable (the first), 1..3 inherited it: the latest
	// stable below 3 is 2, kept for auto_revert.
	if !slices.Equal(vs, []uint64{1, 2, 3}) {
		t.Fatalf("versions after gc %v, want [1 2 3] (running, latest stable, current)", vs)
	}
	if got.Allocs != 2 || got.Versions != 1 {
		t.Fatalf("result %+v, want 2 allocations and 1 version", got)
	}
	if e, _ := h.st.Eval("blocked"); e == nil {
		t.Fatal("a blocked evaluation was collected")
	}
	if e, _ := h.st.Eval("reg0"); e != nil {
		t.Fatal("a done evaluation that is not the job's latest was kept")
	}
	if e, _ := h.st.Eval("reg3"); e == nil {
		t.Fatal("the job's latest evaluation was collected")
	}
	// Replaying the batch changes nothing, and the in-memory views equal
	// what a reopened store rebuilds.
	checkViewsMatchDisk(t, h.st, "n1")

	// Stop the job: once its allocations finish and no evaluation is
	// waiting, the job goes with all its history.
	h.must(&JobStop{JobID: "web", EvalID: "stop"})
	res, _ = h.apply(&SystemGC{KeepVersions: 1})
	if rec, _ := h.st.Job("web"); rec == nil {
		t.Fatalf("a stopped job with allocations still running was collected (%+v)", res[0].Value)
	}
	h.must(&AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{
		{AllocID: "a-old-run", ClientStatus: sched.ClientComplete},
		{AllocID: "a-cur-run", ClientStatus: sched.ClientComplete},
	}})
	h.must(&EvalUpsert{Evals: []*structs.Eval{
		{ID: "blocked", JobID: "web", Status: structs.EvalComplete},
		{ID: "stop", JobID: "web", Status: structs.EvalComplete},
	}})
	res, _ = h.apply(&SystemGC{KeepVersions: 1})
	if r := res[0].Value.(*GCResult); r.Jobs != 1 {
		t.Fatalf("result %+v, want the dead job collected", r)
	}
	if rec, _ := h.st.Job("web"); rec != nil {
		t.Fatal("the dead job is still there")
	}
	if ids := allocIDs(t, h.st, "web"); len(ids) != 0 {
		t.Fatalf("allocations of a collected job: %v", ids)
	}
	if vs, _ := h.st.JobVersions("web"); len(vs) != 0 {
		t.Fatalf("versions of a collected job: %d", len(vs))
	}
	if evals, _ := h.st.Evals(""); len(evals) != 0 {
		t.Fatalf("evaluations of a collected job: %+v", evals)
	}
	checkViewsMatchDisk(t, h.st, "n1")
}

func TestApplyJobPurge(t *testing.T) {
	h := gcWorld(t)
	res, _ := h.apply(&JobStop{JobID: "web", EvalID: "purge", Purge: true})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if rec, _ := h.st.Job("web"); rec != nil {
		t.Fatalf("purged job still listed: %+v", rec)
	}
	// The finished allocations are gone; the two still running stay, with
	// the versions they run, until they finish.
	if ids := allocIDs(t, h.st, "web"); !slices.Equal(ids, []string{"a-cur-run", "a-old-run"}) {
		t.Fatalf("allocations after purge %v", ids)
	}
	if vs := versionNumbers(t, h.st, "web"); !slices.Equal(vs, []uint64{1, 3}) {
		t.Fatalf("versions after purge %v, want those still running [1 3]", vs)
	}
	if e, _ := h.st.Eval("purge"); e == nil || e.Status != structs.EvalPending {
		t.Fatalf("the evaluation that stops what runs: %+v", e)
	}
	if e, _ := h.st.Eval("reg3"); e != nil {
		t.Fatal("a purged job's done evaluations must go")
	}
	if eps := h.st.Endpoints("web"); len(eps) != 1 {
		t.Fatalf("a running allocation left the catalog before it stopped: %v", eps)
	}
	// They stop and finish: gc collects the rest.
	h.must(&PlanApply{Stop: []AllocStop{{ID: "a-old-run", Desc: "job stopped"}, {ID: "a-cur-run", Desc: "job stopped"}},
		Eval: &structs.Eval{ID: "purge", JobID: "web", Status: structs.EvalComplete}})
	h.must(&AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{
		{AllocID: "a-old-run", ClientStatus: sched.ClientComplete},
		{AllocID: "a-cur-run", ClientStatus: sched.ClientComplete},
	}})
	h.must(&EvalUpsert{Evals: []*structs.Eval{{ID: "blocked", JobID: "web", Status: structs.EvalComplete}}})
	res, _ = h.apply(&SystemGC{KeepVersions: 6})
	if ids := allocIDs(t, h.st, "web"); len(ids) != 0 {
		t.Fatalf("allocations left %v (result %+v)", ids, res[0].Value)
	}
	if vs, _ := h.st.JobVersions("web"); len(vs) != 0 {
		t.Fatalf("%d versions left", len(vs))
	}
	if ids := nodeAllocIDs(t, h.st, "n1"); len(ids) != 0 {
		t.Fatalf("the node still lists %v", ids)
	}
	checkViewsMatchDisk(t, h.st, "n1")
	// The same ID registers as a new job, from version 0.
	h.must(&JobRegister{Job: sizedJob("web", 1, 100), EvalID: "again"})
	if rec, _ := h.st.Job("web"); rec == nil || rec.Version != 0 {
		t.Fatalf("re-registered after purge: %+v", rec)
	}
}

// checkViewsMatchDisk compares the usage index's allocations of a node
// and the cache with a rebuild from bbolt.
func checkViewsMatchDisk(t *testing.T, st *Store, node string) {
	t.Helper()
	var fromDisk usageIndex
	if err := st.view(fromDisk.rebuild); err != nil {
		t.Fatal(err)
	}
	got, want := st.usage.nodeAllocs(node), fromDisk.nodeAllocs(node)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("node %s: %v in the index, %v on disk", node, got, want)
	}
	if st.LiveAllocs() != fromDisk.liveAllocs() {
		t.Fatalf("%d live allocations in the index, %d on disk", st.LiveAllocs(), fromDisk.liveAllocs())
	}
	st.allocs.mu.RLock()
	defer st.allocs.mu.RUnlock()
	for id := range st.allocs.m {
		if a, _ := st.Alloc(id); a == nil {
			t.Fatalf("the cache holds deleted allocation %s", id)
		}
	}
}
