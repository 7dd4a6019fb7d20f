package state

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// rollingJob is a service job whose group "g" of count rolls one at a time.
func rollingJob(module string, count, canary int) *spec.Job {
	j := testJob("web", module)
	j.Groups[0].Count = count
	j.Groups[0].Update = &spec.Update{MaxParallel: 1, Canary: canary, AutoRevert: true,
		ProgressDeadline: spec.Duration(10 * time.Minute), Stagger: spec.Duration(30 * time.Second)}
	return j
}

func deploymentOf(t *testing.T, st *Store, id string) *structs.Deployment {
	t.Helper()
	d, err := st.Deployment(id)
	if err != nil || d == nil {
		t.Fatalf("deployment %s: %+v, %v", id, d, err)
	}
	return d
}

// deployed places count allocations of version v for deployment dep on
// node n1, at time now, and reports them running.
func (h *harness) deployed(prefix string, v uint64, dep string, count int, canary bool, now int64) []string {
	var ids []string
	var place []*sched.Allocation
	for i := range count {
		a := testAlloc(prefix+string(rune('a'+i)), "web", "n1")
		a.Index, a.JobVersion, a.DeploymentID, a.Canary = i, v, dep, canary
		place = append(place, a)
		ids = append(ids, a.ID)
	}
	h.must(&PlanApply{Place: place, Time: now})
	var ups []ClientUpdate
	for _, id := range ids {
		ups = append(ups, ClientUpdate{AllocID: id, ClientStatus: sched.ClientRunning})
	}
	h.must(&AllocUpdate{NodeID: "n1", Time: now, Updates: ups})
	return ids
}

func (h *harness) health(now int64, health sched.Health, ids ...string) *Effects {
	var ups []ClientUpdate
	for _, id := range ids {
		ups = append(ups, ClientUpdate{AllocID: id, ClientStatus: sched.ClientRunning, Health: health, HealthTime: now})
	}
	return h.must(&AllocUpdate{NodeID: "n1", Time: now, Updates: ups})
}

