package state

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
)

// applyCase is one command applied to a state built by setup. A refusal
// (err set) must leave every query's answer as it was.
type applyCase struct {
	name  string
	setup []Command
	cmd   Command
	err   string // the command is refused with an error containing this
	is    error  // ... and wrapping this, if set
	check func(t *testing.T, st *Store, r Result, fx *Effects)
}

func runApplyCases(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			if len(c.setup) > 0 {
				h.must(c.setup...)
			}
			before := dumpStore(t, h.st)
			res, fx := h.apply(c.cmd)
			r := res[0]
			if fx.Index != h.index || h.st.Index() != h.index {
				t.Fatalf("applied index %d (effects %d), want %d", h.st.Index(), fx.Index, h.index)
			}
			if c.err != "" {
				if r.Err == nil || !strings.Contains(r.Err.Error(), c.err) || (c.is != nil && !errors.Is(r.Err, c.is)) {
					t.Fatalf("result %+v, want a refusal saying %q (wrapping %v)", r, c.err, c.is)
				}
				after := dumpStore(t, h.st)
				after.Index = before.Index
				if !equalDumps(before, after) {
					t.Fatalf("a refused command changed the state:\nbefore %+v\nafter  %+v", before, after)
				}
				if len(fx.Evals) > 0 || fx.Capacity || len(fx.Nodes) > 0 {
					t.Fatalf("a refused command has effects: %+v", fx)
				}
				return
			}
			if r.Err != nil {
				t.Fatalf("refused: %v", r.Err)
			}
			c.check(t, h.st, r, fx)
		})
	}
}

func job(t *testing.T, st *Store, id string) *structs.JobRecord {
	t.Helper()
	rec, err := st.Job(id)
	if err != nil || rec == nil {
		t.Fatalf("job %s: %v, %v", id, rec, err)
	}
	return rec
}

func alloc(t *testing.T, st *Store, id string) *structs.Alloc {
	t.Helper()
	a, err := st.Alloc(id)
	if err != nil || a == nil {
		t.Fatalf("allocation %s: %v, %v", id, a, err)
	}
	return a
}

func node(t *testing.T, st *Store, id string) *structs.NodeRecord {
	t.Helper()
	n, err := st.Node(id)
	if err != nil || n == nil {
		t.Fatalf("node %s: %v, %v", id, n, err)
	}
	return n
}

func evalIDs(es []*structs.Eval) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID+":"+e.Status)
	}
	return out
}

