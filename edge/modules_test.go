package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/wasmhost"
)

func newTestCache(t *testing.T, dir string, budget int64) *moduleCache {
	t.Helper()
	c, err := newModuleCache(dir, budget, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randomModule returns n pseudo-random bytes (the cache does not care
// whether they are wasm) and their digest.
func randomModule(seed uint64, n int) ([]byte, string) {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, wasmhost.Digest(b)
}

// fakeServer serves one module from any offset; cutAfter[i] > 0 breaks
// the i-th download after that many bytes, as a lost link would.
type fakeServer struct {
	data     []byte
	cutAfter []int64
	offsets  []int64 // the offset each download asked for
}

var errLinkLost = errors.New("link lost")

func (s *fakeServer) open(ctx context.Context, digest string, offset int64) (wire.ModuleHeader, io.ReadCloser, error) {
	i := len(s.offsets)
	s.offsets = append(s.offsets, offset)
	size := int64(len(s.data))
	if offset > size {
		return wire.ModuleHeader{Digest: digest, Size: size, Error: "offset past the end"}, io.NopCloser(bytes.NewReader(nil)), nil
	}
	var r io.Reader = bytes.NewReader(s.data[offset:])
	if i < len(s.cutAfter) && s.cutAfter[i] > 0 {
		r = io.MultiReader(io.LimitReader(r, s.cutAfter[i]), iotestErr{errLinkLost})
	}
	return wire.ModuleHeader{Digest: digest, Size: size, Offset: offset}, io.NopCloser(r), nil
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func TestModuleCacheVerifies(t *testing.T) {
	c := newTestCache(t, t.TempDir(), 1<<30)
	b, digest := randomModule(1, 100)
	if err := c.put(digest, []byte("other bytes")); err == nil {
		t.Fatal("put stored bytes that do not match the digest")
	}
	if err := c.put(digest, b); err != nil {
		t.Fatal(err)
	}
	if got, err := c.get(digest); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("get = %q, %v", got, err)
	}
	// Corrupt the file on disk: get refuses it and removes it.
	p, _ := c.path(digest)
	os.WriteFile(p, []byte("tampered"), 0o600)
	if _, err := c.get(digest); err == nil {
		t.Fatal("get returned tampered bytes")
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("tampered file kept in the cache")
	}
	if _, err := c.path("sha256:../../etc/passwd"); err == nil {
		t.Fatal("path accepted a traversal digest")
	}
}

// A download cut mid-stream resumes from what reached the disk: within
// one fetch, and after a restart of the agent.
func TestDownloadResumesAfterCut(t *testing.T) {
	data, digest := randomModule(2, 300_000)
	ctx := context.Background()

	t.Run("within a fetch", func(t *testing.T) {
		c := newTestCache(t, t.TempDir(), 1<<30)
		srv := &fakeServer{data: data, cutAfter: []int64{100_000, 50_000}}
		got, err := c.fetch(ctx, digest, srv.open)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("resumed download differs from the module")
		}
		if want := []int64{0, 100_000, 150_000}; !reflect.DeepEqual(srv.offsets, want) {
			t.Fatalf("offsets asked = %v, want %v", srv.offsets, want)
		}
		p, _ := c.path(digest)
		if _, err := os.Stat(p + partialSuffix); !os.IsNotExist(err) {
			t.Fatal("partial file left after a complete download")
		}
	})

	t.Run("after a restart", func(t *testing.T) {
		dir := t.TempDir()
		c := newTestCache(t, dir, 1<<30)
		cut := &fakeServer{data: data, cutAfter: []int64{120_000}}
		if n, err := c.download(ctx, digest, cut.open); !errors.Is(err, errLinkLost) || n != 120_000 {
			t.Fatalf("cut download = %d bytes, %v", n, err)
		}
		c = newTestCache(t, dir, 1<<30) // the agent restarts
		srv := &fakeServer{data: data}
		got, err := c.fetch(ctx, digest, srv.open)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("fetch after restart: %v", err)
		}
		if want := []int64{120_000}; !reflect.DeepEqual(srv.offsets, want) {
			t.Fatalf("offsets asked = %v, want %v", srv.offsets, want)
		}
	})

	t.Run("a server that does not resume", func(t *testing.T) {
		c := newTestCache(t, t.TempDir(), 1<<30)
		cut := &fakeServer{data: data, cutAfter: []int64{10_000}}
		c.download(ctx, digest, cut.open)
		old := func(ctx context.Context, d string, offset int64) (wire.ModuleHeader, io.ReadCloser, error) {
			return wire.ModuleHeader{Digest: d, Size: int64(len(data))}, io.NopCloser(bytes.NewReader(data)), nil
		}
		if got, err := c.fetch(ctx, digest, old); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("fetch from a server that ignores Offset: %v", err)
		}
	})
}

