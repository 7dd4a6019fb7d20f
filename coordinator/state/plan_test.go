package state

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// sizedJob is a job of count copies asking cpu MHz each.
func sizedJob(id string, count, cpu int) *spec.Job {
	j := testJob(id, "a@1.0.0")
	j.Groups[0].Count = count
	j.Groups[0].Tasks[0].Resources.CPU = cpu
	return j
}

// planFor schedules a registered job on the store's current nodes, as a
// worker does.
func planFor(t *testing.T, st *Store, jobID, evalID string) *sched.Plan {
	t.Helper()
	rec := job(t, st, jobID)
	existing, err := st.JobAllocs(jobID)
	if err != nil {
		t.Fatal(err)
	}
	req := &sched.Request{EvalID: evalID, Job: rec.Job, JobVersion: rec.Version, Stopped: rec.Stopped, Nodes: st.NodeStates()}
	for _, a := range existing {
		req.Existing = append(req.Existing, &a.Allocation)
	}
	plan, err := sched.Schedule(req)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// stamp gives a checked plan's placements IDs, as the applier does.
func stamp(cmd *PlanApply, prefix string) {
	for i, p := range cmd.Place {
		p.ID = fmt.Sprintf("%s-%03d", prefix, i)
	}
}

// Two plans made on the same snapshot both fill the only node; the
// second, checked after the first is committed, keeps what still fits,
// rejects the rest with the reason, and its evaluation goes back to
// pending to be planned again.
func TestCheckPlanRejectsWhatNoLongerFits(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 1000, 4096)},
		&JobRegister{Job: sizedJob("one", 2, 300)}, &JobRegister{Job: sizedJob("two", 2, 300)})
	p1, p2 := planFor(t, h.st, "one", "e1"), planFor(t, h.st, "two", "e2")
	if len(p1.Place) != 2 || len(p2.Place) != 2 {
		t.Fatalf("plans place %d and %d, want 2 each on the same snapshot", len(p1.Place), len(p2.Place))
	}

	cmd, rejected, err := h.st.CheckPlan(p1, &structs.Eval{ID: "e1", JobID: "one"}, nil)
	if err != nil || len(rejected) != 0 || len(cmd.Place) != 2 || cmd.Eval.Status != structs.EvalComplete {
		t.Fatalf("first plan: %+v, rejected %v, %v", cmd, rejected, err)
	}
	stamp(cmd, "one")
	h.must(cmd)

	cmd, rejected, err = h.st.CheckPlan(p2, &structs.Eval{ID: "e2", JobID: "two"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fe *sched.FitError
	if len(cmd.Place) != 1 || len(rejected) != 1 || !errors.As(rejected[0], &fe) || fe.Reason != "cpu exhausted" || fe.NodeID != "n1" {
		t.Fatalf("second plan: %d placements kept, rejected %v; want 1 kept and 1 cpu exhausted", len(cmd.Place), rejected)
	}
	if cmd.Eval.ID != "e2" || cmd.Eval.Status != structs.EvalPending {
		t.Fatalf("evaluation %+v, want e2 pending (to be planned again)", cmd.Eval)
	}
	stamp(cmd, "two")
	h.must(cmd)
	if ns := h.st.NodeState("n1"); ns.Used.CPU != 900 {
		t.Fatalf("node n1 uses %d MHz, want 900", ns.Used.CPU)
	}
	if e, _ := h.st.Eval("e2"); e == nil || e.Status != structs.EvalPending {
		t.Fatalf("committed evaluation %+v", e)
	}
}

// A plan's stops release their capacity to its own placements: a
// destructive update on a full node replaces in place. An allocation
// that no longer holds anything releases nothing.
func TestCheckPlanReleasesItsStops(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 1000, 4096)}, &JobRegister{Job: sizedJob("web", 1, 1000)})
	cmd, _, err := h.st.CheckPlan(planFor(t, h.st, "web", "e1"), &structs.Eval{ID: "e1", JobID: "web"}, nil)
	if err != nil || len(cmd.Place) != 1 {
		t.Fatalf("%+v, %v", cmd, err)
	}
	stamp(cmd, "v0")
	h.must(cmd)

	// Version 1 replaces version 0's copy on the full node.
	updated := sizedJob("web", 1, 1000)
	updated.Groups[0].Tasks[0].Config.Module = "a@2.0.0"
	h.must(&JobRegister{Job: updated})
	plan := planFor(t, h.st, "web", "e2")
	if len(plan.Stop) != 1 || len(plan.Place) != 1 {
		t.Fatalf("update plan stops %d, places %d", len(plan.Stop), len(plan.Place))
	}
	cmd, rejected, err := h.st.CheckPlan(plan, &structs.Eval{ID: "e2", JobID: "web"}, nil)
	if err != nil || len(rejected) != 0 || len(cmd.Place) != 1 || len(cmd.Stop) != 1 || cmd.Stop[0].ID != "v0-000" {
		t.Fatalf("update: %+v, rejected %v, %v", cmd, rejected, err)
	}

	// Had the stopped copy already failed (holding nothing), the node is
	// not freed twice: a second replacement does not fit beside the first.
	h.must(&AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "v0-000", ClientStatus: sched.ClientFailed}}},
		&PlanApply{Place: []*sched.Allocation{{ID: "other", JobID: "x", NodeID: "n1", Resources: sched.Resources{CPU: 1000},
			DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientRunning}}})
	cmd, rejected, err = h.st.CheckPlan(plan, &structs.Eval{ID: "e2", JobID: "web"}, nil)
	if err != nil || len(cmd.Place) != 0 || len(rejected) != 1 {
		t.Fatalf("stop of a failed copy: %+v, rejected %v, %v; want the placement rejected", cmd, rejected, err)
	}
}

