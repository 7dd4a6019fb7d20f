package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

func equalDumps(a, b dump) bool { return reflect.DeepEqual(a, b) }

// world drives a store with random commands the way the servers would:
// nodes register, go down and drain; jobs register and stop; workers plan
// on snapshots that may be stale by the time the applier checks the plan
// (CheckPlan), and checked plans may wait in flight while later plans are
// checked; agents report statuses, sometimes for another node's
// allocation or late.
type world struct {
	t        *testing.T
	h        *harness
	rng      *rand.Rand
	nodes    []string
	jobs     []string
	allocs   []string
	stale    map[string]*sched.Plan // job -> a plan made on an older snapshot
	inflight []*PlanApply           // checked and stamped, not yet applied
	nextID   int
	rejected int // placements the re-check refused
	applied  int // plans applied
	peak     int // the most CPU any node held at once
}

func newWorld(t *testing.T, seed uint64) *world {
	w := &world{t: t, h: newHarness(t), rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), stale: map[string]*sched.Plan{}}
	for i := range 4 {
		id := fmt.Sprintf("n%d", i)
		w.nodes = append(w.nodes, id)
		w.h.must(&NodeRegister{Node: testNode(id, 1000, 2048)})
	}
	return w
}

// step applies one random command (or batch).
func (w *world) step() {
	switch r := w.rng.IntN(100); {
	case r < 10:
		w.registerJob()
	case r < 15:
		w.stopJob()
	case r < 45:
		w.plan()
	case r < 55:
		w.applyInflight()
	case r < 80:
		w.report()
	case r < 88:
		w.nodeChange()
	case r < 97:
		w.evalUpsert()
	default:
		w.collect()
	}
}

// collect runs the garbage collector, or purges a job.
func (w *world) collect() {
	if w.rng.IntN(3) > 0 || len(w.jobs) == 0 {
		w.h.must(&SystemGC{KeepVersions: 1 + w.rng.IntN(3)})
		return
	}
	id := w.pick(w.jobs)
	w.h.apply(&JobStop{JobID: id, EvalID: fmt.Sprintf("e%d", w.nextEval()), Purge: true})
	w.jobs = slices.DeleteFunc(w.jobs, func(j string) bool { return j == id })
	delete(w.stale, id)
}

func (w *world) pick(list []string) string { return list[w.rng.IntN(len(list))] }

func (w *world) registerJob() {
	id := fmt.Sprintf("job%d", w.rng.IntN(6))
	j := sizedJob(id, 1+w.rng.IntN(4), 100*(1+w.rng.IntN(5)))
	if w.rng.IntN(3) == 0 {
		j.Groups[0].Tasks[0].Resources.Networks = []*spec.Network{{Ports: []*spec.Port{{Label: "http"}}}}
	}
	w.h.apply(&JobRegister{Job: j, EvalID: fmt.Sprintf("e%d", w.nextEval())})
	if !slices.Contains(w.jobs, id) {
		w.jobs = append(w.jobs, id)
	}
}

func (w *world) nextEval() int { w.nextID++; return w.nextID }

func (w *world) stopJob() {
	if len(w.jobs) > 0 {
		w.h.apply(&JobStop{JobID: w.pick(w.jobs), EvalID: fmt.Sprintf("e%d", w.nextEval())})
	}
}

// plan makes a plan for a job on the current snapshot, or checks one made
// earlier (stale), and leaves it in flight or applies it.
func (w *world) plan() {
	if len(w.jobs) == 0 {
		return
	}
	jobID := w.pick(w.jobs)
	plan := w.stale[jobID]
	if plan == nil || w.rng.IntN(2) == 0 {
		fresh := planFor(w.t, w.h.st, jobID, fmt.Sprintf("e%d", w.nextEval()))
		if w.rng.IntN(2) == 0 {
			w.stale[jobID] = fresh // checked later, after other changes
			return
		}
		plan = fresh
	}
	delete(w.stale, jobID)
	cmd, rejected, err := w.h.st.CheckPlan(plan, &structs.Eval{ID: plan.EvalID, JobID: jobID, Status: structs.EvalPending}, w.addInflight)
	if err != nil {
		w.t.Fatal(err)
	}
	w.rejected += len(rejected)
	for _, p := range cmd.Place {
		w.nextID++
		p.ID = fmt.Sprintf("a%06d", w.nextID)
		w.allocs = append(w.allocs, p.ID)
	}
	w.inflight = append(w.inflight, cmd)
	if len(w.inflight) > 2 || w.rng.IntN(2) == 0 {
		w.applyInflight()
	}
}

