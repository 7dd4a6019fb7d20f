package coordinator

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

func openTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func mustCmd(t *testing.T, ct cmdType, v any) []byte {
	t.Helper()
	b, err := encodeCmd(ct, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testJob(module string) *spec.Job {
	return &spec.Job{ID: "web", Type: "service", Priority: 50, Groups: []*spec.Group{{
		Name: "g", Count: 1, Tasks: []*spec.Task{{
			Name: "t", Driver: "wasm",
			Config:    spec.TaskConfig{Module: module, Mode: "http"},
			Resources: spec.Resources{CPU: 100, MemoryMB: 64},
		}},
	}}}
}

func logs(data ...[]byte) []*raft.Log {
	var out []*raft.Log
	for i, d := range data {
		out = append(out, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: d})
	}
	return out
}

// A restart replays Raft entries the FSM already applied; the applied
// index, written in the same transaction, makes that a no-op.
func TestApplyIsIdempotentAcrossReplay(t *testing.T) {
	s, _ := openTestStore(t)
	f := &fsm{store: s}
	entries := logs(
		mustCmd(t, cmdJobRegister, &jobRegisterCmd{Job: testJob("a@1.0.0"), EvalID: "e1"}),
		mustCmd(t, cmdJobRegister, &jobRegisterCmd{Job: testJob("a@2.0.0"), EvalID: "e2"}),
		mustCmd(t, cmdModuleRegister, &moduleRegisterCmd{Module: Module{Name: "a", Version: "1.0.0", Digest: "sha256:aa"}}),
	)
	for _, r := range f.ApplyBatch(entries) {
		if err, ok := r.(error); ok {
			t.Fatalf("apply: %v", err)
		}
	}
	if got := s.Index(); got != 3 {
		t.Fatalf("applied index = %d, want 3", got)
	}
	// Replay everything, as raft does after a restart without a snapshot.
	f.ApplyBatch(entries)
	rec, err := s.Job("web")
	if err != nil || rec == nil {
		t.Fatalf("job: %v %v", rec, err)
	}
	if rec.Version != 1 {
		t.Fatalf("job version after replay = %d, want 1 (two registrations, applied once each)", rec.Version)
	}
	vs, _ := s.JobVersions("web")
	if len(vs) != 2 || vs[0].Groups[0].Tasks[0].Config.Module != "a@1.0.0" || vs[1].Groups[0].Tasks[0].Config.Module != "a@2.0.0" {
		t.Fatalf("job versions = %+v", vs)
	}
}

func TestRegisterSameJobTwiceKeepsVersion(t *testing.T) {
	s, _ := openTestStore(t)
	f := &fsm{store: s}
	r := f.ApplyBatch(logs(
		mustCmd(t, cmdJobRegister, &jobRegisterCmd{Job: testJob("a@1.0.0"), EvalID: "e1"}),
		mustCmd(t, cmdJobRegister, &jobRegisterCmd{Job: testJob("a@1.0.0"), EvalID: "e2"}),
	))
	second := r[1].(*jobRegisterResult)
	if second.Changed || second.Version != 0 || second.EvalID != "" {
		t.Fatalf("identical re-register = %+v, want unchanged version 0 and no eval", second)
	}
}

func TestModuleVersionsAreImmutable(t *testing.T) {
	s, _ := openTestStore(t)
	f := &fsm{store: s}
	r := f.ApplyBatch(logs(
		mustCmd(t, cmdModuleRegister, &moduleRegisterCmd{Module: Module{Name: "a", Version: "1.0.0", Digest: "sha256:aa"}}),
		mustCmd(t, cmdModuleRegister, &moduleRegisterCmd{Module: Module{Name: "a", Version: "1.0.0", Digest: "sha256:bb"}}),
		mustCmd(t, cmdModuleRegister, &moduleRegisterCmd{Module: Module{Name: "a", Version: "1.0.0", Digest: "sha256:aa"}}),
	))
	if r[0] != nil || r[2] != nil {
		t.Fatalf("first push and identical re-push must succeed: %v %v", r[0], r[2])
	}
	err, _ := r[1].(error)
	if !errors.Is(err, ErrModuleExists) || !strings.Contains(err.Error(), "sha256:aa") {
		t.Fatalf("re-push with other digest = %v, want ErrModuleExists naming the stored digest", err)
	}
	m, _ := s.Module("a", "1.0.0")
	if m.Digest != "sha256:aa" {
		t.Fatalf("stored digest changed to %s", m.Digest)
	}
}

func TestRefusedCommandDoesNotFailBatch(t *testing.T) {
	s, _ := openTestStore(t)
	f := &fsm{store: s}
	r := f.ApplyBatch(logs(
		[]byte{99, '{', '}'}, // unknown command type
		[]byte{byte(cmdJobRegister), 'x'},
		mustCmd(t, cmdJobRegister, &jobRegisterCmd{Job: testJob("a@1.0.0")}),
	))
	for i, want := range []string{"unknown command type 99", "malformed command 1"} {
		if err, ok := r[i].(error); !ok || !strings.Contains(err.Error(), want) {
			t.Errorf("result %d = %v, want error containing %q", i, r[i], want)
		}
	}
	if rec, _ := s.Job("web"); rec == nil {
		t.Fatal("valid command after refused ones was not applied")
	}
	if s.Index() != 3 {
		t.Fatalf("applied index = %d, want 3", s.Index())
	}
}

func TestStopRemovesEndpoints(t *testing.T) {
	s, _ := openTestStore(t)
	f := &fsm{store: s}
	alloc := &sched.Allocation{ID: "a1", JobID: "web", Group: "g", NodeID: "n1", DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientPending}
	f.ApplyBatch(logs(
		mustCmd(t, cmdPlanApply, &planApplyCmd{Place: []*sched.Allocation{alloc}}),
		mustCmd(t, cmdAllocUpdate, &allocUpdateCmd{NodeID: "n1", Updates: []allocUpdate{{
			AllocID: "a1", ClientStatus: sched.ClientRunning,
			Endpoints: []registry.Endpoint{{Service: "svc", AllocID: "a1", Address: "127.0.0.1", Port: 20001, Healthy: true}},
		}}}),
		// Another node may not report on this node's allocation.
		mustCmd(t, cmdAllocUpdate, &allocUpdateCmd{NodeID: "intruder", Updates: []allocUpdate{{AllocID: "a1", ClientStatus: sched.ClientFailed}}}),
	))
	if eps := s.Endpoints("svc"); len(eps) != 1 || eps[0].Port != 20001 {
		t.Fatalf("endpoints = %+v, want the reported one", eps)
	}
	if a, _ := s.Alloc("a1"); a.ClientStatus != sched.ClientRunning {
		t.Fatalf("an update from another node changed the alloc to %s", a.ClientStatus)
	}
	applyMore(t, f, 4, mustCmd(t, cmdPlanApply, &planApplyCmd{Stop: []allocStop{{ID: "a1", Desc: "job stopped"}}}))
	if eps := s.Endpoints("svc"); len(eps) != 0 {
		t.Fatalf("a stopped allocation is still discoverable: %+v", eps)
	}
	// A late report from the agent (sent before it saw the stop) must not
	// bring the endpoint back.
	applyMore(t, f, 5, mustCmd(t, cmdAllocUpdate, &allocUpdateCmd{NodeID: "n1", Updates: []allocUpdate{{
		AllocID: "a1", ClientStatus: sched.ClientRunning,
		Endpoints: []registry.Endpoint{{Service: "svc", AllocID: "a1", Address: "127.0.0.1", Port: 20001, Healthy: true}},
	}}}))
	if eps := s.Endpoints("svc"); len(eps) != 0 {
		t.Fatalf("late report re-registered a stopped allocation: %+v", eps)
	}
}

func applyMore(t *testing.T, f *fsm, index uint64, data []byte) {
	t.Helper()
	r := f.ApplyBatch([]*raft.Log{{Index: index, Type: raft.LogCommand, Data: data}})
	if err, ok := r[0].(error); ok {
		t.Fatal(err)
	}
}

func TestCorruptStateFileIsNamedNotEmptied(t *testing.T) {
	s, path := openTestStore(t)
	f := &fsm{store: s}
	f.ApplyBatch(logs(mustCmd(t, cmdJobRegister, &jobRegisterCmd{Job: testJob("a@1.0.0")})))
	s.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string][]byte{
		"garbage":   bytes.Repeat([]byte("not a database "), 2000),
		"truncated": good[:len(good)/3],
		"empty":     {},
	}
	// A valid bbolt file that is not Strata's.
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := OpenStore(p)
			if err == nil {
				st.Close()
				t.Fatal("opened a corrupt state file without error")
			}
			if !errors.Is(err, ErrCorruptState) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q does not name the file or is not ErrCorruptState", err)
			}
			after, _ := os.ReadFile(p)
			if !bytes.Equal(after, content) {
				t.Fatal("the corrupt file was modified")
			}
		})
	}
}