func TestApplyJobCommands(t *testing.T) {
	web1, web2 := testJob("web", "a@1.0.0"), testJob("web", "a@2.0.0")
	runApplyCases(t, []applyCase{
		{name: "register a new job", cmd: &JobRegister{Job: web1, SubmitTime: 7, EvalID: "e1"},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if got := r.Value.(*JobRegisterResult); *got != (JobRegisterResult{Version: 0, Changed: true, EvalID: "e1", ModifyIndex: 1}) {
					t.Fatalf("result %+v", got)
				}
				rec := job(t, st, "web")
				if rec.Version != 0 || rec.SubmitTime != 7 || rec.LatestEvalID != "e1" || rec.CreateIndex != 1 || rec.ModifyIndex != 1 || rec.Stopped {
					t.Fatalf("record %+v", rec)
				}
				if e, _ := st.Eval("e1"); e == nil || e.Status != structs.EvalPending || e.TriggeredBy != "job-register" || e.JobID != "web" {
					t.Fatalf("evaluation %+v", e)
				}
				if got := evalIDs(fx.Evals); !slices.Equal(got, []string{"e1:pending"}) {
					t.Fatalf("effects queue %v", got)
				}
			}},
		{name: "the same job again changes nothing", setup: []Command{&JobRegister{Job: web1, EvalID: "e1"}},
			cmd: &JobRegister{Job: testJob("web", "a@1.0.0"), SubmitTime: 9, EvalID: "e2"},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if got := r.Value.(*JobRegisterResult); *got != (JobRegisterResult{Version: 0, ModifyIndex: 1}) {
					t.Fatalf("result %+v, want unchanged version 0 and no evaluation", got)
				}
				if rec := job(t, st, "web"); rec.ModifyIndex != 1 || rec.SubmitTime != 0 || rec.LatestEvalID != "e1" {
					t.Fatalf("record changed: %+v", rec)
				}
				if e, _ := st.Eval("e2"); e != nil || len(fx.Evals) != 0 {
					t.Fatalf("an evaluation was made: %+v, effects %+v", e, fx.Evals)
				}
			}},
		{name: "a changed job is the next version", setup: []Command{&JobRegister{Job: web1, EvalID: "e1"}},
			cmd: &JobRegister{Job: web2, EvalID: "e2"},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if got := r.Value.(*JobRegisterResult); *got != (JobRegisterResult{Version: 1, Changed: true, EvalID: "e2", ModifyIndex: 2}) {
					t.Fatalf("result %+v", got)
				}
				vs, _ := st.JobVersions("web")
				if len(vs) != 2 || !reflect.DeepEqual(vs[0], web1) || !reflect.DeepEqual(vs[1], web2) {
					t.Fatalf("versions %+v", vs)
				}
				if j, _ := st.JobVersion("web", 1); !reflect.DeepEqual(j, web2) {
					t.Fatalf("version 1 = %+v", j)
				}
			}},
		{name: "a stopped job registered again runs at its version",
			setup: []Command{&JobRegister{Job: web1, EvalID: "e1"}, &JobStop{JobID: "web", EvalID: "e2"}},
			cmd:   &JobRegister{Job: testJob("web", "a@1.0.0"), EvalID: "e3"},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if got := r.Value.(*JobRegisterResult); *got != (JobRegisterResult{Version: 0, Changed: true, EvalID: "e3", ModifyIndex: 3}) {
					t.Fatalf("result %+v", got)
				}
				if rec := job(t, st, "web"); rec.Stopped {
					t.Fatal("still stopped")
				}
			}},
		{name: "register without a job", cmd: &JobRegister{EvalID: "e1"}, err: "job register without a job"},
		{name: "stop", setup: []Command{&JobRegister{Job: web1, EvalID: "e1"}}, cmd: &JobStop{JobID: "web", EvalID: "e2"},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if rec := job(t, st, "web"); !rec.Stopped || rec.LatestEvalID != "e2" || rec.ModifyIndex != 2 {
					t.Fatalf("record %+v", rec)
				}
				if e, _ := st.Eval("e2"); e == nil || e.TriggeredBy != "job-deregister" {
					t.Fatalf("evaluation %+v", e)
				}
				if got := evalIDs(fx.Evals); !slices.Equal(got, []string{"e2:pending"}) {
					t.Fatalf("effects queue %v", got)
				}
			}},
		{name: "stop a job that does not exist", cmd: &JobStop{JobID: "nope", EvalID: "e1"}, err: `job "nope"`, is: ErrNotFound},
		{name: "push a module", cmd: &ModuleRegister{Module: structs.Module{Name: "a", Version: "1.0.0", Digest: "sha256:aa"}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if m, _ := st.Module("a", "1.0.0"); m == nil || m.Digest != "sha256:aa" || m.CreateIndex != 1 {
					t.Fatalf("module %+v", m)
				}
				if m, _ := st.ModuleByDigest("sha256:aa"); m == nil || m.Version != "1.0.0" {
					t.Fatalf("by digest %+v", m)
				}
			}},
		{name: "push the same module again", setup: []Command{&ModuleRegister{Module: structs.Module{Name: "a", Version: "1.0.0", Digest: "sha256:aa"}}},
			cmd: &ModuleRegister{Module: structs.Module{Name: "a", Version: "1.0.0", Digest: "sha256:aa", PushTime: 5}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if m, _ := st.Module("a", "1.0.0"); m.CreateIndex != 1 || m.PushTime != 0 {
					t.Fatalf("an identical push rewrote the module: %+v", m)
				}
			}},
		{name: "a module version is immutable", setup: []Command{&ModuleRegister{Module: structs.Module{Name: "a", Version: "1.0.0", Digest: "sha256:aa"}}},
			cmd: &ModuleRegister{Module: structs.Module{Name: "a", Version: "1.0.0", Digest: "sha256:bb"}},
			err: "a@1.0.0 is sha256:aa", is: ErrModuleExists},
		{name: "the first cluster CA wins", setup: []Command{&CASet{CA: ClusterCA{CertPEM: []byte("first")}}},
			cmd: &CASet{CA: ClusterCA{CertPEM: []byte("second")}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if ca, _ := st.CA(); ca == nil || string(ca.CertPEM) != "first" {
					t.Fatalf("CA %+v", ca)
				}
			}},
	})
}

