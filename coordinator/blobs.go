package coordinator

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/wasmhost"
)

// blobStore keeps module bytes content-addressed on disk:
// <dir>/sha256/<hex>. A blob is written once, fsynced, and never changed;
// collect deletes the blobs no module version names.
type blobStore struct {
	dir string

	mu   sync.Mutex
	held map[string]int // digests being pushed: collect keeps them
}

func newBlobStore(dir string) (*blobStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: module store: %w", err)
	}
	// Uploads a crash interrupted (blobs_upload.go) are never adopted.
	if left, err := filepath.Glob(filepath.Join(dir, "upload-*.tmp")); err == nil {
		for _, p := range left {
			os.Remove(p)
		}
	}
	return &blobStore{dir: dir, held: map[string]int{}}, nil
}

// hold keeps a digest's blob from collection until release is called: a
// push writes the blob before the state names it.
func (b *blobStore) hold(digest string) (release func()) {
	b.mu.Lock()
	b.held[digest]++
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		if b.held[digest]--; b.held[digest] <= 0 {
			delete(b.held, digest)
		}
		b.mu.Unlock()
	}
}

// collect deletes every blob whose digest is not in what named returns
// and that no push or copy holds, and returns the digests it deleted.
// named is read under the store's lock: a blob written since is held by
// its writer until this server's state names it.
func (b *blobStore) collect(named func() (map[string]bool, error)) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep, err := named()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(b.dir, "sha256"))
	if err != nil {
		return nil, fmt.Errorf("coordinator: module store: %w", err)
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		digest := "sha256:" + e.Name()
		if e.IsDir() || keep[digest] || b.held[digest] > 0 {
			continue
		}
		if _, err := b.path(digest); err != nil {
			continue // not a blob (a temporary file of a write in progress)
		}
		if err := os.Remove(filepath.Join(b.dir, "sha256", e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, digest)
	}
	return deleted, errors.Join(errs...)
}

// blobGC deletes, on this server, the module blobs no module version
// names: after a batch that deleted module versions or collected garbage
// (every server applies it, so every server collects), after a snapshot
// was restored, and once at start. Run owns its goroutine; kick never
// blocks.
type blobGC struct {
	store *state.Store
	blobs *blobStore
	log   *slog.Logger
	kicks chan struct{}
	// after: collect nothing until the state has applied this index. A
	// state rebuilt at start (openState) names only the snapshot's
	// modules until the log is replayed; a sweep before would delete
	// blobs that later entries name.
	after uint64

	mu   sync.Mutex
	done chan struct{} // closed after the next collection
}

func newBlobGC(store *state.Store, blobs *blobStore, log *slog.Logger) *blobGC {
	return &blobGC{store: store, blobs: blobs, log: log, kicks: make(chan struct{}, 1), done: make(chan struct{})}
}

// swept returns a channel closed once the next collection is over.
func (g *blobGC) swept() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done
}

// kick asks for a collection.
func (g *blobGC) kick() {
	select {
	case g.kicks <- struct{}{}:
	default:
	}
}

