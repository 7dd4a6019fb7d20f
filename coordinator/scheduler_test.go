package coordinator

import (
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

func TestEvalTrigger(t *testing.T) {
	cases := []struct {
		name string
		c    statusChange
		want string // "" for no evaluation
	}{
		{"reconnected", statusChange{Before: sched.ClientUnknown, After: sched.ClientRunning, WasLive: true}, "alloc-reconnected"},
		{"failed", statusChange{Before: sched.ClientRunning, After: sched.ClientFailed, WasLive: true}, "alloc-failed"},
		{"finished", statusChange{Before: sched.ClientRunning, After: sched.ClientComplete, WasLive: true}, "alloc-complete"},
		{"lost after lost_after", statusChange{Before: sched.ClientUnknown, After: sched.ClientLost, WasLive: true}, "alloc-lost"},
		{"started", statusChange{Before: sched.ClientPending, After: sched.ClientRunning, WasLive: true}, ""},
		{"stopped copy finishes", statusChange{Before: sched.ClientRunning, After: sched.ClientComplete, WasLive: false}, ""},
		{"lost copy reports failed", statusChange{Before: sched.ClientLost, After: sched.ClientFailed, WasLive: false}, ""},
		{"disconnected", statusChange{Before: sched.ClientRunning, After: sched.ClientUnknown, WasLive: true}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			why, ok := evalTrigger(c.c)
			if ok != (c.want != "") || why != c.want {
				t.Fatalf("evalTrigger(%+v) = %q, %v; want %q", c.c, why, ok, c.want)
			}
		})
	}
}

// hookRecorder is an applyHook that records what the Raft adapter tells it.
type hookRecorder struct {
	watch   bool
	changes []statusChange
	calls   int
}

func (h *hookRecorder) watching() bool { return h.watch }
func (h *hookRecorder) applied(_ *state.Effects, changes []statusChange) {
	h.calls++
	h.changes = append(h.changes, changes...)
}

// logsOf encodes commands as the Raft log entries from index next on.
func logsOf(t *testing.T, next *uint64, cmds ...state.Command) []*raft.Log {
	t.Helper()
	var out []*raft.Log
	for _, c := range cmds {
		data, err := state.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		*next++
		out = append(out, &raft.Log{Index: *next, Type: raft.LogCommand, Data: data})
	}
	return out
}

func openStore(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func report(node string, status map[string]string) *state.AllocUpdate {
	c := &state.AllocUpdate{NodeID: node}
	for _, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		if s, ok := status[id]; ok {
			c.Updates = append(c.Updates, state.ClientUpdate{AllocID: id, ClientStatus: s})
		}
	}
	return c
}

// The Raft adapter tells the scheduling side how each allocation an
// AllocUpdate named moved over a batch: its status before the batch and
// after, once per allocation, and only for allocations that moved.
func TestFSMReportsStatusChanges(t *testing.T) {
	st := openStore(t)
	hook := &hookRecorder{watch: true}
	f := &fsm{store: st, hook: hook}
	var idx uint64
	var place []*sched.Allocation
	for _, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		place = append(place, &sched.Allocation{ID: id, JobID: "web", Group: "g", NodeID: "n1", DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientPending})
	}
	place[4].DesiredStatus = sched.DesiredStop
	f.ApplyBatch(logsOf(t, &idx, &state.PlanApply{Place: place}))
	f.ApplyBatch(logsOf(t, &idx, report("n1", map[string]string{"a1": "running", "a2": "unknown", "a3": "running", "a4": "running", "a5": "running"})))
	hook.changes, hook.calls = nil, 0

	// One batch: a1 fails, a2 comes back, a3 repeats itself, a4 finishes
	// and says so twice, a5 (stopped) finishes; and a report from another
	// node for a1, which the state ignores.
	f.ApplyBatch(logsOf(t, &idx,
		report("n1", map[string]string{"a1": "failed", "a2": "running", "a3": "running"}),
		report("n1", map[string]string{"a4": "complete", "a5": "complete"}),
		&state.AllocUpdate{NodeID: "n2", Updates: []state.ClientUpdate{{AllocID: "a1", ClientStatus: "running"}}},
		&state.AllocUpdate{NodeID: "n1", Updates: []state.ClientUpdate{{AllocID: "a4", ClientStatus: "complete", Description: "again"}}},
	))
	want := []statusChange{
		{AllocID: "a1", JobID: "web", Before: "running", After: "failed", WasLive: true},
		{AllocID: "a2", JobID: "web", Before: "unknown", After: "running", WasLive: true},
		{AllocID: "a4", JobID: "web", Before: "running", After: "complete", WasLive: true},
		{AllocID: "a5", JobID: "web", Before: "running", After: "complete", WasLive: false},
	}
	if !reflect.DeepEqual(hook.changes, want) {
		t.Fatalf("changes\n got %+v\nwant %+v", hook.changes, want)
	}

	// A plan names no reported allocation; a server that does not lead
	// is told no changes.
	hook.changes = nil
	f.ApplyBatch(logsOf(t, &idx, &state.PlanApply{Stop: []state.AllocStop{{ID: "a3", Desc: "test"}}}))
	hook.watch = false
	f.ApplyBatch(logsOf(t, &idx, report("n1", map[string]string{"a3": "complete"})))
	if len(hook.changes) != 0 {
		t.Fatalf("changes from a plan or while not watching: %+v", hook.changes)
	}
}