// A state file of another format version is refused by name, untouched.
func TestOlderStateFormatIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return m.Put(keyFormat, []byte("strata-state-v1"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	st, err := OpenStore(path)
	if err == nil {
		st.Close()
		t.Fatal("opened a strata-state-v1 file")
	}
	if !errors.Is(err, ErrCorruptState) || !strings.Contains(err.Error(), `has format "strata-state-v1", want "strata-state-v2"`) ||
		!strings.Contains(err.Error(), "no migration") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file, both formats and the way out", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the refused file was modified")
	}
}

func TestSnapshotRestore(t *testing.T) {
	src, _ := openTestStore(t)
	f := &fsm{store: src}
	f.ApplyBatch(logs(
		mustCmd(t, cmdJobRegister, &jobRegisterCmd{Job: testJob("a@1.0.0")}),
		mustCmd(t, cmdModuleRegister, &moduleRegisterCmd{Module: Module{Name: "a", Version: "1.0.0", Digest: "sha256:aa"}}),
	))
	var snap bytes.Buffer
	if _, err := src.WriteTo(&snap); err != nil {
		t.Fatal(err)
	}

	dst, _ := openTestStore(t)
	if err := dst.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if rec, _ := dst.Job("web"); rec == nil {
		t.Fatal("restored state lacks the job")
	}
	if m, _ := dst.Module("a", "1.0.0"); m == nil || m.Digest != "sha256:aa" {
		t.Fatalf("restored module = %+v", m)
	}
	if dst.Index() != 2 {
		t.Fatalf("restored applied index = %d, want 2", dst.Index())
	}

	// A bad snapshot is refused and the current state stays.
	err := dst.Restore(bytes.NewReader(snap.Bytes()[:snap.Len()/2]))
	if err == nil || !strings.Contains(err.Error(), "snapshot rejected") {
		t.Fatalf("truncated snapshot: err = %v", err)
	}
	if rec, _ := dst.Job("web"); rec == nil {
		t.Fatal("a rejected snapshot destroyed the state")
	}
}