// addInflight counts the placements of checked plans not yet applied.
func (w *world) addInflight(ns *sched.NodeState) {
	for _, cmd := range w.inflight {
		for _, p := range cmd.Place {
			if p.NodeID == ns.Node.ID {
				ns.Used = ns.Used.Add(p.Resources)
				for _, port := range p.Ports {
					ns.UsedPorts[port.Value] = true
				}
			}
		}
	}
}

func (w *world) applyInflight() {
	if len(w.inflight) == 0 {
		return
	}
	cmd := w.inflight[0]
	w.inflight = w.inflight[1:]
	w.h.must(cmd)
	w.applied++
}

func (w *world) report() {
	if len(w.allocs) == 0 {
		return
	}
	id := w.pick(w.allocs)
	a, _ := w.h.st.Alloc(id)
	if a == nil {
		return // still in flight
	}
	statuses := []string{sched.ClientPending, sched.ClientRunning, sched.ClientFailed, sched.ClientComplete, sched.ClientUnknown, sched.ClientLost}
	u := ClientUpdate{AllocID: id, ClientStatus: w.pick(statuses)}
	if u.ClientStatus == sched.ClientRunning {
		u.Endpoints = append(u.Endpoints, endpoint(a.JobID, id, 20000+w.rng.IntN(100)))
	}
	nodeID := a.NodeID
	if w.rng.IntN(10) == 0 {
		nodeID = w.pick(w.nodes) // maybe another node's report: ignored
	}
	w.h.apply(&AllocUpdate{NodeID: nodeID, Time: int64(w.h.index), Updates: []ClientUpdate{u}})
}

func (w *world) nodeChange() {
	n := w.pick(w.nodes)
	switch w.rng.IntN(4) {
	case 0:
		w.h.apply(&NodeStatus{NodeID: n, Status: sched.NodeDown, Time: int64(w.h.index),
			Evals: []*structs.Eval{{ID: fmt.Sprintf("e%d", w.nextEval()), JobID: "job0", Status: structs.EvalPending}}})
	case 1:
		w.h.apply(&NodeRegister{Node: testNode(n, 1000, 2048), Time: int64(w.h.index)}) // back up, same capacity
	case 2:
		w.h.apply(&NodeDrain{NodeID: n, Drain: &structs.Drain{Started: int64(w.h.index)}})
	case 3:
		w.h.apply(&NodeDrain{NodeID: n, Eligible: true})
	}
}

func (w *world) evalUpsert() {
	statuses := []string{structs.EvalPending, structs.EvalBlocked, structs.EvalComplete}
	w.h.apply(&EvalUpsert{Evals: []*structs.Eval{{ID: fmt.Sprintf("e%d", w.rng.IntN(w.nextID+1)), JobID: "job1", Status: w.pick(statuses)}}})
}

// checkUsage compares the in-memory views with a recomputation from
// bbolt, and checks that no node holds more than its capacity.
func (w *world) checkUsage(step int) {
	st := w.h.st
	var fromDisk usageIndex
	if err := st.view(fromDisk.rebuild); err != nil {
		w.t.Fatal(err)
	}
	for _, n := range w.nodes {
		got, want := st.NodeState(n), fromDisk.get(n)
		if !reflect.DeepEqual(got.Used, want.Used) || !reflect.DeepEqual(got.UsedPorts, want.UsedPorts) || !reflect.DeepEqual(*got.Node, *want.Node) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			w.t.Fatalf("step %d node %s: index %s, state %s", step, n, gj, wj)
		}
		w.peak = max(w.peak, got.Used.CPU)
		if got.Used.CPU > got.Node.Capacity.CPU || got.Used.MemoryMB > got.Node.Capacity.MemoryMB {
			w.t.Fatalf("step %d: node %s overcommitted: %+v of %+v", step, n, got.Used, got.Node.Capacity)
		}
		gotIDs, wantIDs := st.usage.nodeAllocs(n), fromDisk.nodeAllocs(n)
		slices.Sort(gotIDs)
		slices.Sort(wantIDs)
		if !slices.Equal(gotIDs, wantIDs) {
			w.t.Fatalf("step %d node %s: allocations %v in the index, %v in the state", step, n, gotIDs, wantIDs)
		}
	}
	if st.LiveAllocs() != fromDisk.liveAllocs() {
		w.t.Fatalf("step %d: %d live allocations in the index, %d in the state", step, st.LiveAllocs(), fromDisk.liveAllocs())
	}
	if !reflect.DeepEqual(st.DrainingNodes(), fromDisk.drainingNodes()) {
		w.t.Fatalf("step %d: draining %v, state %v", step, st.DrainingNodes(), fromDisk.drainingNodes())
	}
}

