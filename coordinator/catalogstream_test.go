package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
)

// pipeStream is one end of a synchronous pipe standing in for a QUIC
// stream: a write blocks until the other end reads it, so a test decides
// when the server's writes go through.
type pipeStream struct{ net.Conn }

func (p pipeStream) CancelRead(quic.StreamErrorCode)  { p.Close() }
func (p pipeStream) CancelWrite(quic.StreamErrorCode) { p.Close() }

// watchCatalog serves a catalog stream for a replica at index from h, and
// returns the agent's end and a channel that yields serveCatalog's result.
func watchCatalog(t *testing.T, h *registry.Holder, index uint64) (net.Conn, <-chan error) {
	t.Helper()
	server, agent := net.Pipe()
	a := &agentEndpoint{agentDeps: agentDeps{catalog: h, log: slog.New(slog.DiscardHandler)}}
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		done <- a.serveCatalog(context.Background(), pipeStream{server}, wire.CatalogWatch{Index: index}, a.log)
	}()
	t.Cleanup(func() {
		agent.Close()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("serveCatalog did not return after the agent closed the stream")
		}
	})
	return agent, done
}

func instance(i int) registry.Instance {
	return registry.Instance{ID: fmt.Sprintf("a%d/web/0", i), Service: "web", Address: fmt.Sprintf("10.0.0.%d", i+1), Port: 8080,
		Node: "n1", NodeID: "n1", AllocID: fmt.Sprintf("a%d", i), Health: registry.HealthPassing}
}

