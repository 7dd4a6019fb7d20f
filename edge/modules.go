package edge

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/wasmhost"
)

// moduleCache keeps downloaded modules on disk by digest. Every read is
// verified against the digest, so a corrupted file is refetched, not run.
type moduleCache struct{ dir string }

func newModuleCache(dir string) (*moduleCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("edge: module cache: %w", err)
	}
	return &moduleCache{dir: dir}, nil
}

func (c *moduleCache) path(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if _, err := hex.DecodeString(h); !ok || err != nil || len(h) != 64 {
		return "", fmt.Errorf("edge: malformed module digest %q", digest)
	}
	return filepath.Join(c.dir, h), nil
}

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
		return nil, err
	}
	return b, nil
}

func (c *moduleCache) put(digest string, b []byte) error {
	if err := checkDigest(digest, b); err != nil {
		return err
	}
	p, err := c.path(digest)
	if err != nil {
		return err
	}
	return fsutil.WriteFileSync(p, b, 0o600)
}

func checkDigest(digest string, b []byte) error {
	if got := wasmhost.Digest(b); got != digest {
		return fmt.Errorf("edge: module bytes hash to %s, expected %s", got, digest)
	}
	return nil
}
