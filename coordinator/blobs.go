package coordinator

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/wasmhost"
)

// blobStore keeps module bytes content-addressed on disk:
// <dir>/sha256/<hex>. A blob is written once, fsynced, and never changed.
type blobStore struct {
	dir string
}

func newBlobStore(dir string) (*blobStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: module store: %w", err)
	}
	return &blobStore{dir: dir}, nil
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