// A corrupt snapshot refuses the server's start, naming the file.
func TestCorruptSnapshotRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{DataDir: dir, Bootstrap: true, DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !s.IsLeader(); {
		if time.Now().After(deadline) {
			t.Fatal("no leadership")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := s.apply(cmdJobRegister, &jobRegisterCmd{Job: testJob("a@1.0.0")}); err != nil {
		t.Fatal(err)
	}
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	states, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	if len(states) != 1 {
		t.Fatalf("snapshots on disk: %v", states)
	}
	b, _ := os.ReadFile(states[0])
	b[len(b)/2] ^= 0xff
	os.WriteFile(states[0], b, 0o600)

	_, err = New(Config{DataDir: dir, Bootstrap: true, DevMode: true})
	if !errors.Is(err, ErrCorruptState) || !strings.Contains(err.Error(), filepath.Dir(states[0])) {
		t.Fatalf("start with a corrupt snapshot: %v; want ErrCorruptState naming %s", err, filepath.Dir(states[0]))
	}
}

// A placement never overwrites an existing allocation ID.
func TestPlacementNeverOverwritesAnAllocation(t *testing.T) {
	s, _ := openTestStore(t)
	f := &fsm{store: s}
	a := &sched.Allocation{ID: "same", JobID: "j", Group: "g", Index: 5, NodeID: "n1", DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientRunning,
		Resources: sched.Resources{CPU: 100}}
	b := *a
	b.Index = 7
	f.ApplyBatch(logs(
		mustCmd(t, cmdPlanApply, &planApplyCmd{Place: []*sched.Allocation{a}}),
		mustCmd(t, cmdPlanApply, &planApplyCmd{Place: []*sched.Allocation{&b}}),
	))
	got, _ := s.Alloc("same")
	if got.Index != 5 {
		t.Fatalf("allocation overwritten: index %d, want 5", got.Index)
	}
	if s.LiveAllocs() != 1 {
		t.Fatalf("live allocations = %d, want 1", s.LiveAllocs())
	}
}

// Watchers are woken only once the in-memory views show the commit: an
// agent's push loop, woken by a plan, must see its node's allocation
// counter moved, or it waits for a commit that already happened. The
// test holds the watch lock, so the apply stops at its wake-up: by then
// the counter must have moved.
func TestWatchersWakeAfterTheUsageIndex(t *testing.T) {
	st, _ := openTestStore(t)
	f := &fsm{store: st}
	f.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: mustCmd(t, cmdNodeRegister,
		&nodeRegisterCmd{Node: sched.Node{ID: "n", Name: "n", Status: sched.NodeReady, Eligible: true,
			Capacity: sched.Resources{CPU: 1000, MemoryMB: 1000}}})}})
	before := st.NodeAllocChanges("n")
	st.watchM.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.ApplyBatch([]*raft.Log{{Index: 2, Type: raft.LogCommand, Data: mustCmd(t, cmdPlanApply, &planApplyCmd{
			Place: []*sched.Allocation{{ID: "a", JobID: "j", Group: "g", NodeID: "n", DesiredStatus: sched.DesiredRun,
				Resources: sched.Resources{CPU: 1, MemoryMB: 1}}}})}})
	}()
	moved := false
	for deadline := time.Now().Add(5 * time.Second); !moved && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		moved = st.NodeAllocChanges("n") != before
	}
	st.watchM.Unlock()
	<-done
	if !moved {
		t.Fatal("the allocation counter moved only after watchers were woken")
	}
}
