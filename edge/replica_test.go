package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
)

func openTestState(t testing.TB, dir string) *localState {
	t.Helper()
	l, err := openLocalState(filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func catInstance(i int, node string) registry.Instance {
	return registry.Instance{ID: fmt.Sprintf("a%d/web/0", i), Service: "web", Tags: []string{"prod"}, Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1),
		Port: 8080, Node: node, NodeID: node + "-id", NodeAddress: "10.9.9.9", AllocID: fmt.Sprintf("a%d", i), Health: registry.HealthPassing}
}

// catalogFrames encodes a snapshot of n instances on node at index n, then
// one delta per index up to last, each adding an instance on node.
func catalogFrames(t testing.TB, n, last int, node string) *bytes.Buffer {
	t.Helper()
	var ins []registry.Instance
	for i := 1; i <= n; i++ {
		ins = append(ins, catInstance(i, node))
	}
	snap, err := registry.NewSnapshot(uint64(n), ins)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := snap.MarshalBinary()
	var buf bytes.Buffer
	wire.Write(&buf, wire.TypeCatalogSnapshot, wire.CatalogSnapshot{Index: uint64(n), Catalog: b})
	for i := n + 1; i <= last; i++ {
		writeDelta(t, &buf, registry.Delta{Index: uint64(i), Upserts: []registry.Instance{catInstance(i, node)}})
	}
	return &buf
}

func writeDelta(t testing.TB, w io.Writer, d registry.Delta) {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	wire.Write(w, wire.TypeCatalogDelta, wire.CatalogDelta{Index: d.Index, Delta: b})
}

func followAll(t *testing.T, r *replica, frames io.Reader) {
	t.Helper()
	if err := r.follow(frames); !errors.Is(err, io.EOF) {
		t.Fatalf("follow: %v, want the frames applied up to io.EOF", err)
	}
}

func passing(r *replica) int { return len(r.holder.Snapshot().Passing("web", "")) }

// The replica is kept in agent.db as it is received, deltas included (past
// the compaction threshold too): a restarted agent has it all, at once.
func TestReplicaKeepsTheCatalogOnDisk(t *testing.T) {
	dir := t.TempDir()
	l := openTestState(t, dir)
	r := newReplica(l, "edge-1", testLogger(t))
	if r.index() != 0 || r.holder.Snapshot().Len() != 0 {
		t.Fatalf("a new agent's replica is at %d with %d instances, want empty", r.index(), r.holder.Snapshot().Len())
	}
	last := 3 + maxStoredDeltas + 40
	followAll(t, r, catalogFrames(t, 3, last, "edge-1"))
	if r.index() != uint64(last) || passing(r) != last || r.snapshots.Load() != 1 || r.deltas.Load() != int64(last-3) {
		t.Fatalf("replica at %d, %d passing, %d snapshots, %d deltas; want %d, %d, 1, %d",
			r.index(), passing(r), r.snapshots.Load(), r.deltas.Load(), last, last, last-3)
	}
	want := r.holder.Snapshot()
	l.close()

	l = openTestState(t, dir)
	defer l.close()
	again := newReplica(l, "edge-1", testLogger(t))
	got := again.holder.Snapshot()
	if again.index() != uint64(last) || got.Len() != want.Len() || passing(again) != last {
		t.Fatalf("reloaded replica at %d with %d instances (%d passing), want %d with %d", again.index(), got.Len(), passing(again), last, want.Len())
	}
	for _, e := range want.Instances("web", "") {
		g, ok := got.Instance(e.ID)
		if !ok || g.Address != e.Address || g.Port != e.Port || g.Health != e.Health || g.NodeAddress != e.NodeAddress {
			t.Fatalf("reloaded %s = %+v, want %+v", e.ID, g, e.Instance)
		}
	}
}

// Frames the replica cannot apply are refused with an error, and change
// neither the replica served nor the one on disk.
func TestReplicaRefusesBadFrames(t *testing.T) {
	goodDelta := func(index uint64) []byte {
		b, _ := registry.Delta{Index: index, Upserts: []registry.Instance{catInstance(9, "edge-1")}}.MarshalBinary()
		return b
	}
	cases := map[string]func(w io.Writer){
		"delta bytes cut short": func(w io.Writer) {
			b := goodDelta(6)
			wire.Write(w, wire.TypeCatalogDelta, wire.CatalogDelta{Index: 6, Delta: b[:len(b)-3]})
		},
		"delta of another index than its frame": func(w io.Writer) {
			wire.Write(w, wire.TypeCatalogDelta, wire.CatalogDelta{Index: 7, Delta: goodDelta(6)})
		},
		"delta older than the replica": func(w io.Writer) {
			wire.Write(w, wire.TypeCatalogDelta, wire.CatalogDelta{Index: 4, Delta: goodDelta(4)})
		},
		"snapshot that is not one": func(w io.Writer) {
			wire.Write(w, wire.TypeCatalogSnapshot, wire.CatalogSnapshot{Index: 6, Catalog: goodDelta(6)})
		},
		"frame of another stream": func(w io.Writer) {
			wire.Write(w, wire.TypeHeartbeat, wire.Heartbeat{})
		},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTestState(t, dir)
			r := newReplica(l, "edge-1", testLogger(t))
			followAll(t, r, catalogFrames(t, 3, 5, "edge-1"))
			var buf bytes.Buffer
			bad(&buf)
			if err := r.follow(&buf); err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("follow = %v, want the frame refused", err)
			}
			if r.index() != 5 || passing(r) != 5 {
				t.Fatalf("after a refused frame the replica is at %d with %d passing, want 5 and 5", r.index(), passing(r))
			}
			l.close()
			l = openTestState(t, dir)
			defer l.close()
			if s, err := l.loadCatalog(); err != nil || s.Index() != 5 || s.Len() != 5 {
				t.Fatalf("stored replica after a refused frame: %v, %v", s, err)
			}
		})
	}
}

