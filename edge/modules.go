package edge

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/wasmhost"
)

// moduleCache keeps downloaded modules on disk by digest, within a byte
// budget. A download goes to <hex>.part and resumes from that file's size
// after a broken link; only when the whole file hashes to its digest is it
// renamed to <hex> and used. Every read is verified again, so a file
// corrupted on disk is refetched, not run.
//
// Past the budget, the least recently used modules that no current
// allocation references are removed (partial downloads count and go the
// same way). Use is a logical clock, not wall time; across restarts the
// order comes from the files' modification times, which a use refreshes.
type moduleCache struct {
	dir    string
	budget int64
	log    *slog.Logger

	mu      sync.Mutex
	entries map[string]*cacheEntry   // by digest
	inUse   map[string]bool          // digests current allocations reference
	clock   uint64                   // last logical use time handed out
	locks   map[string]chan struct{} // one download per digest at a time

	// hits and misses count fetches served from disk and those that
	// downloaded (metrics.go).
	hits, misses atomic.Int64
}

// cacheEntry is one digest's bytes on disk: the module, or a partial
// download of it.
type cacheEntry struct {
	digest  string
	size    int64
	used    uint64 // logical time of the last use; larger is more recent
	partial bool
}

const partialSuffix = ".part"

// maxModuleSize bounds a module the agent downloads.
const maxModuleSize = 256 << 20

// errModuleCorrupt: the downloaded bytes do not hash to the digest asked for.
var errModuleCorrupt = errors.New("edge: downloaded module does not match its digest")

// errDownloadRefused: the server answered with an error instead of bytes.
var errDownloadRefused = errors.New("edge: server refused the module download")

func newModuleCache(dir string, budget int64, log *slog.Logger) (*moduleCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("edge: module cache: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &moduleCache{dir: dir, budget: budget, log: log, entries: map[string]*cacheEntry{},
		inUse: map[string]bool{}, locks: map[string]chan struct{}{}}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("edge: module cache: %w", err)
	}
	type found struct {
		e     *cacheEntry
		mtime time.Time
	}
	var files []found
	for _, de := range des {
		name, partial := strings.CutSuffix(de.Name(), partialSuffix)
		if b, err := hex.DecodeString(name); err != nil || len(b) != sha256.Size || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		digest := "sha256:" + name
		if old := c.entries[digest]; old != nil {
			// Both the module and a partial: the partial is left over.
			os.Remove(filepath.Join(dir, name+partialSuffix))
			if partial {
				continue
			}
			old.partial, old.size = false, fi.Size()
			continue
		}
		e := &cacheEntry{digest: digest, size: fi.Size(), partial: partial}
		c.entries[digest] = e
		files = append(files, found{e, fi.ModTime()})
	}
	slices.SortFunc(files, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	for _, f := range files {
		c.clock++
		f.e.used = c.clock
	}
	// No eviction yet: until the agent's first reconcile says which
	// modules its restored allocations use, any of them may be needed.
	return c, nil
}

func (c *moduleCache) path(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if _, err := hex.DecodeString(h); !ok || err != nil || len(h) != 64 {
		return "", fmt.Errorf("edge: malformed module digest %q", digest)
	}
	return filepath.Join(c.dir, h), nil
}

// get returns a cached module's bytes, verified, and marks it used.
func (c *moduleCache) get(digest string) ([]byte, error) {
	p, err := c.path(digest)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if err := checkDigest(digest, b); err != nil {
		os.Remove(p)
		c.mu.Lock()
		delete(c.entries, digest)
		c.mu.Unlock()
		return nil, err
	}
	c.touch(digest, int64(len(b)), false)
	now := time.Now()
	os.Chtimes(p, now, now) // the LRU order across restarts
	return b, nil
}

// put stores a complete module (tests, and modules that arrive whole).
func (c *moduleCache) put(digest string, b []byte) error {
	if err := checkDigest(digest, b); err != nil {
		return err
	}
	p, err := c.path(digest)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileSync(p, b, 0o600); err != nil {
		return err
	}
	c.touch(digest, int64(len(b)), false)
	c.evict(digest)
	return nil
}

// touch records a use of digest's bytes on disk.
func (c *moduleCache) touch(digest string, size int64, partial bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[digest]
	if e == nil {
		e = &cacheEntry{digest: digest}
		c.entries[digest] = e
	}
	c.clock++
	e.used, e.size, e.partial = c.clock, size, partial
}

// setInUse replaces the set of digests current allocations reference;
// they are never evicted. Modules no allocation needs any more may now go.
func (c *moduleCache) setInUse(digests map[string]bool) {
	c.mu.Lock()
	c.inUse = digests
	c.mu.Unlock()
	c.evict("")
}

// evict removes least recently used entries until the cache is within
// its budget, sparing the digests in use and keep.
func (c *moduleCache) evict(keep string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictLocked(keep)
}

func (c *moduleCache) evictLocked(keep string) {
	entries := make([]cacheEntry, 0, len(c.entries))
	for _, e := range c.entries {
		entries = append(entries, *e)
	}
	spare := func(d string) bool {
		l := c.locks[d]
		return d == keep || c.inUse[d] || (l != nil && len(l) > 0) // or being downloaded
	}
	victims, total := evictions(entries, c.budget, spare)
	for _, d := range victims {
		p, _ := c.path(d)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("evicting module", "digest", d, "err", err)
		}
		os.Remove(p + partialSuffix)
		c.log.Info("module evicted from the cache", "digest", d, "size", c.entries[d].size)
		delete(c.entries, d)
	}
	if total > c.budget {
		c.log.Warn("module cache over its budget: the rest is in use", "bytes", total, "budget", c.budget)
	}
}

