package wasmhost

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCompileOncePerDigest(t *testing.T) {
	h := newHost(t)
	digest := Digest(okModule)

	const callers = 8
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mods  [callers]*Module
		errs  [callers]error
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			mods[i], errs[i] = h.Compile(context.Background(), digest, okModule)
		})
	}
	close(start)
	wg.Wait()

	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if mods[i] != mods[0] {
			t.Errorf("caller %d got a different *Module", i)
		}
	}
	if n := h.compiles.Load(); n != 1 {
		t.Errorf("compiled %d times, want 1", n)
	}
	m, err := h.Compile(context.Background(), digest, okModule)
	if err != nil || m != mods[0] {
		t.Fatalf("later Compile = %p, %v; want the cached module", m, err)
	}
	if n := h.compiles.Load(); n != 1 {
		t.Errorf("compiled %d times after a cached call, want 1", n)
	}
	if m.Digest() != digest || m.Size() != len(okModule) {
		t.Errorf("Module = %s, %d bytes; want %s, %d", m.Digest(), m.Size(), digest, len(okModule))
	}
}

func TestCompileDigest(t *testing.T) {
	h := newHost(t)
	other := Digest(trapModule)
	for name, tc := range map[string]struct {
		digest  string
		wantErr string
		is      error
	}{
		"mismatch":        {other, "digest mismatch", ErrDigestMismatch},
		"no algorithm":    {strings.TrimPrefix(Digest(okModule), "sha256:"), "malformed digest", nil},
		"sha512":          {"sha512:" + strings.TrimPrefix(Digest(okModule), "sha256:"), "malformed digest", nil},
		"short":           {Digest(okModule)[:20], "malformed digest", nil},
		"uppercase hex":   {"sha256:" + strings.ToUpper(strings.TrimPrefix(Digest(okModule), "sha256:")), "malformed digest", nil},
		"not hex":         {"sha256:" + strings.Repeat("zz", 32), "malformed digest", nil},
		"empty":           {"", "malformed digest", nil},
		"trailing junk":   {Digest(okModule) + "00", "malformed digest", nil},
		"digest of other": {Digest(loopModule), "digest mismatch", ErrDigestMismatch},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.Compile(context.Background(), tc.digest, okModule)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Compile error = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Compile error %q is not %v", err, tc.is)
			}
		})
	}
	if n := h.compiles.Load(); n != 0 {
		t.Errorf("compiled %d times, want 0: the digest is checked first", n)
	}
	// A failed call leaves nothing behind: the right digest compiles.
	if _, err := h.Compile(context.Background(), Digest(okModule), okModule); err != nil {
		t.Fatal(err)
	}
}

func TestCompileFailureIsNotCached(t *testing.T) {
	h := newHost(t)
	bad := []byte("not wasm")
	for range 2 {
		if _, err := h.Compile(context.Background(), Digest(bad), bad); !errors.Is(err, ErrInvalidModule) {
			t.Fatalf("Compile = %v, want ErrInvalidModule", err)
		}
	}
	h.mu.Lock()
	n := len(h.modules)
	h.mu.Unlock()
	if n != 0 {
		t.Errorf("%d entries cached after failed compiles, want 0", n)
	}
}

// A second Host on the same CacheDir loads the compiled code from disk: it
// serves requests, and it writes no new cache entry (a cold compile would).
func TestCompilationCacheDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	h1, err := New(ctx, Config{CacheDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustCompile(t, h1, okModule)
	if err := h1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	entries := cacheEntries(t, dir)
	if len(entries) == 0 {
		t.Fatal("no compilation cache entry written")
	}

	h2, err := New(ctx, Config{CacheDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close(ctx)
	m := mustCompile(t, h2, okModule)
	rec := do(mustHandler(t, h2, m, HTTPConfig{Name: "tiny"}), http.MethodGet, "/", nil)
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Fatalf("second host: %d %q", rec.Code, rec.Body)
	}
	if after := cacheEntries(t, dir); len(after) != len(entries) {
		t.Errorf("cache entries %v after the second host compiled, want unchanged %v (a cache hit)", after, entries)
	}
}

func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(p, dir))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestClosedHost(t *testing.T) {
	ctx := context.Background()
	h, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := mustCompile(t, h, okModule)
	handler := mustHandler(t, h, m, HTTPConfig{})
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := h.Compile(ctx, Digest(trapModule), trapModule); !errors.Is(err, ErrClosed) {
		t.Errorf("Compile after Close = %v, want ErrClosed", err)
	}
	if rec := do(handler, http.MethodGet, "/", nil); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("request after Close: %d, want 503", rec.Code)
	}
}

func TestNewBadCacheDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), Config{CacheDir: file}); err == nil {
		t.Fatal("New with a regular file as CacheDir succeeded")
	}
}

func TestHTTPHandlerForeignModule(t *testing.T) {
	h1, h2 := newHost(t), newHost(t)
	m := mustCompile(t, h1, okModule)
	defer func() {
		if recover() == nil {
			t.Error("HTTPHandler with another Host's module did not panic")
		}
	}()
	h2.HTTPHandler(m, HTTPConfig{})
}

// Closing the Host ends instances that wait in poll_oneoff: a request gets
// 503, a listener returns ErrClosed.
func TestCloseWhileWaiting(t *testing.T) {
	h, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	sleeper := mustHandler(t, h, mustCompile(t, h, pollModule(pollSub{fd: -1, timeout: time.Hour})), HTTPConfig{MaxRequestTime: time.Hour})
	listener := mustCompile(t, h, pollModule(pollSub{fd: 3}))
	code := make(chan int, 1)
	go func() { code <- do(sleeper, http.MethodGet, "/", nil).Code }()
	listening := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- h.RunListener(context.Background(), listener, ListenerConfig{Addr: "127.0.0.1:0", OnListening: func() { close(listening) }})
	}()
	<-listening
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := <-code; c != http.StatusServiceUnavailable {
		t.Errorf("sleeping request after Close: %d, want 503", c)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("listener after Close: %v, want ErrClosed", err)
	}
}
