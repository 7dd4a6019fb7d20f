package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/spec"
)

// upload is a module pushed to this server, streamed to a temporary file
// in the module store's directory and hashed while written (ingest), so
// a push costs no memory in proportion to its size and one over the
// limit is cut when it passes it.
type upload struct {
	path   string
	digest string
	size   int64
}

// ingest streams r into a temporary file under the store's directory,
// at most limit bytes: past it, the write stops and the upload is
// refused (tooLarge, 413). The caller adopts the upload or discards it.
func (b *blobStore) ingest(r io.Reader, limit int64) (*upload, error) {
	f, err := os.CreateTemp(b.dir, "upload-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("coordinator: module store: %w", err)
	}
	u := &upload{path: f.Name()}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = tooLarge{what: "the module", limit: limit}
	} else if err != nil {
		err = badRequest{fmt.Errorf("reading the module: %w", err)}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(u.path)
		return nil, err
	}
	u.size, u.digest = n, "sha256:"+hex.EncodeToString(h.Sum(nil))
	return u, nil
}

// discard removes the upload's file, if it was not adopted.
func (u *upload) discard() { os.Remove(u.path) }

// bytes maps the upload's file read-only: its pages are the file's, not
// the heap's (a validator reads what it needs of them). unmap ends it.
func (u *upload) bytes() (data []byte, unmap func(), err error) {
	if u.size == 0 {
		return nil, func() {}, nil
	}
	f, err := os.Open(u.path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err = syscall.Mmap(int(f.Fd()), 0, int(u.size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("coordinator: map the pushed module: %w", err)
	}
	return data, func() { syscall.Munmap(data) }, nil
}

// adopt moves the upload into the store under its digest (a no-op if
// the blob is there already).
func (b *blobStore) adopt(u *upload) error {
	p, err := b.path(u.digest)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(p); err == nil && fi.Size() == u.size {
		u.discard()
		return nil
	}
	if err := os.Rename(u.path, p); err != nil {
		return fmt.Errorf("coordinator: store module %s: %w", u.digest, err)
	}
	return fsutil.SyncDir(filepath.Dir(p))
}

// pushModuleFrom streams a module from r (the HTTP body) into the store
// and registers it: pushModule without holding it in memory.
func (s *registrar) pushModuleFrom(ctx context.Context, name, version string, r io.Reader) (*structs.Module, uint64, error) {
	if err := spec.ValidModuleName(name); err != nil {
		return nil, 0, badRequest{err}
	}
	if err := spec.ValidVersion(version); err != nil {
		return nil, 0, badRequest{err}
	}
	u, err := s.blobs.ingest(r, MaxModuleSize)
	if err != nil {
		return nil, 0, err
	}
	defer u.discard()
	data, unmap, err := u.bytes()
	if err != nil {
		return nil, 0, err
	}
	defer unmap()
	return s.registerModule(ctx, name, version, u, data)
}