// commandRecorder is the proposal path for a part under test: it records
// each command and applies it to a store, as Raft would.
type commandRecorder struct {
	t     *testing.T
	store *state.Store
	index uint64
	cmds  []state.Command
}

func (r *commandRecorder) apply(c state.Command) (any, uint64, error) {
	r.cmds = append(r.cmds, c)
	data, err := state.Encode(c)
	if err != nil {
		return nil, 0, err
	}
	r.index++
	res, _, err := r.store.Apply([]state.Entry{{Index: r.index, Command: true, Data: data}})
	if err != nil {
		r.t.Fatal(err)
	}
	return res[0].Value, r.index, res[0].Err
}

// A status report is one command for the state machine, whatever it
// means for the job: the endpoint proposes no evaluation (the scheduling
// side decides that), and a report that repeats the state is none.
func TestAgentReportIsOneCommand(t *testing.T) {
	st := openStore(t)
	rec := &commandRecorder{t: t, store: st}
	a := newAgentEndpoint(nil, agentDeps{store: st, apply: rec.apply, log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec.apply(&state.PlanApply{Place: []*sched.Allocation{{ID: "a1", JobID: "web", Group: "g", NodeID: "n1",
		DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientRunning}}})
	rec.cmds = nil
	reg := &wire.Register{NodeID: "n1", Name: "edge-1", Address: "127.0.0.1"}
	for _, status := range []string{sched.ClientFailed, sched.ClientFailed} {
		if err := a.allocStatus(reg, &wire.AllocStatus{AllocID: "a1", ClientStatus: status}); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.cmds) != 1 {
		t.Fatalf("two identical failure reports proposed %d commands, want 1", len(rec.cmds))
	}
	u, ok := rec.cmds[0].(*state.AllocUpdate)
	if !ok || u.NodeID != "n1" || len(u.Updates) != 1 || u.Updates[0].ClientStatus != sched.ClientFailed {
		t.Fatalf("proposed %#v, want one AllocUpdate of a1 to failed", rec.cmds[0])
	}
	if evals, _ := st.Evals(structs.EvalPending); len(evals) != 0 {
		t.Fatalf("the endpoint created evaluations: %+v", evals)
	}
}

// An agent reports its allocation failed: the scheduling side evaluates
// the job (trigger alloc-failed), which commits a follow-up evaluation
// due after the reschedule delay instead of replacing it at once; the
// leader fires it when due and the replacement, linked to the failed
// allocation, is placed.
func TestFailedAllocationIsRescheduledAfterItsDelay(t *testing.T) {
	s := startHeartbeatServer(t, Config{})
	a := connectFakeAgent(t, s, "node-a", "127.0.0.1")
	job := dockerJob("web", nil)
	job.Groups[0].Reschedule = &spec.Reschedule{Delay: spec.Duration(5 * time.Second), DelayFunction: spec.DelayConstant, Unlimited: true}
	if _, err := s.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "placement", 10*time.Second, func() bool { return len(liveAllocs(t, s, "web")) == 1 })
	first := liveAllocs(t, s, "web")[0]
	a.report(first.ID, sched.ClientRunning)
	a.report(first.ID, sched.ClientFailed)
	var followUp *structs.Eval
	waitState(t, s, "a follow-up evaluation", 10*time.Second, func() bool {
		failed, err := s.store.Alloc(first.ID)
		if err != nil || failed.FollowupEvalID == "" {
			return false
		}
		followUp, err = s.store.Eval(failed.FollowupEvalID)
		return err == nil && followUp != nil
	})
	failed, _ := s.store.Alloc(first.ID)
	if want := failed.FinishedAt + int64(5*time.Second); followUp.WaitUntil != want || followUp.TriggeredBy != "alloc-failure" {
		t.Fatalf("follow-up %+v: want triggered by alloc-failure, due at %d (failure + 5s)", followUp, want)
	}
	if live := liveAllocs(t, s, "web"); len(live) != 0 {
		t.Fatalf("replaced before the delay: %d live allocations", len(live))
	}
	waitState(t, s, "a replacement after the delay", 20*time.Second, func() bool {
		live := liveAllocs(t, s, "web")
		return len(live) == 1 && live[0].PreviousAllocation == first.ID
	})
	if now := time.Now().UnixNano(); now < followUp.WaitUntil {
		t.Fatalf("replacement placed %s before its follow-up was due", time.Duration(followUp.WaitUntil-now))
	}
	failed, _ = s.store.Alloc(first.ID)
	repl := liveAllocs(t, s, "web")[0]
	if failed.NextAllocation != repl.ID || failed.DesiredStatus != sched.DesiredStop {
		t.Fatalf("failed allocation %+v: want NextAllocation %s and stopped", failed.Allocation, repl.ID)
	}
	evals, err := s.store.Evals(structs.EvalComplete)
	if err != nil {
		t.Fatal(err)
	}
	triggers := map[string]int{}
	for _, e := range evals {
		triggers[e.TriggeredBy]++
	}
	if triggers["alloc-failed"] != 1 || triggers["alloc-failure"] != 1 {
		t.Fatalf("completed evaluations by trigger: %v; want one alloc-failed, one alloc-failure", triggers)
	}
}