// While no catalog stream is up, the agent's own instances follow what its
// runners report; other nodes' keep the health last received; a stream
// that comes up again is authoritative.
func TestReplicaOverlaysOwnHealthWhileUnlinked(t *testing.T) {
	l := openTestState(t, t.TempDir())
	defer l.close()
	r := newReplica(l, "edge-1", testLogger(t))
	var buf bytes.Buffer
	snap, _ := registry.NewSnapshot(10, []registry.Instance{catInstance(1, "edge-1"), catInstance(2, "edge-1"), catInstance(3, "edge-2")})
	b, _ := snap.MarshalBinary()
	wire.Write(&buf, wire.TypeCatalogSnapshot, wire.CatalogSnapshot{Index: 10, Catalog: b})
	followAll(t, r, &buf)

	health := func(i int) registry.Health {
		e, ok := r.holder.Snapshot().Instance(catInstance(i, "").ID)
		if !ok {
			t.Fatalf("instance %d gone from the replica", i)
		}
		return e.Health
	}
	unhealthy := wire.AllocStatus{AllocID: "a1", ClientStatus: "running", Endpoints: []wire.Endpoint{{Service: "web", Port: 8080, Healthy: false}}}
	r.observe(unhealthy)
	if health(1) != registry.HealthPassing {
		t.Fatal("while the stream is up, the agent's own report overrode the servers' catalog")
	}
	r.unlink()
	if health(1) != registry.HealthCritical || health(2) != registry.HealthPassing || health(3) != registry.HealthPassing {
		t.Fatalf("unlinked, after a1 reported unhealthy: %v %v %v, want critical passing passing", health(1), health(2), health(3))
	}
	r.observe(wire.AllocStatus{AllocID: "a1", ClientStatus: "running", Endpoints: []wire.Endpoint{{Service: "WEB", Port: 8080, Healthy: true}}})
	if health(1) != registry.HealthPassing {
		t.Fatal("a1 reported healthy again while unlinked, its instance is not passing")
	}
	r.observe(wire.AllocStatus{AllocID: "a2", ClientStatus: "failed", Endpoints: []wire.Endpoint{{Service: "web", Port: 8080, Healthy: true}}})
	r.observe(wire.AllocStatus{AllocID: "a3", ClientStatus: "failed"}) // not this node's instance
	if health(2) != registry.HealthCritical || health(3) != registry.HealthPassing {
		t.Fatalf("a2 failed here, a3 is another node's: %v %v, want critical passing", health(2), health(3))
	}
	if r.index() != 10 {
		t.Fatalf("the overlay moved the replica's index to %d: the agent would resume from the wrong one", r.index())
	}
	// The stream is back: an empty delta at the replica's index, and the
	// servers' catalog is what is served again.
	buf.Reset()
	writeDelta(t, &buf, registry.Delta{Index: 10})
	followAll(t, r, &buf)
	if health(1) != registry.HealthPassing || health(2) != registry.HealthPassing {
		t.Fatalf("linked again: %v %v, want the servers' passing", health(1), health(2))
	}
	// The servers forget a2: the overlay no longer knows it either.
	r.retain([]wire.Alloc{{ID: "a1"}})
	r.unlink()
	if health(2) != registry.HealthPassing || health(1) != registry.HealthPassing {
		t.Fatalf("after retain: %v %v", health(1), health(2))
	}
}