func TestApplyEvalUpsert(t *testing.T) {
	runApplyCases(t, []applyCase{
		{name: "pending and blocked go to the queue, complete does not",
			cmd: &EvalUpsert{Evals: []*structs.Eval{
				{ID: "p", JobID: "j", Status: structs.EvalPending},
				{ID: "b", JobID: "j", Status: structs.EvalBlocked},
				{ID: "c", JobID: "j", Status: structs.EvalComplete}}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if got := evalIDs(fx.Evals); !slices.Equal(got, []string{"p:pending", "b:blocked"}) {
					t.Fatalf("effects queue %v", got)
				}
				if got := evalIDs(mustGet(st.Evals(structs.EvalComplete))); !slices.Equal(got, []string{"c:complete"}) {
					t.Fatalf("complete evaluations %v", got)
				}
			}},
		{name: "an update keeps the creation index",
			setup: []Command{&EvalUpsert{Evals: []*structs.Eval{{ID: "e", JobID: "j", Status: structs.EvalPending}}}},
			cmd:   &EvalUpsert{Evals: []*structs.Eval{{ID: "e", JobID: "j", Status: structs.EvalComplete}}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if e, _ := st.Eval("e"); e.CreateIndex != 1 || e.ModifyIndex != 2 || e.Status != structs.EvalComplete {
					t.Fatalf("evaluation %+v", e)
				}
			}},
		{name: "an evaluation without an ID", cmd: &EvalUpsert{Evals: []*structs.Eval{{ID: "ok"}, {JobID: "j"}}}, err: "evaluation without an ID"},
	})
}

