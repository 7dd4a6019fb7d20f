package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

func wasmJob(id, module string) *spec.Job {
	return &spec.Job{ID: id, Type: "service", Groups: []*spec.Group{{Name: "g", Count: 2, Tasks: []*spec.Task{{
		Name: "t", Driver: "wasm", Config: spec.TaskConfig{Module: module, Mode: "command"},
		Resources: spec.Resources{CPU: 100, MemoryMB: 64},
	}}}}}
}

// A module version a job uses cannot be deleted (the refusal names the
// job version); once it is deleted, every blob no version names leaves
// the server's disk, except one a push in progress holds.
func TestModuleDeleteAndBlobCollection(t *testing.T) {
	s := startTestServer(t)
	f := &aclFixture{s: s, url: httptest.NewServer(s.Handler()).URL}
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	other := append(append([]byte{}, tiny...), 0, 1, 0) // an empty custom section: other bytes, still valid
	ctx := context.Background()
	used, _, err := s.PushModule(ctx, "tiny", "1.0.0", tiny)
	if err != nil {
		t.Fatal(err)
	}
	unused, _, err := s.PushModule(ctx, "tiny", "2.0.0", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterJob(wasmJob("web", "tiny@1.0.0")); err != nil {
		t.Fatal(err)
	}
	blobPath := func(digest string) string {
		return filepath.Join(s.cfg.DataDir, "modules", "sha256", strings.TrimPrefix(digest, "sha256:"))
	}
	exists := func(digest string) bool { _, err := os.Stat(blobPath(digest)); return err == nil }

	code, body := f.call(t, "", "DELETE", "/v1/module/tiny/1.0.0", nil, nil)
	if code != 409 || !strings.Contains(body, "web@0 (current)") || !strings.Contains(body, "stop -purge") {
		t.Fatalf("delete of a module in use: %d %s", code, body)
	}
	if code, body := f.call(t, "", "DELETE", "/v1/module/tiny/9.9.9", nil, nil); code != 404 {
		t.Fatalf("delete of an unknown version: %d %s", code, body)
	}

	// A blob no version names, held by a push in progress, stays; the
	// deleted version's blob goes.
	orphan := append(append([]byte{}, tiny...), 0, 2, 1, 'x')
	release := s.blobs.hold(Digest(orphan))
	if _, err := s.blobs.Put(orphan); err != nil {
		t.Fatal(err)
	}
	if code, body := f.call(t, "", "DELETE", "/v1/module/tiny/2.0.0", nil, nil); code != 200 {
		t.Fatalf("delete of an unused version: %d %s", code, body)
	}
	testutil.Await(t, 10*time.Second, "the deleted version's blob collected", s.blobGC.swept, func() error {
		if exists(unused.Digest) {
			return fmt.Errorf("blob %s still on disk", unused.Digest)
		}
		return nil
	})
	if !exists(used.Digest) || !exists(Digest(orphan)) {
		t.Fatalf("collection deleted a blob a version names (%t) or a push holds (%t)", !exists(used.Digest), !exists(Digest(orphan)))
	}
	release()

	// Purged, the job no longer holds its module: deleting it collects
	// its blob and the orphan.
	var purged structs.JobDeregisterResponse
	if code, body := f.call(t, "", "DELETE", "/v1/job/web?purge=true", nil, &purged); code != 200 || purged.Purged == nil {
		t.Fatalf("purge: %d %s", code, body)
	}
	if rec, _ := s.store.Job("web"); rec != nil {
		t.Fatal("the purged job is still listed")
	}
	if code, body := f.call(t, "", "DELETE", "/v1/module/tiny/1.0.0", nil, nil); code != 200 {
		t.Fatalf("delete after the purge: %d %s", code, body)
	}
	testutil.Await(t, 10*time.Second, "every unnamed blob collected", s.blobGC.swept, func() error {
		if exists(used.Digest) || exists(Digest(orphan)) {
			return fmt.Errorf("blobs left: used %t, orphan %t", exists(used.Digest), exists(Digest(orphan)))
		}
		return nil
	})
	// A job naming a deleted module is refused.
	if _, err := s.RegisterJob(wasmJob("again", "tiny@1.0.0")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("registration with a deleted module: %v", err)
	}
}

// Scaling is a new version with only the count changed: no deployment,
// the group named or the only one, a count the job has already changes
// nothing; Nomad's fields Strata does not honour are refused.
func TestJobScale(t *testing.T) {
	s := startTestServer(t)
	f := &aclFixture{s: s, url: httptest.NewServer(s.Handler()).URL}
	agents := healthyAgents(t, s, 2)
	setHealth(agents, func(wire.Alloc) string { return wire.Healthy })
	register(t, s, rollingDockerJob("app:1", 2, 1, 0))
	waitDeployment(t, s, 0, 2, 1, structs.DeploymentSuccessful)
	three := 3
	var resp structs.JobRegisterResponse
	if code, body := f.call(t, "", "POST", "/v1/job/web/scale", structs.JobScaleRequest{Count: &three}, &resp); code != 200 {
		t.Fatalf("scale: %d %s", code, body)
	}
	if !resp.Changed || resp.Version != 1 || resp.DeploymentID != "" || resp.EvalID == "" {
		t.Fatalf("scale answered %+v: want version 1, an evaluation and no deployment", resp)
	}
	rec, _ := s.store.Job("web")
	if rec.Job.Groups[0].Count != 3 {
		t.Fatalf("count after scaling: %d", rec.Job.Groups[0].Count)
	}
	waitState(t, s, "3 instances at version 1, the first two moved in place", 30*time.Second, func() bool {
		live := liveAllocs(t, s, "web")
		for _, a := range live {
			if a.JobVersion != 1 {
				return false
			}
		}
		return len(live) == 3
	})
	if code, _ := f.call(t, "", "POST", "/v1/job/web/scale", structs.JobScaleRequest{Count: &three}, &resp); code != 200 || resp.Changed {
		t.Fatalf("scaling to the same count changed the job: %+v", resp)
	}
	for _, tc := range []struct {
		body any
		code int
		msg  string
	}{
		{map[string]any{"Count": 2, "Target": map[string]string{"Group": "nope"}}, 404, `no group "nope"`},
		{map[string]any{"Count": -1}, 400, "negative"},
		{map[string]any{}, 400, "no Count"},
		{map[string]any{"Count": 2, "Message": "why"}, 400, `unknown field "Message"`},
		{map[string]any{"Count": 2, "Target": map[string]string{"Job": "web"}}, 400, "Target.Group"},
	} {
		if code, body := f.call(t, "", "POST", "/v1/job/web/scale", tc.body, nil); code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("scale %v: %d %s, want %d %q", tc.body, code, body, tc.code, tc.msg)
		}
	}
	if code, body := f.call(t, "", "POST", "/v1/job/nope/scale", structs.JobScaleRequest{Count: &three}, nil); code != 404 {
		t.Errorf("scaling a job that does not exist: %d %s", code, body)
	}
}