// catalogHolder returns a holder that reached index n by one upsert per index.
func catalogHolder(t *testing.T, n int) *registry.Holder {
	t.Helper()
	h := registry.NewHolder(nil)
	for i := 1; i <= n; i++ {
		if _, err := h.Apply(registry.Delta{Index: uint64(i), Upserts: []registry.Instance{instance(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// replica is what the test's agent holds, fed by the frames it reads.
type replica struct {
	snap      *registry.Snapshot
	snapshots int
	deltas    int
}

func (r *replica) read(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, payload, err := wire.Read(c)
	if err != nil {
		t.Fatalf("reading the catalog stream: %v", err)
	}
	switch typ {
	case wire.TypeCatalogSnapshot:
		var m wire.CatalogSnapshot
		if err := wire.Decode(typ, payload, &m); err != nil {
			t.Fatal(err)
		}
		s, err := registry.DecodeSnapshot(m.Catalog)
		if err != nil || s.Index() != m.Index {
			t.Fatalf("snapshot at %d: index %d, %v", m.Index, s.Index(), err)
		}
		r.snap, r.snapshots = s, r.snapshots+1
	case wire.TypeCatalogDelta:
		var m wire.CatalogDelta
		if err := wire.Decode(typ, payload, &m); err != nil {
			t.Fatal(err)
		}
		d, err := registry.DecodeDelta(m.Delta)
		if err != nil || d.Index != m.Index {
			t.Fatalf("delta to %d: index %d, %v", m.Index, d.Index, err)
		}
		r.deltas++
		if d.Index == r.snap.Index() {
			return // nothing new
		}
		if r.snap, err = r.snap.Apply(d); err != nil {
			t.Fatalf("applying the delta to %d: %v", d.Index, err)
		}
	default:
		t.Fatalf("unexpected %s frame on the catalog stream", typ)
	}
}

func (r *replica) same(t *testing.T, want *registry.Snapshot) {
	t.Helper()
	if r.snap.Index() != want.Index() || r.snap.Len() != want.Len() {
		t.Fatalf("replica at %d with %d instances, catalog at %d with %d", r.snap.Index(), r.snap.Len(), want.Index(), want.Len())
	}
	for _, svc := range want.Services() {
		for _, e := range want.Instances(svc, "") {
			got, ok := r.snap.Instance(e.ID)
			if !ok || got.Address != e.Address || got.Health != e.Health {
				t.Fatalf("replica's %s = %+v, catalog's %+v", e.ID, got, e.Instance)
			}
		}
	}
}

// An agent without a replica gets the snapshot, then one delta per change.
func TestCatalogStreamSnapshotThenDeltas(t *testing.T) {
	h := catalogHolder(t, 3)
	c, _ := watchCatalog(t, h, 0)
	r := &replica{}
	r.read(t, c)
	if r.snapshots != 1 {
		t.Fatalf("first frame for a replica at 0: %d snapshots, want 1", r.snapshots)
	}
	r.same(t, h.Snapshot())
	bad := instance(2)
	bad.Health = registry.HealthCritical
	h.Apply(registry.Delta{Index: 4, Upserts: []registry.Instance{bad}})
	r.read(t, c)
	h.Apply(registry.Delta{Index: 5, Deletes: []string{instance(1).ID}})
	r.read(t, c)
	if r.snapshots != 1 || r.deltas != 2 {
		t.Fatalf("%d snapshots and %d deltas, want 1 and 2", r.snapshots, r.deltas)
	}
	r.same(t, h.Snapshot())
	if got := len(r.snap.Passing("web", "")); got != 1 {
		t.Fatalf("replica passes %d instances of web, want 1", got)
	}
}

// An agent that reconnects with a replica the catalog can bring up to date
// gets a delta, not the catalog again; one already up to date gets an
// empty delta at its own index; one the catalog has no deltas for (it was
// rebuilt whole since) gets the snapshot.
func TestCatalogStreamResumesFromTheAgentsIndex(t *testing.T) {
	h := catalogHolder(t, 6)
	for _, tc := range []struct {
		name      string
		from      uint64
		snapshots int
	}{
		{"behind", 2, 0},
		{"up to date", 6, 0},
		{"ahead of this server", 9, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := watchCatalog(t, h, tc.from)
			r := &replica{snap: catalogHolder(t, min(int(tc.from), 6)).Snapshot()}
			r.read(t, c)
			if r.snapshots != tc.snapshots {
				t.Fatalf("%d snapshots, want %d", r.snapshots, tc.snapshots)
			}
			r.same(t, h.Snapshot())
		})
	}
	t.Run("older than the deltas kept", func(t *testing.T) {
		h := catalogHolder(t, 6)
		h.Set(h.Snapshot()) // a rebuild: no delta leads to it
		c, _ := watchCatalog(t, h, 3)
		r := &replica{snap: catalogHolder(t, 3).Snapshot()}
		r.read(t, c)
		if r.snapshots != 1 {
			t.Fatalf("%d snapshots, want 1", r.snapshots)
		}
		r.same(t, h.Snapshot())
	})
}

// Changes made while the agent does not read are not queued one frame
// each: the next delta covers all of them.
func TestCatalogStreamCoalescesWhileTheAgentLags(t *testing.T) {
	h := catalogHolder(t, 1)
	c, _ := watchCatalog(t, h, 0)
	r := &replica{}
	r.read(t, c)
	for i := 2; i <= 101; i++ {
		if _, err := h.Apply(registry.Delta{Index: uint64(i), Upserts: []registry.Instance{instance(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// At most one delta was computed before the pipe blocked its write; the
	// next covers every change after it.
	for r.snap.Index() < 101 {
		r.read(t, c)
	}
	if r.deltas > 2 {
		t.Fatalf("100 changes behind a blocked write took %d deltas, want at most 2", r.deltas)
	}
	r.same(t, h.Snapshot())
}

// A catalog replaced whole (rebuilt after a snapshot restore), even at
// the index the agent has, reaches it as a snapshot: no delta describes
// the change.
func TestCatalogStreamSendsARebuiltCatalogWhole(t *testing.T) {
	h := catalogHolder(t, 4)
	c, _ := watchCatalog(t, h, 0)
	r := &replica{}
	r.read(t, c)
	rebuilt, err := registry.NewSnapshot(4, []registry.Instance{instance(7)})
	if err != nil {
		t.Fatal(err)
	}
	h.Replace(rebuilt)
	r.read(t, c)
	if r.snapshots != 2 {
		t.Fatalf("%d snapshots, want 2 (the rebuilt catalog)", r.snapshots)
	}
	r.same(t, rebuilt)
	h.Apply(registry.Delta{Index: 5, Upserts: []registry.Instance{instance(8)}})
	r.read(t, c)
	if r.snapshots != 2 || r.deltas != 1 {
		t.Fatalf("%d snapshots, %d deltas after a change of the rebuilt catalog, want 2 and 1", r.snapshots, r.deltas)
	}
	r.same(t, h.Snapshot())
}

// The stream ends when the agent resets it (or its connection closes).
func TestCatalogStreamEndsWhenTheAgentGoes(t *testing.T) {
	h := catalogHolder(t, 1)
	c, done := watchCatalog(t, h, 0)
	(&replica{}).read(t, c)
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveCatalog: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveCatalog still running after the agent closed the stream")
	}
}

// A server without a catalog refuses the stream with a reason.
func TestCatalogStreamRefusedWithoutACatalog(t *testing.T) {
	c, _ := watchCatalog(t, nil, 0)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m wire.CatalogSnapshot
	err := wire.Expect(c, wire.TypeCatalogSnapshot, &m)
	var refusal *wire.Refusal
	if !errors.As(err, &refusal) || refusal.Message != errNoCatalog.Error() {
		t.Fatalf("got %v, want the refusal %q", err, errNoCatalog)
	}
}
