package boltcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// ErrCorrupt is wrapped by every error Preflight returns for a bad file.
var ErrCorrupt = errors.New("corrupt bbolt file")

const (
	magic       = 0xED0CDAED
	pageHeader  = 16 // id u64, flags u16, count u16, overflow u32
	metaSize    = 64 // magic, version, pageSize, flags, root(16), freelist, pgid, txid, checksum
	offPageSize = 8
	offPgid     = 40
	offTxid     = 48
	offChecksum = 56
	maxPageSize = 1 << 20
)

type meta struct {
	pageSize uint32
	root     uint64 // the root bucket's root page
	pgid     uint64
	txid     uint64
}

// Preflight checks path. A missing file is fine (bbolt creates it); an
// existing one must have a valid meta page whose high-water mark fits in
// the file, and every page reachable from its root must be a well-formed
// branch or leaf page whose elements stay inside it (walk.go). It reads
// the tree's pages once: its cost is that of reading the file.
func Preflight(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return fmt.Errorf("%w: %s is empty", ErrCorrupt, path)
	}
	m0, err0 := readMeta(f, 0)
	var best *meta
	if err0 == nil {
		best = m0
	}
	if err0 == nil || m0 != nil {
		ps := int64(4096)
		if m0 != nil {
			ps = int64(m0.pageSize)
		}
		if m1, err1 := readMeta(f, ps); err1 == nil && (best == nil || m1.txid > best.txid) {
			best = m1
		}
	}
	if best == nil {
		return fmt.Errorf("%w: %s has no valid meta page (%v): not a bbolt file, or its header is damaged", ErrCorrupt, path, err0)
	}
	if need := int64(best.pgid) * int64(best.pageSize); size < need {
		return fmt.Errorf("%w: %s is truncated: %d bytes, its header says %d", ErrCorrupt, path, size, need)
	}
	w := &walker{r: f, path: path, pageSize: int64(best.pageSize), hwm: best.pgid, seen: map[uint64]bool{}}
	return w.tree(best.root, 0)
}

// readMeta reads the meta page at off. It returns the decoded meta even
// when the checksum fails (so the page size can locate the second copy),
// together with the error.
func readMeta(r io.ReaderAt, off int64) (*meta, error) {
	buf := make([]byte, pageHeader+metaSize)
	if _, err := r.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("reading meta page at %d: %w", off, err)
	}
	b := buf[pageHeader:]
	if binary.LittleEndian.Uint32(b) != magic {
		return nil, fmt.Errorf("bad magic at offset %d", off)
	}
	m := &meta{
		pageSize: binary.LittleEndian.Uint32(b[offPageSize:]),
		root:     binary.LittleEndian.Uint64(b[offRoot:]),
		pgid:     binary.LittleEndian.Uint64(b[offPgid:]),
		txid:     binary.LittleEndian.Uint64(b[offTxid:]),
	}
	if m.pageSize < 512 || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return nil, fmt.Errorf("implausible page size %d", m.pageSize)
	}
	h := fnv.New64a()
	h.Write(b[:offChecksum])
	if h.Sum64() != binary.LittleEndian.Uint64(b[offChecksum:]) {
		return m, fmt.Errorf("meta page at offset %d fails its checksum", off)
	}
	return m, nil
}