func TestDeploymentLifeInTheState(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 100000, 100000)})
	t0 := int64(1_000_000_000_000)

	// A first version: a deployment tracks its placements; not stable yet.
	res, fx := h.apply(&JobRegister{Job: rollingJob("a@1.0.0", 2, 0), SubmitTime: t0, EvalID: "e1", DeploymentID: "d1"})
	if r := res[0].Value.(*JobRegisterResult); r.DeploymentID != "d1" || res[0].Err != nil {
		t.Fatalf("first version: %+v %v", r, res[0].Err)
	}
	if !slices.Equal(fx.Deployments, []string{"d1"}) {
		t.Fatalf("effects name deployments %v", fx.Deployments)
	}
	d := deploymentOf(t, h.st, "d1")
	if g := d.Groups["g"]; d.Status != structs.DeploymentRunning || d.JobVersion != 0 || g.DesiredTotal != 2 || !g.AutoRevert {
		t.Fatalf("deployment %+v group %+v", d, g)
	}
	if vi, _ := h.st.JobVersionInfo("web"); vi[0].Stable || vi[0].SubmitTime != t0 {
		t.Fatalf("version 0 info %+v", vi[0])
	}

	ids := h.deployed("v0", 0, "d1", 2, false, t0+1)
	g := deploymentOf(t, h.st, "d1").Groups["g"]
	if g.PlacedAllocs != 2 || g.LastBatchAt != t0+1 || g.RequireProgressBy != t0+1+int64(10*time.Minute) {
		t.Fatalf("after placing: %+v", g)
	}
	fx = h.health(t0+5, sched.HealthHealthy, ids...)
	g = deploymentOf(t, h.st, "d1").Groups["g"]
	if g.HealthyAllocs != 2 || g.RequireProgressBy != t0+5+int64(10*time.Minute) || !slices.Equal(fx.Deployments, []string{"d1"}) {
		t.Fatalf("after health: %+v, effects %v", g, fx.Deployments)
	}
	// Health is set once.
	h.health(t0+6, sched.HealthUnhealthy, ids[0])
	if a, _ := h.st.Alloc(ids[0]); a.Health != sched.HealthHealthy || a.HealthTime != t0+5 {
		t.Fatalf("a second report changed health: %v at %d", a.Health, a.HealthTime)
	}
	if g := deploymentOf(t, h.st, "d1").Groups["g"]; g.UnhealthyAllocs != 0 {
		t.Fatalf("counted a second report: %+v", g)
	}

	h.must(&DeploymentUpdate{ID: "d1", Status: structs.DeploymentSuccessful, Description: "done", Time: t0 + 7})
	if vi, _ := h.st.JobVersionInfo("web"); !vi[0].Stable {
		t.Fatal("a successful deployment leaves its version unstable")
	}
	if err := h.refused(&DeploymentUpdate{ID: "d1", Status: structs.DeploymentFailed, Time: t0 + 8}); !errors.Is(err, ErrDeploymentEnded) {
		t.Fatalf("changing an ended deployment: %v", err)
	}

	// A count-only change scales in place: no deployment, as stable as before.
	res, _ = h.apply(&JobRegister{Job: rollingJob("a@1.0.0", 3, 0), SubmitTime: t0 + 10, EvalID: "e2", DeploymentID: "d2"})
	if r := res[0].Value.(*JobRegisterResult); r.Version != 1 || r.DeploymentID != "" {
		t.Fatalf("count change: %+v", r)
	}
	if vi, _ := h.st.JobVersionInfo("web"); !vi[1].Stable {
		t.Fatal("a count-only change of a stable version is not stable")
	}
	h.must(&PlanApply{InPlace: []AllocMove{{ID: ids[0], JobVersion: 1}, {ID: ids[1], JobVersion: 1}}, Time: t0 + 11})
	if a, _ := h.st.Alloc(ids[1]); a.JobVersion != 1 {
		t.Fatalf("in-place move left version %d", a.JobVersion)
	}

	// A new module starts a deployment; a newer one cancels it.
	res, _ = h.apply(&JobRegister{Job: rollingJob("a@2.0.0", 3, 0), SubmitTime: t0 + 20, EvalID: "e3", DeploymentID: "d3"})
	if r := res[0].Value.(*JobRegisterResult); r.DeploymentID != "d3" {
		t.Fatalf("module change: %+v", r)
	}
	h.must(&JobRegister{Job: rollingJob("a@3.0.0", 3, 0), SubmitTime: t0 + 30, EvalID: "e4", DeploymentID: "d4"})
	if d := deploymentOf(t, h.st, "d3"); d.Status != structs.DeploymentCancelled {
		t.Fatalf("older deployment %s: %q", d.ID, d.Status)
	}
	if rec := job(t, h.st, "web"); rec.LatestDeployment != "d4" {
		t.Fatalf("latest deployment %q", rec.LatestDeployment)
	}
	if running, _ := h.st.RunningDeployments(); len(running) != 1 || running[0].ID != "d4" {
		t.Fatalf("running deployments %+v", running)
	}

	// An unhealthy allocation is counted; failing with a revert registers
	// the stable version again, with a deployment that is never reverted.
	bad := h.deployed("v3", 3, "d4", 1, false, t0+31)
	h.health(t0+32, sched.HealthUnhealthy, bad...)
	if g := deploymentOf(t, h.st, "d4").Groups["g"]; g.UnhealthyAllocs != 1 {
		t.Fatalf("unhealthy not counted: %+v", g)
	}
	v, stable, ok, err := h.st.LatestStable("web", 3)
	if err != nil || !ok || v != 1 {
		t.Fatalf("latest stable below 3: %d %v %v", v, ok, err)
	}
	failed := uint64(3)
	res, fx = h.apply(&DeploymentUpdate{ID: "d4", Status: structs.DeploymentFailed, Description: "Failed due to unhealthy allocations", Time: t0 + 33,
		Revert: &JobRegister{Job: stable, SubmitTime: t0 + 33, EvalID: "e5", DeploymentID: "d5", RevertOf: &failed}})
	r := res[0].Value.(*JobRegisterResult)
	if res[0].Err != nil || r.Version != 4 || r.DeploymentID != "d5" {
		t.Fatalf("revert: %+v %v", r, res[0].Err)
	}
	if j, _ := h.st.JobVersion("web", 4); j.Groups[0].Tasks[0].Config.Module != "a@1.0.0" {
		t.Fatalf("reverted to %s", j.Groups[0].Tasks[0].Config.Module)
	}
	if d := deploymentOf(t, h.st, "d5"); d.RevertOf == nil || *d.RevertOf != 3 || !slices.Contains(fx.Deployments, "d4") {
		t.Fatalf("revert deployment %+v, effects %v", d, fx.Deployments)
	}
}