// Random sequences of commands: after every one, the usage index equals
// a recomputation from bbolt and no node is overcommitted by the plans
// the applier checked, however stale their snapshot.
func TestPropertyUsageIndexAndNoOvercommit(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w := newWorld(t, seed)
			for step := range 300 {
				w.step()
				w.checkUsage(step)
			}
			for len(w.inflight) > 0 {
				w.applyInflight()
			}
			w.checkUsage(-1)
			// The run must have filled nodes and exercised the re-check, or
			// it proves nothing.
			if w.applied < 20 || w.rejected == 0 || w.peak < 900 {
				t.Fatalf("%d plans applied, %d placements rejected, peak node use %d MHz of 1000: the sequence did not exercise the applier", w.applied, w.rejected, w.peak)
			}
			t.Logf("%d plans applied, %d placements rejected, peak node use %d MHz of 1000", w.applied, w.rejected, w.peak)
		})
	}
}

// Replaying entries at or below the applied index, in any batches, changes
// nothing: not the state, not the in-memory views, and it has no effects.
func TestPropertyReplayChangesNothing(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w := newWorld(t, 100+seed)
			for range 200 {
				w.step()
			}
			before := dumpStore(t, w.h.st)
			log := w.h.log
			for start := 0; start < len(log); {
				n := 1 + w.rng.IntN(20)
				end := min(start+n, len(log))
				res, fx, err := w.h.st.Apply(log[start:end])
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range res {
					if r.Value != nil || r.Err != nil {
						t.Fatalf("replayed entry %d gave %+v", log[start+i].Index, r)
					}
				}
				if len(fx.Evals) > 0 || fx.Capacity || len(fx.Nodes) > 0 || fx.Index != before.Index {
					t.Fatalf("a replay had effects: %+v", fx)
				}
				start = end
			}
			if after := dumpStore(t, w.h.st); !equalDumps(before, after) {
				t.Fatalf("a replay changed the state:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

// A snapshot restored into another store answers every query as the
// original does, and both apply the next commands alike.
func TestPropertySnapshotRestore(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w := newWorld(t, 200+seed)
			for range 200 {
				w.step()
			}
			snap, err := w.h.st.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := snap.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			snap.Release()
			restored := newHarness(t)
			restored.must(&NodeRegister{Node: testNode("to-be-replaced", 1, 1)})
			if err := restored.st.Restore(&buf); err != nil {
				t.Fatal(err)
			}
			if a, b := dumpStore(t, w.h.st), dumpStore(t, restored.st); !equalDumps(a, b) {
				t.Fatalf("restored state differs:\noriginal %+v\nrestored %+v", a, b)
			}
			// The same next entries on both give the same state.
			start := len(w.h.log)
			for range 50 {
				w.step()
			}
			if _, _, err := restored.st.Apply(w.h.log[start:]); err != nil {
				t.Fatal(err)
			}
			if a, b := dumpStore(t, w.h.st), dumpStore(t, restored.st); !equalDumps(a, b) {
				t.Fatalf("after the same entries:\noriginal %+v\nrestored %+v", a, b)
			}
			var fromDisk usageIndex
			if err := restored.st.view(func(tx *bolt.Tx) error { return fromDisk.rebuild(tx) }); err != nil {
				t.Fatal(err)
			}
			if restored.st.LiveAllocs() != fromDisk.liveAllocs() {
				t.Fatal("the restored store's usage index drifted from its bbolt file")
			}
		})
	}
}