// Placements proposed but not yet applied count against the next plan.
func TestCheckPlanCountsInflightPlacements(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 1000, 4096)}, &JobRegister{Job: sizedJob("web", 1, 300)})
	plan := planFor(t, h.st, "web", "e1")
	inflight := func(ns *sched.NodeState) {
		if ns.Node.ID == "n1" {
			ns.Used.CPU += 800
		}
	}
	_, rejected, err := h.st.CheckPlan(plan, &structs.Eval{ID: "e1", JobID: "web"}, inflight)
	if err != nil || len(rejected) != 1 {
		t.Fatalf("rejected %v, %v; want the placement rejected for the in-flight 800 MHz", rejected, err)
	}
	if ns := h.st.NodeState("n1"); ns.Used.CPU != 0 {
		t.Fatalf("checking changed the shared view: %+v", ns)
	}
}

// What the state cannot vouch for is rejected, with the reason: a node
// that is gone, a job version that is not there. A plan that found no
// node for some copies leaves its evaluation blocked.
func TestCheckPlanRejectsTheUnknown(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 1000, 4096)}, &JobRegister{Job: sizedJob("web", 1, 100)})
	failed := map[string]*sched.Explanation{"g": {Group: "g", Missing: 1}}
	onGhost := testAlloc("", "web", "ghost")
	cmd, rejected, err := h.st.CheckPlan(&sched.Plan{Place: []*sched.Allocation{onGhost}, Failed: failed}, &structs.Eval{ID: "e", JobID: "web"}, nil)
	var fe *sched.FitError
	if err != nil || len(cmd.Place) != 0 || len(rejected) != 1 || !errors.As(rejected[0], &fe) || fe.Reason != "node unknown" {
		t.Fatalf("placement on an unknown node: %+v, %v, %v", cmd, rejected, err)
	}
	future := testAlloc("", "web", "n1")
	future.JobVersion = 7
	_, rejected, err = h.st.CheckPlan(&sched.Plan{Place: []*sched.Allocation{future}}, &structs.Eval{ID: "e", JobID: "web"}, nil)
	if err != nil || len(rejected) != 1 || !strings.Contains(rejected[0].Error(), "job web version 7 is not in the state") {
		t.Fatalf("placement of a missing version: %v, %v", rejected, err)
	}
	cmd, rejected, err = h.st.CheckPlan(&sched.Plan{Failed: failed}, &structs.Eval{ID: "e", JobID: "web"}, nil)
	if err != nil || len(rejected) != 0 || cmd.Eval.Status != structs.EvalBlocked || cmd.Eval.Failed["g"].Missing != 1 {
		t.Fatalf("a plan with failed copies: %+v, %v, %v; want its evaluation blocked with the explanation", cmd.Eval, rejected, err)
	}
}