func mustGet[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestApplyNodeCommands(t *testing.T) {
	n1 := testNode("n1", 1000, 1000)
	drained := []Command{&NodeRegister{Node: n1, Time: 1}, &NodeDrain{NodeID: "n1", Drain: &structs.Drain{Started: 5}}}
	runApplyCases(t, []applyCase{
		{name: "register a node", cmd: &NodeRegister{Node: n1, Time: 3},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				n := node(t, st, "n1")
				if !n.Eligible || n.LastRegister != 3 || n.CreateIndex != 1 || n.Drain != nil {
					t.Fatalf("node %+v", n)
				}
				if ns := st.NodeStates(); len(ns) != 1 || ns[0].Node.ID != "n1" || ns[0].Node.Capacity.CPU != 1000 || st.NodeCount() != 1 {
					t.Fatalf("scheduler's view %+v", ns)
				}
				if !fx.Capacity {
					t.Fatal("a new node is capacity: blocked evaluations must retry")
				}
			}},
		{name: "re-registering keeps a drain and ineligibility", setup: drained,
			cmd: &NodeRegister{Node: n1, Time: 9},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if n := node(t, st, "n1"); n.Eligible || n.Drain == nil || n.LastRegister != 9 || n.CreateIndex != 1 {
					t.Fatalf("node %+v", n)
				}
				if got := st.DrainingNodes(); !slices.Equal(got, []string{"n1"}) {
					t.Fatalf("draining %v", got)
				}
			}},
		{name: "register without a node ID", cmd: &NodeRegister{Time: 1}, err: "without a node ID"},
		{name: "start a drain", setup: []Command{&NodeRegister{Node: n1}},
			cmd: &NodeDrain{NodeID: "n1", Drain: &structs.Drain{Started: 5, Deadline: 9}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if n := node(t, st, "n1"); n.Eligible || n.Drain == nil || n.Drain.Deadline != 9 {
					t.Fatalf("node %+v", n)
				}
				if got := st.DrainingNodes(); !slices.Equal(got, []string{"n1"}) {
					t.Fatalf("draining %v", got)
				}
				if fx.Capacity {
					t.Fatal("a drain frees no capacity")
				}
			}},
		{name: "end a drain, eligible again", setup: drained, cmd: &NodeDrain{NodeID: "n1", Eligible: true},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if n := node(t, st, "n1"); !n.Eligible || n.Drain != nil {
					t.Fatalf("node %+v", n)
				}
				if len(st.DrainingNodes()) != 0 || !fx.Capacity {
					t.Fatalf("draining %v, capacity effect %v", st.DrainingNodes(), fx.Capacity)
				}
			}},
		{name: "drain a node that does not exist", cmd: &NodeDrain{NodeID: "nope", Drain: &structs.Drain{Started: 1}}, err: `node "nope"`, is: ErrNotFound},
		{name: "a node goes down",
			setup: []Command{&NodeRegister{Node: n1}, &PlanApply{Place: []*sched.Allocation{testAlloc("a1", "web", "n1"), testAlloc("a2", "web", "n1")}}},
			cmd: &NodeStatus{NodeID: "n1", Status: sched.NodeDown, Time: 50,
				Allocs: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientLost, Description: "missed heartbeats"},
					{AllocID: "a2", ClientStatus: sched.ClientUnknown}},
				Evals: []*structs.Eval{{ID: "e1", JobID: "web", TriggeredBy: "node-down", Status: structs.EvalPending}}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if n := node(t, st, "n1"); n.Status != sched.NodeDown {
					t.Fatalf("node %+v", n)
				}
				if a := alloc(t, st, "a1"); a.ClientStatus != sched.ClientLost || a.ClientDescription != "missed heartbeats" {
					t.Fatalf("a1 %+v", a)
				}
				if a := alloc(t, st, "a2"); a.ClientStatus != sched.ClientUnknown || a.UnknownSince != 50 {
					t.Fatalf("a2 %+v", a)
				}
				if ns := st.NodeState("n1"); ns.Node.Status != sched.NodeDown || ns.Used.CPU != 100 || st.LiveAllocs() != 1 {
					t.Fatalf("scheduler's view %+v, %d live; want the unknown allocation still held", ns, st.LiveAllocs())
				}
				if got := evalIDs(fx.Evals); !slices.Equal(got, []string{"e1:pending"}) || !fx.Capacity || !slices.Equal(fx.Nodes, []string{"n1"}) {
					t.Fatalf("effects %+v", fx)
				}
			}},
		{name: "status of a node that does not exist",
			setup: []Command{&PlanApply{Place: []*sched.Allocation{testAlloc("a1", "web", "ghost")}}},
			cmd: &NodeStatus{NodeID: "ghost", Status: sched.NodeDown, Allocs: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientLost}},
				Evals: []*structs.Eval{{ID: "e1", JobID: "web", Status: structs.EvalPending}}},
			err: `node "ghost"`, is: ErrNotFound},
	})
}

