package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

func TestCorruptStateFileIsNamedNotEmptied(t *testing.T) {
	h := newHarness(t)
	h.must(&JobRegister{Job: testJob("web", "a@1.0.0")})
	h.st.Close()
	good, err := os.ReadFile(h.st.path)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"garbage":   bytes.Repeat([]byte("not a database "), 2000),
		"truncated": good[:len(good)/3],
		"empty":     {},
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Open(p)
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

// A bbolt file that is not Strata's, or a state file of another format
// version, is refused by name, untouched.
func TestForeignOrOlderStateFileIsRefused(t *testing.T) {
	cases := []struct {
		name   string
		format []byte // nil: no meta bucket at all
		want   []string
	}{
		{"older format", []byte("strata-state-v1"), []string{`has format "strata-state-v1", want "strata-state-v2"`, "no migration"}},
		{"another program's file", nil, []string{`has no "meta" bucket: not a Strata state file`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				if c.format == nil {
					_, err := tx.CreateBucket([]byte("other"))
					return err
				}
				m, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return m.Put(keyFormat, c.format)
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			st, err := Open(path)
			if err == nil {
				st.Close()
				t.Fatal("opened it")
			}
			if !errors.Is(err, ErrCorruptState) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file or is not ErrCorruptState", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("the refused file was modified")
			}
		})
	}
}

// A state file keeps opening across restarts with everything in it: the
// applied index, the records and the usage index rebuilt from them.
func TestReopenKeepsTheState(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 1000, 1000)},
		&JobRegister{Job: testJob("web", "a@1.0.0"), EvalID: "e1"},
		&PlanApply{Place: []*sched.Allocation{testAlloc("a1", "web", "n1")}})
	before := dumpStore(t, h.st)
	h.st.Close()
	st, err := Open(h.st.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if after := dumpStore(t, st); !equalDumps(before, after) {
		t.Fatalf("after reopening:\n%+v\nbefore:\n%+v", after, before)
	}
}

func TestSnapshotRestore(t *testing.T) {
	src := newHarness(t)
	src.must(&JobRegister{Job: testJob("web", "a@1.0.0")},
		&ModuleRegister{Module: structs.Module{Name: "a", Version: "1.0.0", Digest: "sha256:aa"}})
	snap, err := src.st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot is the state as of when it was taken, not when written.
	src.must(&JobRegister{Job: testJob("later", "a@1.0.0")})
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	snap.Release() // twice is harmless

	dst, _ := openTestStore(t)
	watch := dst.Watch()
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watch:
	default:
		t.Fatal("a restore did not wake watchers")
	}
	if rec, _ := dst.Job("web"); rec == nil {
		t.Fatal("restored state lacks the job")
	}
	if rec, _ := dst.Job("later"); rec != nil {
		t.Fatal("the snapshot holds a job registered after it was taken")
	}
	if m, _ := dst.Module("a", "1.0.0"); m == nil || m.Digest != "sha256:aa" {
		t.Fatalf("restored module = %+v", m)
	}
	if dst.Index() != 2 {
		t.Fatalf("restored applied index = %d, want 2", dst.Index())
	}

	// A bad snapshot is refused and the current state stays.
	err = dst.Restore(bytes.NewReader(buf.Bytes()[:buf.Len()/2]))
	if err == nil || !strings.Contains(err.Error(), "snapshot rejected") {
		t.Fatalf("truncated snapshot: err = %v", err)
	}
	if rec, _ := dst.Job("web"); rec == nil {
		t.Fatal("a rejected snapshot destroyed the state")
	}
}

// Watchers are woken only once the in-memory views show the commit: an
// agent's push loop, woken by a plan, must see its node's allocation
// counter moved, or it waits for a commit that already happened.
func TestWatchersWakeAfterTheUsageIndex(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n", 1000, 1000)})
	before := h.st.NodeAllocChanges("n")
	var atWake []uint64
	h.st.notifyHook = func() { atWake = append(atWake, h.st.NodeAllocChanges("n")) }
	watch := h.st.Watch()
	fx := h.must(&PlanApply{Place: []*sched.Allocation{testAlloc("a", "j", "n")}})
	select {
	case <-watch:
	default:
		t.Fatal("the commit did not wake watchers")
	}
	if len(atWake) != 1 || atWake[0] == before {
		t.Fatalf("allocation counter when watchers were woken: %v (before the plan: %d)", atWake, before)
	}
	if len(fx.Nodes) != 1 || fx.Nodes[0] != "n" {
		t.Fatalf("effects name nodes %v, want [n]", fx.Nodes)
	}
}