// Bytes that do not hash to the digest are refused and not kept, whether
// they came in one download or completed a partial one.
func TestDownloadRefusesCorruptBytes(t *testing.T) {
	data, digest := randomModule(3, 50_000)
	ctx := context.Background()
	bad := bytes.Clone(data)
	bad[40_000] ^= 1

	c := newTestCache(t, t.TempDir(), 1<<30)
	_, err := c.fetch(ctx, digest, (&fakeServer{data: bad}).open)
	if !errors.Is(err, errModuleCorrupt) || !strings.Contains(err.Error(), "expected "+digest) {
		t.Fatalf("fetch of corrupt bytes = %v, want a digest mismatch naming the digest", err)
	}
	p, _ := c.path(digest)
	for _, f := range []string{p, p + partialSuffix} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Fatalf("%s kept after a digest mismatch", filepath.Base(f))
		}
	}

	// A partial corrupted on disk is found out when the download ends,
	// discarded, and the next fetch starts over.
	os.WriteFile(p+partialSuffix, append([]byte("garbage!"), data[8:20_000]...), 0o600)
	srv := &fakeServer{data: data}
	if _, err := c.fetch(ctx, digest, srv.open); !errors.Is(err, errModuleCorrupt) {
		t.Fatalf("resuming a corrupt partial = %v, want a digest mismatch", err)
	}
	if got, err := c.fetch(ctx, digest, srv.open); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetch after the discarded partial: %v", err)
	}
	if want := []int64{20_000, 0}; !reflect.DeepEqual(srv.offsets, want) {
		t.Fatalf("offsets asked = %v, want %v", srv.offsets, want)
	}

	// A partial longer than the module cannot be a prefix of it: the
	// server refuses the offset, the partial goes, the next attempt
	// starts over.
	c = newTestCache(t, t.TempDir(), 1<<30)
	p, _ = c.path(digest)
	os.WriteFile(p+partialSuffix, append(bytes.Clone(data), "extra"...), 0o600)
	srv = &fakeServer{data: data}
	if got, err := c.fetch(ctx, digest, srv.open); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetch over a too-long partial: %v", err)
	}
	if want := []int64{int64(len(data)) + 5, 0}; !reflect.DeepEqual(srv.offsets, want) {
		t.Fatalf("offsets asked = %v, want %v", srv.offsets, want)
	}
}

// A link that keeps failing without progress ends the fetch.
func TestDownloadGivesUpWithoutProgress(t *testing.T) {
	_, digest := randomModule(4, 10)
	c := newTestCache(t, t.TempDir(), 1<<30)
	calls := 0
	down := func(ctx context.Context, d string, offset int64) (wire.ModuleHeader, io.ReadCloser, error) {
		calls++
		return wire.ModuleHeader{}, nil, errLinkLost
	}
	if _, err := c.fetch(context.Background(), digest, down); !errors.Is(err, errLinkLost) {
		t.Fatalf("fetch = %v", err)
	}
	if calls != maxStalledAttempts {
		t.Fatalf("%d attempts, want %d", calls, maxStalledAttempts)
	}
	refused := func(ctx context.Context, d string, offset int64) (wire.ModuleHeader, io.ReadCloser, error) {
		calls++
		return wire.ModuleHeader{Digest: d, Error: "module is not stored on this server"}, io.NopCloser(bytes.NewReader(nil)), nil
	}
	calls = 0
	if _, err := c.fetch(context.Background(), digest, refused); !errors.Is(err, errDownloadRefused) || calls != 1 {
		t.Fatalf("fetch refused by the server = %v after %d attempts, want one attempt", err, calls)
	}
}

func TestEvictions(t *testing.T) {
	e := func(d string, size int64, used uint64) cacheEntry {
		return cacheEntry{digest: d, size: size, used: used}
	}
	entries := []cacheEntry{e("a", 100, 4), e("b", 100, 1), e("c", 100, 3), e("d", 100, 2)}
	none := func(string) bool { return false }
	cases := []struct {
		name   string
		budget int64
		spare  func(string) bool
		want   []string
		left   int64
	}{
		{"within budget", 400, none, nil, 400},
		{"least recently used first", 250, none, []string{"b", "d"}, 200},
		{"in use is spared", 250, func(d string) bool { return d == "b" }, []string{"d", "c"}, 200},
		{"over budget when all is in use", 50, func(string) bool { return true }, nil, 400},
		{"zero budget", 0, func(d string) bool { return d == "a" }, []string{"b", "d", "c"}, 100},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, left := evictions(append([]cacheEntry(nil), entries...), c.budget, c.spare)
			if !reflect.DeepEqual(got, c.want) || left != c.left {
				t.Fatalf("evictions = %v (%d left), want %v (%d left)", got, left, c.want, c.left)
			}
		})
	}
}

// The cache removes least recently used modules past its budget, never
// one a current allocation references, and keeps the order across a
// restart (from the files' modification times).
func TestModuleCacheEviction(t *testing.T) {
	dir := t.TempDir()
	c := newTestCache(t, dir, 300)
	mods := map[string]string{}
	for i, name := range []string{"a", "b", "c", "d"} {
		b, d := randomModule(uint64(10+i), 100)
		mods[name] = d
		if name == "d" {
			c.get(mods["a"]) // a is now more recent than b and c
			c.setInUse(map[string]bool{mods["b"]: true})
		}
		if err := c.put(d, b); err != nil {
			t.Fatal(err)
		}
	}
	present := func(c *moduleCache) string {
		var s string
		for _, name := range []string{"a", "b", "c", "d"} {
			if p, _ := c.path(mods[name]); fileExists(p) {
				s += name
			}
		}
		return s
	}
	// b (in use) is older than c, but c goes.
	if got := present(c); got != "abd" {
		t.Fatalf("cached after eviction = %q, want abd", got)
	}
	// Nothing in use any more, and a smaller budget after a restart: the
	// oldest files go first.
	times := map[string]time.Time{"a": time.Unix(3000, 0), "b": time.Unix(1000, 0), "d": time.Unix(2000, 0)}
	for name, mt := range times {
		p, _ := c.path(mods[name])
		os.Chtimes(p, mt, mt)
	}
	c = newTestCache(t, dir, 150)
	if got := present(c); got != "abd" {
		t.Fatalf("cached after a restart, before the allocations are known = %q, want all of abd", got)
	}
	c.setInUse(map[string]bool{}) // the agent's first reconcile
	if got := present(c); got != "a" {
		t.Fatalf("cached after a restart with a 150-byte budget = %q, want a (the most recent)", got)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