// Signal, restart and stats on a server the agent is not connected to go
// through the one it is (server RPC agent-call); the agent's refusal
// comes back as a conflict, and an agent that no server holds is
// unavailable.
func TestAllocOpsForwardedToTheAgentsServer(t *testing.T) {
	servers := startInProcessCluster(t, 2)
	held, asked := servers[0], servers[1]
	events := clusterEvents(t, held, asked)
	waitFor(t, events, "the cluster CA on both servers", 30*time.Second, func() bool { return held.CAPin() != "" && asked.CAPin() != "" })
	conn := dialAgent(t, held)
	ctrl, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wire.Write(ctrl, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n1", Name: "edge-1", Address: "127.0.0.1"})
	if typ, _, err := wire.Read(ctrl); err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register: %v %v", typ, err)
	}
	// The fake agent answers each request on its own stream.
	asks := make(chan string, 8)
	go func() {
		for {
			st, err := conn.AcceptStream(context.Background())
			if err != nil {
				return
			}
			typ, payload, err := wire.Read(st)
			if err != nil {
				return
			}
			switch typ {
			case wire.TypeSignalTask:
				var req wire.SignalTask
				wire.Decode(typ, payload, &req)
				asks <- "signal " + req.Task + " " + req.Signal
				ans := wire.TaskSignalled{}
				if req.Signal == "SIGHUP" {
					ans.Error = "SIGHUP has no meaning here"
				}
				wire.Write(st, wire.TypeTaskSignalled, ans)
			case wire.TypeRestartTask:
				var req wire.RestartTask
				wire.Decode(typ, payload, &req)
				asks <- "restart " + req.Task
				wire.Write(st, wire.TypeTaskRestarted, wire.TaskRestarted{Tasks: []string{"a", "b"}})
			case wire.TypeStatsRequest:
				var req wire.StatsRequest
				wire.Decode(typ, payload, &req)
				asks <- "stats " + req.Task
				wire.Write(st, wire.TypeTaskStats, wire.TaskStats{Measured: []string{wire.MeasuredInstances}, Instances: 1})
			}
			st.Close()
		}
	}()
	job := &spec.Job{ID: "web", Type: "service", Groups: []*spec.Group{{Name: "g", Count: 0, Tasks: []*spec.Task{{Name: "a", Driver: "wasm"}, {Name: "b", Driver: "wasm"}}}}}
	res, _, err := held.node.apply(&state.JobRegister{Job: job, EvalID: newEvalID()})
	if err != nil {
		t.Fatal(err)
	}
	alloc := &sched.Allocation{ID: "a1b2c3", JobID: "web", JobVersion: res.(*state.JobRegisterResult).Version, Group: "g",
		NodeID: "n1", NodeName: "edge-1", DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientRunning}
	if _, _, err := held.node.apply(&state.PlanApply{Place: []*sched.Allocation{alloc}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, "the allocation replicated", 30*time.Second, func() bool {
		a, _ := asked.store.Alloc("a1b2c3")
		return a != nil
	})
	ctx := context.Background()
	ops := asked.ops

	tasks, err := ops.signal(ctx, "a1b2c3", "", "SIGUSR1")
	if err != nil || strings.Join(tasks, ",") != "a,b" {
		t.Fatalf("signal = %v, %v; want both tasks", tasks, err)
	}
	if got := []string{<-asks, <-asks}; got[0] != "signal a SIGUSR1" || got[1] != "signal b SIGUSR1" {
		t.Fatalf("the agent was asked %v", got)
	}
	if _, err := ops.signal(ctx, "a1b2c3", "a", "SIGHUP"); !errors.Is(err, ErrAllocNotRunning) || !strings.Contains(err.Error(), "no meaning here") {
		t.Fatalf("a signal the agent refuses: %v", err)
	}
	<-asks
	if tasks, err := ops.restart(ctx, "a1b2c3", ""); err != nil || strings.Join(tasks, ",") != "a,b" || <-asks != "restart " {
		t.Fatalf("restart = %v, %v", tasks, err)
	}
	st, err := ops.stats(ctx, "a1b2c3", "b")
	if err != nil || len(st.Tasks) != 1 || st.Tasks[0].Task != "b" || st.Tasks[0].Instances != 1 || <-asks != "stats b" {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	if _, err := ops.restart(ctx, "a1b2c3", "c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restart of a task the group lacks: %v", err)
	}

	// Stopped, the allocation is replaced; a second stop is a conflict.
	stop, err := ops.stop("a1b2c3")
	if err != nil || stop.EvalID == "" {
		t.Fatalf("stop = %+v, %v", stop, err)
	}
	waitApplied(asked.store, stop.Index, 10*time.Second)
	if a, _ := asked.store.Alloc("a1b2c3"); a.DesiredStatus != sched.DesiredStop {
		t.Fatalf("after stop: %+v", a.Allocation)
	}
	if e, _ := asked.store.Eval(stop.EvalID); e == nil || e.TriggeredBy != "alloc-stop" {
		t.Fatalf("the replacing evaluation: %+v", e)
	}
	if _, err := ops.stop("a1b2c3"); !errors.Is(err, ErrAllocNotRunning) || !strings.Contains(err.Error(), "already stopping") {
		t.Fatalf("a second stop: %v", err)
	}
}

// Members lists every server of the Raft configuration, alive when it
// answers, failed (with why) when it does not.
func TestServerMembers(t *testing.T) {
	servers := startInProcessCluster(t, 2)
	late, err := New(Config{DataDir: t.TempDir(), Join: []string{servers[1].RaftAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			late.Shutdown(ctx)
		}
	})
	events := clusterEvents(t, append(servers, late)...)
	waitFor(t, events, "the third server added", 30*time.Second, func() bool {
		peers, err := servers[0].RaftPeers()
		return err == nil && len(peers) == 3 && late.Leader() != "" && late.store.Index() > 0
	})
	members := func() map[string]structs.ServerMember {
		t.Helper()
		m, err := servers[0].cluster.members(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.ServerID != servers[0].cfg.NodeID {
			t.Fatalf("answered by %s, not %s", m.ServerID, servers[0].cfg.NodeID)
		}
		out := map[string]structs.ServerMember{}
		for _, s := range m.Members {
			out[s.RaftAddr] = s
		}
		return out
	}
	m := members()
	leaders := 0
	for _, s := range append(servers, late) {
		got, ok := m[s.RaftAddr()]
		if !ok || got.Status != structs.MemberAlive || !got.Voter || got.LastIndex == 0 || got.ID != s.cfg.NodeID {
			t.Fatalf("member %s: %+v (found %t)", s.RaftAddr(), got, ok)
		}
		if got.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders among %+v", leaders, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := late.RaftAddr()
	late.Shutdown(ctx)
	stopped = true
	if got := members()[addr]; got.Status != structs.MemberFailed || got.Error == "" {
		t.Fatalf("a stopped server: %+v", got)
	}
}

// A module's blob is on the server it was pushed to and on any that
// copied it for an agent: deleting the version deletes both copies, each
// server collecting its own disk when it applies the delete.
func TestBlobsCollectedOnEveryServer(t *testing.T) {
	servers := startInProcessCluster(t, 2)
	pushed, copied := servers[0], servers[1]
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, _, err := pushed.PushModule(ctx, "tiny", "1.0.0", tiny)
	if err != nil {
		t.Fatal(err)
	}
	copier := &blobCopier{blobs: copied.blobs, rpc: copied.node.rpc, others: copied.node.others}
	if err := copier.fetch(ctx, m.Digest); err != nil {
		t.Fatal(err)
	}
	if !pushed.blobs.Has(m.Digest) || !copied.blobs.Has(m.Digest) {
		t.Fatal("the blob is not on both servers")
	}
	if _, err := copied.jobs.deleteModule("tiny", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		testutil.Await(t, 10*time.Second, "the blob collected on "+s.RaftAddr(), s.blobGC.swept, func() error {
			if s.blobs.Has(m.Digest) {
				return fmt.Errorf("%s still on disk", m.Digest)
			}
			return nil
		})
	}
}