// evictions chooses what to remove so that entries fit in budget: least
// recently used first, never one that spare names. It returns the
// digests to remove and the total left.
func evictions(entries []cacheEntry, budget int64, spare func(digest string) bool) ([]string, int64) {
	var total int64
	for _, e := range entries {
		total += e.size
	}
	if total <= budget {
		return nil, total
	}
	slices.SortFunc(entries, func(a, b cacheEntry) int {
		return cmp.Or(cmp.Compare(a.used, b.used), strings.Compare(a.digest, b.digest))
	})
	var out []string
	for _, e := range entries {
		if total <= budget {
			break
		}
		if spare(e.digest) {
			continue
		}
		out = append(out, e.digest)
		total -= e.size
	}
	return out, total
}

// lock takes digest's download lock, so two allocations with the same
// module fetch it once.
func (c *moduleCache) lock(ctx context.Context, digest string) (unlock func(), err error) {
	c.mu.Lock()
	l := c.locks[digest]
	if l == nil {
		l = make(chan struct{}, 1)
		c.locks[digest] = l
	}
	c.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// opener starts a download of digest from offset: the server's header
// and a stream of the bytes from header.Offset on, which the caller closes.
type opener func(ctx context.Context, digest string, offset int64) (wire.ModuleHeader, io.ReadCloser, error)

// maxStalledAttempts bounds download attempts in a row that add no byte.
const maxStalledAttempts = 3

// fetch returns digest's bytes from the cache, downloading what is
// missing through open. A broken download resumes from what reached the
// disk, as long as each attempt makes progress.
func (c *moduleCache) fetch(ctx context.Context, digest string, open opener) ([]byte, error) {
	if b, err := c.get(digest); err == nil {
		c.hits.Add(1)
		return b, nil
	}
	unlock, err := c.lock(ctx, digest)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if b, err := c.get(digest); err == nil {
		c.hits.Add(1)
		return b, nil // downloaded while we waited
	}
	c.misses.Add(1)
	stalls := 0
	for {
		n, err := c.download(ctx, digest, open)
		if err == nil {
			return c.get(digest)
		}
		if ctx.Err() != nil || errors.Is(err, errModuleCorrupt) || errors.Is(err, errDownloadRefused) {
			return nil, err
		}
		if n > 0 {
			stalls = 0
		} else if stalls++; stalls >= maxStalledAttempts {
			return nil, err
		}
		c.log.Info("module download interrupted; resuming", "digest", digest, "err", err)
	}
}

// download makes one attempt: it asks for the bytes the partial file
// lacks and appends them; once the file is whole it is verified and
// becomes the cached module. n is how many bytes this attempt added.
func (c *moduleCache) download(ctx context.Context, digest string, open opener) (n int64, err error) {
	final, err := c.path(digest)
	if err != nil {
		return 0, err
	}
	part := final + partialSuffix
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("edge: module download: %w", err)
	}
	defer f.Close()
	offset, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	defer func() {
		if _, serr := os.Stat(part); serr == nil {
			c.touch(digest, offset+n, true)
		}
	}()
	hdr, body, err := open(ctx, digest, offset)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", digest, err)
	}
	defer body.Close()
	switch {
	case hdr.Error != "" && offset > 0 && hdr.Size > 0 && offset > hdr.Size:
		// Longer than the module: not a prefix of it. Start over.
		os.Remove(part)
		return 0, fmt.Errorf("download %s: partial file of %d bytes is longer than the module (%d); discarded", digest, offset, hdr.Size)
	case hdr.Error != "":
		return 0, fmt.Errorf("%w: %s: %s", errDownloadRefused, digest, hdr.Error)
	case hdr.Size < 0 || hdr.Size > maxModuleSize:
		return 0, fmt.Errorf("%w: %s: size %d out of range", errDownloadRefused, digest, hdr.Size)
	case hdr.Offset == 0 && offset > 0:
		// A server that does not resume sends it all again.
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		if offset, err = f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
	case hdr.Offset != offset:
		return 0, fmt.Errorf("download %s: asked for bytes from %d, the server sent from %d", digest, offset, hdr.Offset)
	}
	n, err = io.Copy(f, io.LimitReader(body, hdr.Size-offset))
	if err == nil && offset+n < hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, fmt.Errorf("download %s: %d of %d bytes: %w", digest, offset+n, hdr.Size, err)
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := verifyFile(f, digest); err != nil {
		os.Remove(part)
		c.mu.Lock()
		delete(c.entries, digest)
		c.mu.Unlock()
		return n, fmt.Errorf("%w: %v; the download was discarded", errModuleCorrupt, err)
	}
	if err := os.Rename(part, final); err != nil {
		return n, err
	}
	if err := fsutil.SyncDir(c.dir); err != nil {
		return n, err
	}
	c.touch(digest, hdr.Size, false)
	c.evict(digest)
	return n, nil
}

// verifyFile hashes the whole file and compares it with digest.
func verifyFile(f *os.File, digest string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("module bytes hash to %s, expected %s", got, digest)
	}
	return nil
}

func checkDigest(digest string, b []byte) error {
	if got := wasmhost.Digest(b); got != digest {
		return fmt.Errorf("edge: module bytes hash to %s, expected %s", got, digest)
	}
	return nil
}