func TestApplyPlan(t *testing.T) {
	n1 := &NodeRegister{Node: testNode("n1", 1000, 1000)}
	a1 := testAlloc("a1", "web", "n1")
	a1.Ports = []sched.PortMapping{{Label: "http", Value: 20001}}
	running := &AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientRunning, Endpoints: []registry.Endpoint{endpoint("Web", "a1", 20001)}}}}
	runApplyCases(t, []applyCase{
		{name: "place", setup: []Command{n1},
			cmd: &PlanApply{Place: []*sched.Allocation{a1, testAlloc("a2", "web", "n1")},
				Eval: &structs.Eval{ID: "e1", JobID: "web", Status: structs.EvalBlocked}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if a := alloc(t, st, "a1"); a.CreateIndex != 2 || a.ModifyIndex != 2 || a.DesiredStatus != sched.DesiredRun {
					t.Fatalf("a1 %+v", a)
				}
				ns := st.NodeState("n1")
				if ns.Used != (sched.Resources{CPU: 200, MemoryMB: 128}) || !ns.UsedPorts[20001] || st.LiveAllocs() != 2 {
					t.Fatalf("scheduler's view %+v, live %d", ns, st.LiveAllocs())
				}
				if byNode, _ := st.NodeAllocs("n1"); len(byNode) != 2 {
					t.Fatalf("node allocations %+v", byNode)
				}
				if byJob, _ := st.JobAllocs("web"); len(byJob) != 2 {
					t.Fatalf("job allocations %+v", byJob)
				}
				if e, _ := st.Eval("e1"); e == nil || e.Status != structs.EvalBlocked {
					t.Fatalf("evaluation %+v", e)
				}
				if !slices.Equal(fx.Nodes, []string{"n1"}) || !slices.Equal(evalIDs(fx.Evals), []string{"e1:blocked"}) || fx.Capacity {
					t.Fatalf("effects %+v", fx)
				}
				if st.NodeAllocChanges("n1") == 0 {
					t.Fatal("the node's allocation counter did not move")
				}
			}},
		{name: "stop", setup: []Command{n1, &PlanApply{Place: []*sched.Allocation{a1}}, running},
			cmd: &PlanApply{Stop: []AllocStop{{ID: "a1", Desc: "job stopped"}, {ID: "unknown"}}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if a := alloc(t, st, "a1"); a.DesiredStatus != sched.DesiredStop || a.DesiredDesc != "job stopped" || len(a.Endpoints) != 0 {
					t.Fatalf("a1 %+v", a)
				}
				if eps := st.Endpoints("web"); len(eps) != 0 {
					t.Fatalf("a stopped allocation is still discoverable: %+v", eps)
				}
				if ns := st.NodeState("n1"); ns.Used.CPU != 0 || ns.UsedPorts[20001] || st.LiveAllocs() != 0 {
					t.Fatalf("scheduler's view %+v", ns)
				}
				if !fx.Capacity || !slices.Equal(fx.Nodes, []string{"n1"}) {
					t.Fatalf("effects %+v", fx)
				}
			}},
		{name: "a placement never overwrites an allocation", setup: []Command{n1, &PlanApply{Place: []*sched.Allocation{a1}}, running},
			cmd: &PlanApply{Place: []*sched.Allocation{testAlloc("a1", "other", "n1")}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if a := alloc(t, st, "a1"); a.JobID != "web" || a.ClientStatus != sched.ClientRunning || a.CreateIndex != 2 {
					t.Fatalf("a1 overwritten: %+v", a)
				}
				if st.LiveAllocs() != 1 {
					t.Fatalf("%d live allocations, want 1", st.LiveAllocs())
				}
			}},
		{name: "a plan whose evaluation has no ID", cmd: &PlanApply{Place: []*sched.Allocation{a1}, Eval: &structs.Eval{JobID: "web"}},
			err: "evaluation without an ID"},
	})
}