func TestEnforceIndex(t *testing.T) {
	h := newHarness(t)
	if err := h.refused(&JobRegister{Job: testJob("web", "a@1.0.0"), EnforceIndex: true, JobModifyIndex: 5}); !errors.Is(err, ErrIndexMismatch) {
		t.Fatalf("new job with index 5: %v", err)
	}
	h.must(&JobRegister{Job: testJob("web", "a@1.0.0"), EnforceIndex: true})
	modify := job(t, h.st, "web").ModifyIndex
	err := h.refused(&JobRegister{Job: testJob("web", "a@2.0.0"), EnforceIndex: true, JobModifyIndex: modify - 1})
	if !errors.Is(err, ErrIndexMismatch) || !strings.Contains(err.Error(), "changed since") {
		t.Fatalf("stale index: %v", err)
	}
	h.must(&JobRegister{Job: testJob("web", "a@2.0.0"), EnforceIndex: true, JobModifyIndex: modify})
}

func TestPromoteCanaries(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 100000, 100000)})
	t0 := int64(2_000_000_000_000)
	h.must(&JobRegister{Job: rollingJob("a@1.0.0", 2, 0), SubmitTime: t0, EvalID: "e1"}) // no deployment stamped
	h.deployed("old", 0, "", 2, false, t0)
	h.must(&JobRegister{Job: rollingJob("a@2.0.0", 2, 1), SubmitTime: t0 + 1, EvalID: "e2", DeploymentID: "d1"})
	can := h.deployed("can", 1, "d1", 1, true, t0+2)
	if g := deploymentOf(t, h.st, "d1").Groups["g"]; len(g.PlacedCanaries) != 1 || g.DesiredCanaries != 1 {
		t.Fatalf("canary placement: %+v", g)
	}
	if err := h.refused(&DeploymentPromote{ID: "d1", Time: t0 + 3}); !strings.Contains(err.Error(), "0 of 1 canaries healthy") {
		t.Fatalf("promoting an unhealthy canary: %v", err)
	}
	h.health(t0+4, sched.HealthHealthy, can...)
	if g := deploymentOf(t, h.st, "d1").Groups["g"]; g.HealthyCanaries != 1 {
		t.Fatalf("healthy canary not counted: %+v", g)
	}
	fx := h.must(&DeploymentPromote{ID: "d1", Time: t0 + 5, Eval: &structs.Eval{ID: "e3", JobID: "web", Status: structs.EvalPending}})
	g := deploymentOf(t, h.st, "d1").Groups["g"]
	if !g.Promoted || g.RequireProgressBy != t0+5+int64(10*time.Minute) {
		t.Fatalf("promoted: %+v", g)
	}
	if a, _ := h.st.Alloc(can[0]); a.Canary {
		t.Fatal("a promoted canary keeps its flag (its agent would keep the canary tags)")
	}
	if len(fx.Evals) != 1 || !slices.Contains(fx.Nodes, "n1") {
		t.Fatalf("promotion effects: evals %v nodes %v", fx.Evals, fx.Nodes)
	}
	if err := h.refused(&DeploymentPromote{ID: "nope", Time: t0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown deployment: %v", err)
	}
}
