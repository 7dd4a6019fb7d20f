package registry

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func ids(es []*Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// instances is the catalog most snapshot tests use.
func instances() []Instance {
	return []Instance{
		{ID: "w1", Service: "Web", Tags: []string{"prod", "Blue"}, Address: "10.0.0.1", Port: 8080, Node: "Edge-1", NodeID: "n1", NodeAddress: "10.0.0.1", AllocID: "a1", Health: HealthPassing},
		{ID: "w2", Service: "web", Tags: []string{"canary"}, Address: "10.0.0.2", Port: 8080, Node: "edge-2", NodeID: "n2", NodeAddress: "10.0.0.2", AllocID: "a2", Health: HealthWarning},
		{ID: "w3", Service: "web", Tags: []string{"prod", "PROD"}, Address: "10.0.0.3", Port: 8080, Node: "edge-3", NodeID: "n3", NodeAddress: "10.0.0.3", AllocID: "a3", Health: HealthCritical},
		{ID: "d1", Service: "db", Address: "10.0.0.1", Port: 5432, Node: "edge-1", NodeID: "n1", NodeAddress: "10.0.0.1", AllocID: "a4", Health: HealthPassing},
	}
}

func mustSnapshot(t testing.TB, index uint64, in []Instance) *Snapshot {
	t.Helper()
	s, err := NewSnapshot(index, in)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	return s
}

func mustApply(t testing.TB, s *Snapshot, d Delta) *Snapshot {
	t.Helper()
	n, err := s.Apply(d)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return n
}

func TestSnapshotLookups(t *testing.T) {
	in := instances()
	s := mustSnapshot(t, 7, in)
	in[0].Tags[0] = "mutated" // the snapshot copied its input

	if s.Index() != 7 || s.Len() != 4 {
		t.Fatalf("index %d len %d", s.Index(), s.Len())
	}
	if got := s.Services(); !slices.Equal(got, []string{"db", "web"}) {
		t.Errorf("Services() = %v", got)
	}
	if got := s.Nodes(); !slices.Equal(got, []string{"edge-1", "edge-2", "edge-3"}) {
		t.Errorf("Nodes() = %v", got)
	}
	cases := []struct {
		name      string
		got, want []string
	}{
		{"all web", ids(s.Instances("WEB", "")), []string{"w1", "w2", "w3"}},
		{"passing web", ids(s.Passing("web", "")), []string{"w1"}},
		{"tag prod any health, once per instance", ids(s.Instances("web", "Prod")), []string{"w1", "w3"}},
		{"tag prod passing", ids(s.Passing("web", "prod")), []string{"w1"}},
		{"tag canary passing", ids(s.Passing("web", "canary")), nil},
		{"unknown service", ids(s.Instances("nope", "")), nil},
		{"node edge-1", ids(s.NodeInstances("EDGE-1")), []string{"d1", "w1"}},
		{"tags", s.ServiceTags("web"), []string{"Blue", "canary", "prod"}},
	}
	for _, tc := range cases {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if e, ok := s.Instance("w1"); !ok || e.Tags[0] != "prod" || e.Service != "web" || e.Node != "edge-1" || e.CreateIndex != 7 || e.ModifyIndex != 7 {
		t.Errorf("Instance(w1) = %+v", e)
	}
	if n, ok := s.Node("edge-1"); !ok || n != (Node{Name: "edge-1", ID: "n1", Address: "10.0.0.1", Index: 7}) {
		t.Errorf("Node(edge-1) = %+v %v", n, ok)
	}
	if i, ok := s.ServiceIndex("db"); !ok || i != 7 {
		t.Errorf("ServiceIndex(db) = %d %v", i, ok)
	}
}

// A passing unpromoted canary is found by its tag, never by the untagged name.
func TestSnapshotCanaryOnlyByTag(t *testing.T) {
	in := instances()
	in[1].Health, in[1].Canary = HealthPassing, true
	s := mustSnapshot(t, 3, in)
	if got := ids(s.Passing("web", "")); !slices.Equal(got, []string{"w1"}) {
		t.Errorf("untagged passing = %v, want [w1] (the canary w2 left out)", got)
	}
	if got := ids(s.Passing("web", "canary")); !slices.Equal(got, []string{"w2"}) {
		t.Errorf("canary-tagged passing = %v, want [w2]", got)
	}
	promoted := in[1]
	promoted.Canary, promoted.Tags = false, []string{"prod"}
	s2 := mustApply(t, s, Delta{Index: 4, Upserts: []Instance{promoted}})
	if got := ids(s2.Passing("web", "")); !slices.Equal(got, []string{"w1", "w2"}) {
		t.Errorf("after promotion untagged passing = %v, want [w1 w2]", got)
	}
}

func TestSnapshotApply(t *testing.T) {
	s1 := mustSnapshot(t, 10, instances())
	webBefore := s1.services["web"]

	// Upserting db unchanged and changing its health: only db's index moves.
	up := instances()[3]
	up.Health = HealthCritical
	s2 := mustApply(t, s1, Delta{Index: 11, Upserts: []Instance{up}})
	if i, _ := s2.ServiceIndex("db"); i != 11 {
		t.Errorf("db index %d, want 11", i)
	}
	if i, _ := s2.ServiceIndex("web"); i != 10 {
		t.Errorf("web index %d, want 10 (untouched)", i)
	}
	if s2.services["web"] != webBefore {
		t.Errorf("untouched service was rebuilt, not shared")
	}
	if e, _ := s2.Instance("d1"); e.CreateIndex != 10 || e.ModifyIndex != 11 {
		t.Errorf("d1 indexes %d/%d, want 10/11", e.CreateIndex, e.ModifyIndex)
	}
	if got := ids(s2.Passing("db", "")); got != nil {
		t.Errorf("db passing after going critical: %v", got)
	}
	// The parent is untouched.
	if got := ids(s1.Passing("db", "")); !slices.Equal(got, []string{"d1"}) || s1.Index() != 10 {
		t.Errorf("parent changed: %v at %d", got, s1.Index())
	}

	// The same instance again: no index moves but the snapshot's.
	s3 := mustApply(t, s2, Delta{Index: 12, Upserts: []Instance{up}})
	if i, _ := s3.ServiceIndex("db"); i != 11 || s3.Index() != 12 {
		t.Errorf("no-op upsert: db index %d snapshot %d", i, s3.Index())
	}

	// Delete the last db instance, move w2 to another node, delete an unknown ID.
	w2 := instances()[1]
	w2.Node, w2.NodeID, w2.NodeAddress = "edge-9", "n9", "10.0.0.9"
	s4 := mustApply(t, s3, Delta{Index: 13, Upserts: []Instance{w2}, Deletes: []string{"d1", "gone"}})
	if got := s4.Services(); !slices.Equal(got, []string{"web"}) {
		t.Errorf("Services() = %v", got)
	}
	if _, ok := s4.ServiceIndex("db"); ok {
		t.Errorf("db still exists")
	}
	if got := s4.Nodes(); !slices.Equal(got, []string{"edge-1", "edge-3", "edge-9"}) {
		t.Errorf("Nodes() = %v", got)
	}
	if got := ids(s4.NodeInstances("edge-1")); !slices.Equal(got, []string{"w1"}) {
		t.Errorf("edge-1 = %v", got)
	}
	if got := s3.Services(); !slices.Equal(got, []string{"db", "web"}) {
		t.Errorf("parent's Services() changed: %v", got)
	}
}

func TestSnapshotApplyErrors(t *testing.T) {
	s := mustSnapshot(t, 10, instances())
	ok := Instance{ID: "x", Service: "x"}
	cases := []struct {
		name string
		d    Delta
		want error
	}{
		{"stale", Delta{Index: 10}, ErrStaleDelta},
		{"older", Delta{Index: 3}, ErrStaleDelta},
		{"empty ID", Delta{Index: 11, Upserts: []Instance{{Service: "x"}}}, ErrInvalidInstance},
		{"empty service", Delta{Index: 11, Upserts: []Instance{{ID: "x"}}}, ErrInvalidInstance},
		{"port", Delta{Index: 11, Upserts: []Instance{{ID: "x", Service: "x", Port: 70000}}}, ErrInvalidInstance},
		{"health", Delta{Index: 11, Upserts: []Instance{{ID: "x", Service: "x", Health: 9}}}, ErrInvalidInstance},
		{"twice", Delta{Index: 11, Upserts: []Instance{ok, ok}}, ErrInvalidInstance},
		{"upsert and delete", Delta{Index: 11, Upserts: []Instance{ok}, Deletes: []string{"x"}}, ErrInvalidInstance},
		{"empty delete", Delta{Index: 11, Deletes: []string{""}}, ErrInvalidInstance},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Apply(tc.d); !errors.Is(err, tc.want) {
				t.Errorf("Apply = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := NewSnapshot(1, []Instance{ok, ok}); !errors.Is(err, ErrInvalidInstance) {
		t.Errorf("NewSnapshot with a repeated ID: %v", err)
	}
}

func TestHolderWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHolder(mustSnapshot(t, 5, instances()))
		if s, err := h.Wait(t.Context(), 4); err != nil || s.Index() != 5 {
			t.Fatalf("Wait(4) = %v, %v; want index 5 at once", s, err)
		}

		got := make(chan *Snapshot)
		go func() {
			s, err := h.Wait(t.Context(), 5)
			if err != nil {
				t.Errorf("Wait: %v", err)
			}
			got <- s
		}()
		synctest.Wait() // the waiter is blocked
		select {
		case s := <-got:
			t.Fatalf("Wait returned %d before any change", s.Index())
		default:
		}
		// A publication at the same index wakes no one.
		if err := h.Set(h.Snapshot()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("woken by a same-index Set")
		default:
		}
		start := time.Now()
		if _, err := h.Apply(Delta{Index: 6, Deletes: []string{"d1"}}); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s.Index() != 6 || time.Since(start) != 0 {
			t.Errorf("woke with index %d after %v", s.Index(), time.Since(start))
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		s, err := h.Wait(ctx, 6)
		if !errors.Is(err, context.DeadlineExceeded) || s.Index() != 6 || time.Since(start) != time.Minute {
			t.Errorf("Wait with a deadline: %v, %v after %v", s.Index(), err, time.Since(start))
		}
		if err := h.Set(mustSnapshot(t, 3, nil)); !errors.Is(err, ErrStaleDelta) {
			t.Errorf("Set backwards: %v", err)
		}
		if h.Index() != 6 {
			t.Errorf("index %d after a refused Set", h.Index())
		}
		// Replace may go backwards; a waiter for a higher index re-checks and
		// keeps waiting, until an index above its own is published.
		woke := make(chan uint64)
		go func() {
			s, _ := h.Wait(t.Context(), 6)
			woke <- s.Index()
		}()
		synctest.Wait()
		if err := h.Replace(mustSnapshot(t, 3, nil)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case i := <-woke:
			t.Fatalf("waiter for >6 returned at %d", i)
		default:
		}
		if h.Index() != 3 {
			t.Errorf("holder at %d after Replace, want 3", h.Index())
		}
		if _, err := h.Apply(Delta{Index: 7}); err != nil {
			t.Fatal(err)
		}
		if i := <-woke; i != 7 {
			t.Errorf("waiter woke at %d, want 7", i)
		}
	})
}

func TestCodecRoundTrip(t *testing.T) {
	s1 := mustSnapshot(t, 10, instances())
	up := instances()[1]
	up.Health, up.Canary = HealthPassing, true
	s2 := mustApply(t, s1, Delta{Index: 12, Upserts: []Instance{up}, Deletes: []string{"d1"}})

	b, err := s2.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatalf("DecodeSnapshot: %v", err)
	}
	if w2, _ := got.Instance("w2"); !w2.Canary || w2.Health != HealthPassing {
		t.Errorf("w2 decoded as %v canary=%v, want a passing canary", w2.Health, w2.Canary)
	}
	if got.Index() != 12 || !slices.Equal(got.Services(), s2.Services()) || !slices.Equal(got.Nodes(), s2.Nodes()) {
		t.Fatalf("decoded index %d services %v nodes %v", got.Index(), got.Services(), got.Nodes())
	}
	for id, want := range s2.byID {
		e, ok := got.Instance(id)
		if !ok || !sameInstance(&e.Instance, &want.Instance) || e.CreateIndex != want.CreateIndex || e.ModifyIndex != want.ModifyIndex {
			t.Errorf("instance %s: %+v, want %+v", id, e, want)
		}
	}
	for _, name := range s2.Services() {
		a, _ := s2.ServiceIndex(name)
		b, _ := got.ServiceIndex(name)
		if a != b {
			t.Errorf("service %s index %d, want %d", name, b, a)
		}
	}
	if got.ChangeIndex() != 12 || s1.ChangeIndex() != 10 {
		t.Errorf("ChangeIndex %d (source %d), want 12 and 10", got.ChangeIndex(), s1.ChangeIndex())
	}
	if n, _ := got.Node("edge-1"); n.Index != 12 {
		t.Errorf("edge-1 index %d, want 12", n.Index)
	}

	d := Delta{Index: 13, Upserts: instances()[:2], Deletes: []string{"zz"}}
	db, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeDelta(db)
	if err != nil {
		t.Fatalf("DecodeDelta: %v", err)
	}
	if back.Index != 13 || len(back.Upserts) != 2 || !sameInstance(&back.Upserts[0], &d.Upserts[0]) || !slices.Equal(back.Deletes, d.Deletes) {
		t.Errorf("delta round trip: %+v", back)
	}
	// Applying the decoded delta to the decoded snapshot equals applying the original.
	a1 := mustApply(t, s2, d)
	a2 := mustApply(t, got, back)
	e1, _ := a1.MarshalBinary()
	e2, _ := a2.MarshalBinary()
	if string(e1) != string(e2) {
		t.Errorf("replica diverges from the source after one delta")
	}
	if _, err := (Delta{Index: 1, Upserts: []Instance{{ID: "x"}}}).MarshalBinary(); !errors.Is(err, ErrInvalidInstance) {
		t.Errorf("encoding an invalid delta: %v", err)
	}
}

func TestCodecRejects(t *testing.T) {
	good, _ := mustSnapshot(t, 10, instances()).MarshalBinary()
	delta, _ := Delta{Index: 11, Upserts: instances()[:1]}.MarshalBinary()
	cases := map[string][]byte{
		"empty":          nil,
		"wrong kind":     delta,
		"version 2":      append([]byte{kindSnapshot, 2}, good[2:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(slices.Clone(good), 0),
		"huge count":     {kindSnapshot, codecVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad string ref": {kindSnapshot, codecVersion, 1, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 1, 0, 0},
	}
	for name, b := range cases {
		if _, err := DecodeSnapshot(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: DecodeSnapshot = %v, want ErrBadEncoding", name, err)
		}
	}
	if _, err := DecodeDelta(good); !errors.Is(err, ErrBadEncoding) {
		t.Errorf("a snapshot decoded as a delta: %v", err)
	}
}

func FuzzDecodeDelta(f *testing.F) {
	for _, d := range []Delta{
		{Index: 1},
		{Index: 2, Upserts: instances()},
		{Index: 3, Upserts: instances()[:1], Deletes: []string{"a", "b"}},
	} {
		b, err := d.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	base := mustSnapshot(f, 1, instances())
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDelta(b)
		if err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("error %v does not wrap ErrBadEncoding", err)
			}
			return
		}
		// Whatever decodes re-encodes to a delta that decodes the same, and applies.
		again, err := d.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encoding a decoded delta: %v", err)
		}
		if _, err := DecodeDelta(again); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if d.Index > base.Index() {
			if _, err := base.Apply(d); err != nil {
				t.Fatalf("a decoded delta does not apply: %v", err)
			}
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	b, _ := mustSnapshot(f, 9, instances()).MarshalBinary()
	f.Add(b)
	e, _ := mustSnapshot(f, 0, nil).MarshalBinary()
	f.Add(e)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("error %v does not wrap ErrBadEncoding", err)
			}
			return
		}
		if _, err := s.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

// genInstances returns n instances spread over services of perService
// instances each, on nodes of 10 instances each: the shape of a real fleet.
func genInstances(n, perService int) []Instance {
	out := make([]Instance, n)
	for i := range out {
		node := i / 10
		addr := fmt.Sprintf("10.%d.%d.%d", node/65536%256, node/256%256, node%256)
		out[i] = Instance{
			ID:          fmt.Sprintf("%08x-1111-2222-3333-%012x/svc-%d/0", i, i, i/perService),
			Service:     fmt.Sprintf("job-%d-group-task", i/perService),
			Tags:        []string{"prod", fmt.Sprintf("v%d", i%3)},
			Address:     addr,
			Port:        20000 + i%12000,
			Node:        fmt.Sprintf("edge-%d", node),
			NodeID:      fmt.Sprintf("%08x-aaaa-bbbb-cccc-%012x", node, node),
			NodeAddress: addr,
			AllocID:     fmt.Sprintf("%08x-1111-2222-3333-%012x", i, i),
			Health:      HealthPassing,
		}
	}
	return out
}

// TestSnapshotSize measures what 10,000 instances cost in memory and encoded,
// and holds them to the brief's "a few MB".
func TestSnapshotSize(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	enc, _ := mustSnapshot(t, 1, genInstances(10_000, 10)).MarshalBinary()
	// Measure the decoded replica: every string in it is its own (nothing is
	// shared with a generator's input), as on an agent that loads it from disk.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := DecodeSnapshot(enc)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("10,000 instances: %d bytes of heap (%d per instance), %d bytes encoded", heap, heap/10_000, len(enc))
	runtime.KeepAlive(s)
	if heap > 6<<20 {
		t.Errorf("snapshot of 10,000 instances holds %d bytes, budget 6 MiB", heap)
	}
	if len(enc) > 2<<20 {
		t.Errorf("encoding is %d bytes, budget 2 MiB", len(enc))
	}
}

func BenchmarkSnapshotApply(b *testing.B) {
	in := genInstances(10_000, 10)
	s := mustSnapshot(b, 1, in)
	up := in[5000]
	b.ReportAllocs()
	for b.Loop() {
		up.Health ^= HealthPassing // flip passing <-> critical
		next, err := s.Apply(Delta{Index: s.Index() + 1, Upserts: []Instance{up}})
		if err != nil {
			b.Fatal(err)
		}
		s = next
	}
}

func BenchmarkDecodeSnapshot(b *testing.B) {
	enc, _ := mustSnapshot(b, 1, genInstances(10_000, 10)).MarshalBinary()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSnapshot(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHolderDeltaSince: a replica that applies DeltaSince(its index) ends equal
// to the source, whatever happened in between, and one too far behind is told
// to take a snapshot.
func TestHolderDeltaSince(t *testing.T) {
	base := mustSnapshot(t, 10, instances())
	h := NewHolder(base)
	w2 := instances()[1]
	w2.Health = HealthPassing
	steps := []Delta{
		{Index: 11, Upserts: []Instance{w2}},
		{Index: 12, Deletes: []string{"d1"}},
		{Index: 13, Upserts: []Instance{{ID: "d1", Service: "db", Address: "10.0.0.5", Port: 5432, Health: HealthPassing}}},
		{Index: 14, Deletes: []string{"w3"}, Upserts: []Instance{{ID: "n1", Service: "new", Health: HealthPassing}}},
		{Index: 15, Deletes: []string{"n1"}},
	}
	for _, d := range steps {
		if _, err := h.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	for _, from := range []uint64{10, 12, 14} {
		r := NewHolder(mustSnapshot(t, 10, instances()))
		for _, d := range steps {
			if d.Index <= from {
				if _, err := r.Apply(d); err != nil {
					t.Fatal(err)
				}
			}
		}
		d, ok := h.DeltaSince(from)
		if !ok || d.Index != 15 {
			t.Fatalf("DeltaSince(%d) = %+v, %v", from, d, ok)
		}
		if _, err := r.Apply(d); err != nil {
			t.Fatalf("applying DeltaSince(%d): %v", from, err)
		}
		if !sameContent(r.Snapshot(), h.Snapshot()) {
			t.Errorf("replica from %d differs from the source", from)
		}
	}
	if d, ok := h.DeltaSince(15); !ok || d.Index != 15 || len(d.Upserts)+len(d.Deletes) != 0 {
		t.Errorf("DeltaSince(current) = %+v, %v; want an empty delta", d, ok)
	}
	for _, bad := range []uint64{9, 16} {
		if _, ok := h.DeltaSince(bad); ok {
			t.Errorf("DeltaSince(%d) ok, want a snapshot instead", bad)
		}
	}
	if err := h.Set(mustSnapshot(t, 20, nil)); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.DeltaSince(15); ok {
		t.Errorf("DeltaSince across a Set: ok")
	}
}

// sameContent compares two snapshots' instances and health, ignoring indexes
// (a replica that applied one merged delta has later ModifyIndexes).
func sameContent(a, b *Snapshot) bool {
	if a.Len() != b.Len() || a.Index() != b.Index() {
		return false
	}
	for id, e := range a.byID {
		f, ok := b.byID[id]
		if !ok || !sameInstance(&e.Instance, &f.Instance) {
			return false
		}
	}
	return true
}