func TestApplyAllocUpdate(t *testing.T) {
	n1 := &NodeRegister{Node: testNode("n1", 1000, 1000)}
	placed := []Command{n1, &PlanApply{Place: []*sched.Allocation{testAlloc("a1", "web", "n1")}}}
	report := func(status string, eps ...registry.Endpoint) *AllocUpdate {
		return &AllocUpdate{NodeID: "n1", Time: 70, Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: status, Endpoints: eps}}}
	}
	states := map[string]*structs.TaskState{"t": {State: "running", Restarts: 2}}
	runApplyCases(t, []applyCase{
		{name: "running with an endpoint", setup: placed,
			cmd: &AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientRunning, Description: "ok",
				Endpoints: []registry.Endpoint{endpoint("Web", "a1", 20001)}, TaskStates: states}}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				a := alloc(t, st, "a1")
				if a.ClientStatus != sched.ClientRunning || a.ClientDescription != "ok" || !reflect.DeepEqual(a.TaskStates, states) {
					t.Fatalf("a1 %+v", a)
				}
				if eps := st.Endpoints("WEB"); len(eps) != 1 || eps[0].Port != 20001 {
					t.Fatalf("catalog %+v (service names match case-insensitively)", eps)
				}
				if got := st.Services(); !reflect.DeepEqual(got, map[string]int{"web": 1}) {
					t.Fatalf("services %v", got)
				}
				if fx.Capacity || !slices.Equal(fx.Nodes, []string{"n1"}) {
					t.Fatalf("effects %+v", fx)
				}
			}},
		{name: "another node cannot report this node's allocation", setup: placed,
			cmd: &AllocUpdate{NodeID: "intruder", Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientFailed}}},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if a := alloc(t, st, "a1"); a.ClientStatus != sched.ClientPending || a.ModifyIndex != 2 {
					t.Fatalf("a1 %+v", a)
				}
				if len(fx.Nodes) != 0 {
					t.Fatalf("effects %+v", fx)
				}
			}},
		{name: "failing frees the capacity and leaves the catalog",
			setup: append(slices.Clone(placed), report(sched.ClientRunning, endpoint("web", "a1", 1))),
			cmd:   report(sched.ClientFailed, endpoint("web", "a1", 1)),
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if a := alloc(t, st, "a1"); a.ClientStatus != sched.ClientFailed || len(a.Endpoints) != 0 {
					t.Fatalf("a1 %+v", a)
				}
				if len(st.Endpoints("web")) != 0 || st.NodeState("n1").Used.CPU != 0 || !fx.Capacity {
					t.Fatalf("catalog %+v, used %+v, capacity effect %v", st.Endpoints("web"), st.NodeState("n1").Used, fx.Capacity)
				}
			}},
		{name: "a late report never revives a final status",
			setup: append(slices.Clone(placed), report(sched.ClientLost)),
			cmd:   report(sched.ClientRunning, endpoint("web", "a1", 1)),
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if a := alloc(t, st, "a1"); a.ClientStatus != sched.ClientLost {
					t.Fatalf("a1 %+v", a)
				}
				if len(st.Endpoints("web")) != 0 || st.LiveAllocs() != 0 {
					t.Fatal("a lost allocation came back")
				}
			}},
		{name: "a late report after a stop is not discoverable",
			setup: append(slices.Clone(placed), &PlanApply{Stop: []AllocStop{{ID: "a1", Desc: "job stopped"}}}),
			cmd:   report(sched.ClientRunning, endpoint("web", "a1", 1)),
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if len(st.Endpoints("web")) != 0 {
					t.Fatal("a late report re-registered a stopped allocation")
				}
			}},
		{name: "unknown since the update's time; a report without task states keeps them",
			setup: append(slices.Clone(placed), &AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientRunning, TaskStates: states}}}),
			cmd:   report(sched.ClientUnknown),
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if a := alloc(t, st, "a1"); a.UnknownSince != 70 || !reflect.DeepEqual(a.TaskStates, states) {
					t.Fatalf("a1 %+v", a)
				}
			}},
	})
}

func TestApplyTokens(t *testing.T) {
	once := structs.JoinToken{ID: "t1", SecretHash: "h1", CreateTime: 1}
	multi := structs.JoinToken{ID: "t2", SecretHash: "h2", Reusable: true}
	expiring := structs.JoinToken{ID: "t3", SecretHash: "h3", ExpireTime: 100}
	created := []Command{&TokenCreate{Token: once}, &TokenCreate{Token: multi}, &TokenCreate{Token: expiring}}
	used := append(slices.Clone(created), &TokenUse{ID: "t1", SecretHash: "h1", NodeID: "n1", Time: 10})
	runApplyCases(t, []applyCase{
		{name: "create", cmd: &TokenCreate{Token: once},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if toks, _ := st.JoinTokens(); len(toks) != 1 || toks[0].ID != "t1" || toks[0].SecretHash != "" {
					t.Fatalf("listed %+v, want the token without its secret's hash", toks)
				}
				if tok, _ := st.JoinToken("t1"); tok == nil || tok.SecretHash != "h1" {
					t.Fatalf("stored %+v", tok)
				}
			}},
		{name: "create an ID that exists", setup: created, cmd: &TokenCreate{Token: structs.JoinToken{ID: "t1", SecretHash: "x"}}, err: "already exists"},
		{name: "create without an ID", cmd: &TokenCreate{Token: structs.JoinToken{SecretHash: "x"}}, err: "without an ID"},
		{name: "use", setup: created, cmd: &TokenUse{ID: "t1", SecretHash: "h1", NodeID: "n1", Time: 10},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if tok, _ := st.JoinToken("t1"); tok.Uses != 1 || tok.LastNodeID != "n1" {
					t.Fatalf("token %+v", tok)
				}
			}},
		{name: "a one-time token twice", setup: used, cmd: &TokenUse{ID: "t1", SecretHash: "h1", NodeID: "n2", Time: 11},
			err: "already used by node n1", is: ErrJoinRefused},
		{name: "a reusable token twice", setup: append(slices.Clone(created), &TokenUse{ID: "t2", SecretHash: "h2", NodeID: "n1"}),
			cmd: &TokenUse{ID: "t2", SecretHash: "h2", NodeID: "n2"},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if tok, _ := st.JoinToken("t2"); tok.Uses != 2 || tok.LastNodeID != "n2" {
					t.Fatalf("token %+v", tok)
				}
			}},
		{name: "wrong secret", setup: created, cmd: &TokenUse{ID: "t2", SecretHash: "nope", NodeID: "n1"}, err: "wrong secret", is: ErrJoinRefused},
		{name: "expired at the command's time", setup: created, cmd: &TokenUse{ID: "t3", SecretHash: "h3", NodeID: "n1", Time: 100},
			err: "expired at", is: ErrJoinRefused},
		{name: "just before it expires", setup: created, cmd: &TokenUse{ID: "t3", SecretHash: "h3", NodeID: "n1", Time: 99},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if tok, _ := st.JoinToken("t3"); tok.Uses != 1 {
					t.Fatalf("token %+v", tok)
				}
			}},
		{name: "revoke", setup: created, cmd: &TokenRevoke{ID: "t2"},
			check: func(t *testing.T, st *Store, r Result, fx *Effects) {
				if tok, _ := st.JoinToken("t2"); tok != nil {
					t.Fatalf("revoked token still stored: %+v", tok)
				}
				if err := CheckToken(&structs.JoinToken{}, false, "t2", "h2", 0); !errors.Is(err, ErrJoinRefused) || !strings.Contains(err.Error(), "does not exist") {
					t.Fatalf("CheckToken on a revoked token: %v", err)
				}
			}},
		{name: "use a revoked token", setup: append(slices.Clone(created), &TokenRevoke{ID: "t2"}), cmd: &TokenUse{ID: "t2", SecretHash: "h2"},
			err: "does not exist", is: ErrJoinRefused},
		{name: "revoke a token that does not exist", cmd: &TokenRevoke{ID: "nope"}, err: "join token nope", is: ErrNotFound},
	})
}