// Run collects once, then on every kick, until ctx ends.
func (g *blobGC) Run(ctx context.Context) {
	for {
		ch := g.store.Watch()
		if g.store.Index() >= g.after {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
	for {
		g.sweep()
		select {
		case <-ctx.Done():
			return
		case <-g.kicks:
		}
	}
}

func (g *blobGC) sweep() {
	deleted, err := g.blobs.collect(func() (map[string]bool, error) {
		mods, err := g.store.Modules()
		named := make(map[string]bool, len(mods))
		for _, m := range mods {
			named[m.Digest] = true
		}
		return named, err
	})
	if err != nil {
		g.log.Error("collecting module blobs", "err", err)
	}
	if len(deleted) > 0 {
		g.log.Info("module blobs no version names deleted", "blobs", len(deleted))
	}
	g.mu.Lock()
	close(g.done)
	g.done = make(chan struct{})
	g.mu.Unlock()
}

// Digest returns "sha256:<hex>" of b (the module digest, as wasmhost computes it).
func Digest(b []byte) string { return wasmhost.Digest(b) }

func (b *blobStore) path(digest string) (string, error) {
	hexPart, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexPart) != 64 {
		return "", fmt.Errorf("coordinator: malformed digest %q (want sha256:<64 hex digits>)", digest)
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return "", fmt.Errorf("coordinator: malformed digest %q: %v", digest, err)
	}
	return filepath.Join(b.dir, "sha256", hexPart), nil
}

// Put stores data and returns its digest. Storing the same bytes twice is a no-op.
func (b *blobStore) Put(data []byte) (string, error) {
	d := Digest(data)
	p, _ := b.path(d)
	if fi, err := os.Stat(p); err == nil && fi.Size() == int64(len(data)) {
		return d, nil
	}
	if err := fsutil.WriteFileSync(p, data, 0o600); err != nil {
		return "", fmt.Errorf("coordinator: store module %s: %w", d, err)
	}
	return d, nil
}

// Open returns the blob with its size. A blob whose bytes no longer match
// its digest is reported, never served.
func (b *blobStore) Open(digest string) (io.ReadSeekCloser, int64, error) {
	p, err := b.path(digest)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("coordinator: module %s is not stored on this server", digest)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Has reports whether the blob is stored.
func (b *blobStore) Has(digest string) bool {
	p, err := b.path(digest)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// blobCopier copies module blobs between servers: a module is pushed to
// one server and stored there; another copies it from a peer when one of
// its agents asks for it (server RPC "blob": the header, then the bytes).
type blobCopier struct {
	blobs  *blobStore
	rpc    *rpcClient
	others func() ([]string, error) // the other servers' Raft addresses
}

// fetch copies a blob this server lacks from another server; the copy
// is held from collection while it is written.
func (b *blobCopier) fetch(ctx context.Context, digest string) error {
	release := b.blobs.hold(digest)
	defer release()
	peers, err := b.others()
	if err != nil {
		return err
	}
	var errs []error
	for _, addr := range peers {
		if err := b.fetchFrom(ctx, addr, digest); err != nil {
			errs = append(errs, err)
			continue
		}
		return nil
	}
	return fmt.Errorf("module %s is on no reachable server: %w", digest, errors.Join(errs...))
}

func (b *blobCopier) fetchFrom(ctx context.Context, addr, digest string) error {
	c, err := b.rpc.dial(ctx, addr, "blob", digest)
	if err != nil {
		return err
	}
	defer c.Close()
	dec := json.NewDecoder(c)
	var resp rpcResponse
	if err := dec.Decode(&resp); err != nil {
		return err
	}
	if resp.Error != "" {
		return fmt.Errorf("server %s: %s", addr, resp.Error)
	}
	if resp.Size < 0 || resp.Size > MaxModuleSize {
		return fmt.Errorf("server %s: module size %d out of range", addr, resp.Size)
	}
	// json.Encoder ends the header with a newline, which the decoder
	// leaves unread: the module's bytes start after it.
	r := io.MultiReader(dec.Buffered(), c)
	var nl [1]byte
	if _, err := io.ReadFull(r, nl[:]); err != nil || nl[0] != '\n' {
		return fmt.Errorf("server %s: module %s: no newline after the header (%q, %v)", addr, digest, nl[0], err)
	}
	data := make([]byte, resp.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return fmt.Errorf("server %s: module %s: %w", addr, digest, err)
	}
	if got := Digest(data); got != digest {
		return fmt.Errorf("server %s sent bytes hashing to %s for %s", addr, got, digest)
	}
	_, err = b.blobs.Put(data)
	return err
}

// serveRPC is the server RPC "blob": the blob's size, then its bytes.
func (b *blobCopier) serveRPC(c net.Conn, body json.RawMessage, reply func(any, error)) {
	var digest string
	json.Unmarshal(body, &digest)
	f, size, err := b.blobs.Open(digest)
	if err != nil {
		reply(nil, err)
		return
	}
	defer f.Close()
	json.NewEncoder(c).Encode(rpcResponse{Size: size})
	io.Copy(c, f)
}
