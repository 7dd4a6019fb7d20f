package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

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
		if _, _, err := s.apply(cmdJobRegister, &jobRegisterCmd{Job: sizedJob(id, 600)}); err != nil {
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
	e1 := &Eval{ID: "e1", JobID: "one", Status: EvalPending}
	e2 := &Eval{ID: "e2", JobID: "two", Status: EvalPending}
	r1, err := s.scheduleRequest(e1)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := s.scheduleRequest(e2)
	p1, _ := sched.Schedule(r1)
	p2, _ := sched.Schedule(r2)
	if len(p1.Place) != 1 || len(p2.Place) != 1 || p1.Place[0].NodeID != "a" || p2.Place[0].NodeID != "a" {
		t.Fatalf("both plans should pick node a from the same snapshot: %+v %+v", p1.Place, p2.Place)
	}
	if rej, err := s.applyPlan(p1, e1); err != nil || rej != 0 {
		t.Fatalf("first plan: rejected %d, %v", rej, err)
	}
	if rej, err := s.applyPlan(p2, e2); err != nil || rej != 1 {
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

// The in-memory usage index always equals what bbolt says, whatever mix
// of placements, stops, status reports and node changes the FSM applies.
func TestUsageIndexMatchesState(t *testing.T) {
	st, _ := openTestStore(t)
	f := &fsm{store: st}
	rng := rand.New(rand.NewPCG(1, 2))
	var idx uint64
	apply := func(ct cmdType, v any) {
		idx++
		f.ApplyBatch([]*raft.Log{{Index: idx, Type: raft.LogCommand, Data: mustCmd(t, ct, v)}})
	}
	nodes := []string{"n0", "n1", "n2"}
	for _, n := range nodes {
		apply(cmdNodeRegister, &nodeRegisterCmd{Node: sched.Node{ID: n, Name: n, Status: sched.NodeReady, Eligible: true,
			Capacity: sched.Resources{CPU: 10000, MemoryMB: 10000}}})
	}
	var ids []string
	statuses := []string{sched.ClientPending, sched.ClientRunning, sched.ClientFailed, sched.ClientComplete, sched.ClientUnknown}
	for step := range 400 {
		switch rng.IntN(4) {
		case 0: // place
			id := fmt.Sprintf("a%d", step)
			node := nodes[rng.IntN(len(nodes))]
			apply(cmdPlanApply, &planApplyCmd{Place: []*sched.Allocation{{ID: id, JobID: "j", Group: "g", NodeID: node,
				Resources:     sched.Resources{CPU: 1 + rng.IntN(100), MemoryMB: 1 + rng.IntN(100)},
				Ports:         []sched.PortMapping{{Label: "p", Value: 20000 + step}},
				DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientPending}}})
			ids = append(ids, id)
		case 1: // stop
			if len(ids) > 0 {
				apply(cmdPlanApply, &planApplyCmd{Stop: []allocStop{{ID: ids[rng.IntN(len(ids))], Desc: "x"}}})
			}
		case 2: // client report
			if len(ids) > 0 {
				id := ids[rng.IntN(len(ids))]
				a, _ := st.Alloc(id)
				apply(cmdAllocUpdate, &allocUpdateCmd{NodeID: a.NodeID, Updates: []allocUpdate{{AllocID: id, ClientStatus: statuses[rng.IntN(len(statuses))]}}})
			}
		case 3: // node down / drain
			n := nodes[rng.IntN(len(nodes))]
			if rng.IntN(2) == 0 {
				apply(cmdNodeStatus, &nodeStatusCmd{NodeID: n, Status: sched.NodeDown})
			} else {
				apply(cmdNodeDrain, &nodeDrainCmd{NodeID: n, Drain: &Drain{Started: 1}})
			}
		}
		var fromDisk usageIndex
		if err := st.db.View(fromDisk.rebuild); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			got, want := st.NodeState(n), fromDisk.get(n)
			if !reflect.DeepEqual(got.Used, want.Used) || !reflect.DeepEqual(got.UsedPorts, want.UsedPorts) || !reflect.DeepEqual(*got.Node, *want.Node) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(want)
				t.Fatalf("step %d node %s: index %s, state %s", step, n, gj, wj)
			}
		}
		if st.LiveAllocs() != fromDisk.liveAllocs() {
			t.Fatalf("step %d: %d live allocations in the index, %d in the state", step, st.LiveAllocs(), fromDisk.liveAllocs())
		}
		if !reflect.DeepEqual(st.usage.drainingNodes(), fromDisk.drainingNodes()) {
			t.Fatalf("step %d: draining %v, state %v", step, st.usage.drainingNodes(), fromDisk.drainingNodes())
		}
		for _, n := range nodes {
			got, want := st.usage.nodeAllocs(n), fromDisk.nodeAllocs(n)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d node %s: allocations %v in the index, %v in the state", step, n, got, want)
			}
		}
	}
}

// Nodes join in any order; snapshots list them sorted by ID, and each
// node's later changes land on its own entry.
func TestUsageIndexKeepsNodesSorted(t *testing.T) {
	u := usageIndex{pos: map[string]int{}, draining: map[string]bool{}, byNode: map[string]idList{}}
	for i, id := range []string{"c", "a", "d", "b"} {
		u.publish(map[string]*usageDelta{id: {node: &sched.Node{ID: id, Name: id}, res: sched.Resources{CPU: i + 1}}})
	}
	u.publish(map[string]*usageDelta{"a": {res: sched.Resources{CPU: 10}}, "d": {res: sched.Resources{CPU: 10}}})
	var got []string
	for _, ns := range u.snapshot() {
		got = append(got, fmt.Sprintf("%s:%d", ns.Node.ID, ns.Used.CPU))
	}
	if want := []string{"a:12", "b:4", "c:1", "d:13"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot %v, want %v", got, want)
	}
	if ns := u.get("b"); ns == nil || ns.Used.CPU != 4 {
		t.Fatalf("get(b) = %+v", ns)
	}
}

// The allocation cache drops its oldest entries past allocCacheMax.
func TestAllocCacheDropsOldest(t *testing.T) {
	c := allocCache{m: map[string]*Alloc{}}
	for i := range allocCacheMax + 10 {
		id := fmt.Sprint(i)
		c.publish(map[string]*Alloc{id: {Allocation: sched.Allocation{ID: id}}})
	}
	c.publish(map[string]*Alloc{"15": {}}) // an update keeps its place
	if len(c.m) != allocCacheMax {
		t.Fatalf("%d entries, want %d", len(c.m), allocCacheMax)
	}
	for _, id := range []string{"0", "9"} {
		if c.get(id) != nil {
			t.Fatalf("%s should have been dropped", id)
		}
	}
	for _, id := range []string{"10", "15", fmt.Sprint(allocCacheMax + 9)} {
		if c.get(id) == nil {
			t.Fatalf("%s should still be cached", id)
		}
	}
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
		if _, _, err := s.apply(cmdJobRegister, &jobRegisterCmd{Job: j}); err != nil {
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
		e := &Eval{ID: "e-" + job, JobID: job, Status: EvalPending}
		req, err := s.scheduleRequest(e)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := sched.Schedule(req)
		if err != nil || len(plan.Place) != 20 {
			t.Fatalf("plan for %s: %d placements, %v", job, len(plan.Place), err)
		}
		if rej, err := s.applyPlan(plan, e); err != nil || rej != 0 {
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