// Entries that do not decode are refused one by one; the batch goes on
// and the applied index covers them all.
func TestApplyRefusesMalformedCommands(t *testing.T) {
	h := newHarness(t)
	res, fx := h.applyRaw(
		nil,
		[]byte{99, '{', '}'},
		[]byte{byte(CmdJobRegister), 'x'},
		[]byte{byte(CmdEvalUpsert), '{', '"', 'E', 'v', 'a', 'l', 's', '"', ':', '5', '}'},
		mustEncode(t, &JobRegister{Job: testJob("web", "a@1.0.0")}),
	)
	for i, want := range []string{"empty command", "unknown command type 99", "malformed command 1", "malformed command 7"} {
		if err := res[i].Err; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("result %d = %+v, want an error containing %q", i, res[i], want)
		}
	}
	if res[4].Err != nil {
		t.Fatalf("the valid command after the refused ones: %v", res[4].Err)
	}
	if rec, _ := h.st.Job("web"); rec == nil || h.st.Index() != 5 || fx.Index != 5 {
		t.Fatalf("job %+v, applied index %d (effects %d), want the job and index 5", rec, h.st.Index(), fx.Index)
	}
}

// A restart replays Raft entries the state already applied; the applied
// index, written in the same transaction, makes them no-ops. Entries
// that are not commands (configuration changes) only move the index.
func TestApplySkipsReplayedEntries(t *testing.T) {
	h := newHarness(t)
	h.must(&JobRegister{Job: testJob("web", "a@1.0.0"), EvalID: "e1"},
		&JobRegister{Job: testJob("web", "a@2.0.0"), EvalID: "e2"})
	res, fx, err := h.st.Apply(append(slices.Clone(h.log), Entry{Index: 3, Data: []byte("a configuration")}))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Value != nil || r.Err != nil {
			t.Fatalf("entry %d replayed: %+v", i, r)
		}
	}
	if fx.Index != 3 || len(fx.Evals) != 0 || fx.Capacity || h.st.Index() != 3 {
		t.Fatalf("effects %+v, index %d", fx, h.st.Index())
	}
	if rec := job(t, h.st, "web"); rec.Version != 1 {
		t.Fatalf("job version after replay = %d, want 1 (two registrations, applied once each)", rec.Version)
	}
}
