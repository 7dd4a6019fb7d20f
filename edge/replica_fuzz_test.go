package edge

import (
	"bytes"
	"testing"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
)

// FuzzCatalogStream feeds arbitrary bytes to the replica as a catalog
// stream (wire frames carrying the registry's encoding). Whatever it
// reads, it must not panic, must end with an error (the bytes run out or
// are refused), and must keep what it serves and what it stored on disk
// the same catalog.
func FuzzCatalogStream(f *testing.F) {
	seed := catalogFrames(f, 3, 6, "edge-1")
	f.Add(seed.Bytes())
	var b bytes.Buffer
	writeDelta(f, &b, registry.Delta{Index: 9, Upserts: []registry.Instance{catInstance(7, "edge-2")}, Deletes: []string{catInstance(1, "").ID}})
	writeDelta(f, &b, registry.Delta{Index: 9})
	f.Add(b.Bytes())
	b.Reset()
	wire.Write(&b, wire.TypeError, wire.Error{Message: "no catalog"})
	f.Add(b.Bytes())

	l := openTestState(f, f.TempDir())
	f.Cleanup(func() { l.close() })
	l.db.NoSync = true // a fuzz run, not a crash test
	start := catalogFrames(f, 5, 5, "edge-1")
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newReplica(l, "edge-1", testLoggerDiscard())
		if err := r.follow(bytes.NewReader(start.Bytes())); err == nil {
			t.Fatal("follow returned nil at the end of its bytes")
		}
		if err := r.follow(bytes.NewReader(data)); err == nil {
			t.Fatal("follow returned nil at the end of its bytes")
		}
		served := r.holder.Snapshot()
		stored, err := l.loadCatalog()
		if err != nil {
			t.Fatalf("the stored replica does not load: %v", err)
		}
		if stored.Index() != r.index() || stored.Len() != served.Len() || served.Index() != r.index() {
			t.Fatalf("stored replica at %d with %d instances, served at %d with %d, replica index %d",
				stored.Index(), stored.Len(), served.Index(), served.Len(), r.index())
		}
		for _, id := range stored.Services() {
			if len(stored.Passing(id, "")) != len(served.Passing(id, "")) {
				t.Fatalf("service %s: %d passing stored, %d served", id, len(stored.Passing(id, "")), len(served.Passing(id, "")))
			}
		}
	})
}
