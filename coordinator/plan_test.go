package coordinator

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

func sizedJob(id string, cpu int) *spec.Job {
	j := dockerJob(id, nil)
	j.Groups[0].Tasks[0].Resources.CPU = cpu
	return j
}

// Two workers plan from the same snapshot and both pick the only node;
// the applier commits the first, rejects the second, and the second's
// evaluation re-plans on a fresh snapshot and lands on another node.
func TestPlanApplierRejectsConflictingPlan(t *testing.T) {
	s := startHeartbeatServer(t, Config{})
	ctx := context.Background()
	// Jobs registered without evaluations, so the workers leave them to us.
	for _, id := range []string{"one", "two"} {
		if _, _, err := s.node.apply(&state.JobRegister{Job: sizedJob(id, 600)}); err != nil {
			t.Fatal(err)
		}
	}
	node := func(id string) sched.Node {
		return sched.Node{ID: id, Name: id, Datacenter: "dc1", Address: "127.0.0.1", Drivers: map[string]bool{"docker": true},
			Capacity: sched.Resources{CPU: 1000, MemoryMB: 4096}, Status: sched.NodeReady, Eligible: true}
	}
	if err := s.RegisterNodes(ctx, []sched.Node{node("a")}); err != nil {
		t.Fatal(err)
	}
	e1 := &structs.Eval{ID: "e1", JobID: "one", Status: structs.EvalPending}
	e2 := &structs.Eval{ID: "e2", JobID: "two", Status: structs.EvalPending}
	r1, err := scheduleRequest(s.store, e1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := scheduleRequest(s.store, e2, time.Now())
	p1, _ := sched.Schedule(r1)
	p2, _ := sched.Schedule(r2)
	if len(p1.Place) != 1 || len(p2.Place) != 1 || p1.Place[0].NodeID != "a" || p2.Place[0].NodeID != "a" {
		t.Fatalf("both plans should pick node a from the same snapshot: %+v %+v", p1.Place, p2.Place)
	}
	if rej, err := s.sched.plans.apply(p1, e1); err != nil || rej != 0 {
		t.Fatalf("first plan: rejected %d, %v", rej, err)
	}
	if rej, err := s.sched.plans.apply(p2, e2); err != nil || rej != 1 {
		t.Fatalf("second plan: rejected %d, %v; want its placement refused (cpu)", rej, err)
	}
	if ns := s.store.NodeState("a"); ns.Used.CPU != 600 {
		t.Fatalf("node a uses %d MHz, want 600: the loser must not be committed", ns.Used.CPU)
	}
	// The rejected evaluation was committed as pending and queued; when
	// capacity appears, a worker re-plans it and it lands there.
	if err := s.RegisterNodes(ctx, []sched.Node{node("b")}); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "job two placed on b", 10*time.Second, func() bool {
		live := liveAllocs(t, s, "two")
		return len(live) == 1 && live[0].NodeID == "b"
	})
}

// The plan applier stamps every placement with a fresh time-ordered ID:
// IDs increase in proposal order across plans, so bbolt appends them,
// and what is committed is what was stamped.
func TestPlanApplierStampsOrderedIDs(t *testing.T) {
	s := startHeartbeatServer(t, Config{})
	ctx := context.Background()
	for _, id := range []string{"one", "two"} {
		j := sizedJob(id, 10)
		j.Groups[0].Count = 20
		if _, _, err := s.node.apply(&state.JobRegister{Job: j}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RegisterNodes(ctx, []sched.Node{{ID: "a", Name: "a", Datacenter: "dc1", Address: "127.0.0.1",
		Drivers: map[string]bool{"docker": true}, Capacity: sched.Resources{CPU: 1000, MemoryMB: 4096},
		Status: sched.NodeReady, Eligible: true}}); err != nil {
		t.Fatal(err)
	}
	var stamped []string
	for _, job := range []string{"one", "two"} {
		e := &structs.Eval{ID: "e-" + job, JobID: job, Status: structs.EvalPending}
		req, err := scheduleRequest(s.store, e, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		plan, err := sched.Schedule(req)
		if err != nil || len(plan.Place) != 20 {
			t.Fatalf("plan for %s: %d placements, %v", job, len(plan.Place), err)
		}
		if rej, err := s.sched.plans.apply(plan, e); err != nil || rej != 0 {
			t.Fatalf("plan for %s: rejected %d, %v", job, rej, err)
		}
		for _, p := range plan.Place {
			stamped = append(stamped, p.ID)
		}
		committed := map[string]bool{}
		for _, a := range liveAllocs(t, s, job) {
			committed[a.ID] = true
		}
		for _, p := range plan.Place {
			if !committed[p.ID] {
				t.Fatalf("%s: stamped ID %s was not committed", job, p.ID)
			}
		}
	}
	if !slices.IsSorted(stamped) || len(slices.Compact(slices.Clone(stamped))) != len(stamped) {
		t.Fatalf("IDs are not strictly increasing in proposal order: %v", stamped)
	}
	for _, id := range stamped {
		if id[14] != '7' {
			t.Fatalf("%s is not a UUIDv7 (the scheduler's own IDs are v4)", id)
		}
	}
}
