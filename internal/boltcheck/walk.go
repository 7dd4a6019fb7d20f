package boltcheck

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Page layout (bbolt's internal/common): a 16-byte header (id u64,
// flags u16, count u16, overflow u32), then count 16-byte elements, then
// the keys and values they point at.
const (
	flagBranch   = 0x01
	flagLeaf     = 0x02
	bucketLeaf   = 0x01 // a leaf element whose value is a bucket
	elemSize     = 16
	bucketHeader = 16 // root pgid u64, sequence u64
	offRoot      = 16 // the root bucket's root pgid, within the meta
	maxDepth     = 64 // deeper than any real tree: a cycle or garbage
)

// walker visits every page reachable from the root bucket, checking
// each page's header and the bounds of every element, without trusting
// any of it: all reads are bounds-checked, so damage is an error, never
// a panic (bbolt panics on such pages, some of them in goroutines of its
// own where no recover can catch it).
type walker struct {
	r        io.ReaderAt
	path     string
	pageSize int64
	hwm      uint64 // the meta's high-water mark: pages in use are below it
	seen     map[uint64]bool
}

func (w *walker) errf(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, w.path, fmt.Sprintf(format, args...))
}

// page reads page id with its overflow pages and checks its header.
func (w *walker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, w.errf("page %d is outside the pages in use (2..%d)", id, w.hwm-1)
	}
	if w.seen[id] {
		return nil, w.errf("page %d is referenced twice", id)
	}
	w.seen[id] = true
	hdr := make([]byte, pageHeader)
	if _, err := w.r.ReadAt(hdr, int64(id)*w.pageSize); err != nil {
		return nil, w.errf("reading page %d: %v", id, err)
	}
	if got := binary.LittleEndian.Uint64(hdr); got != id {
		return nil, w.errf("page %d identifies itself as page %d", id, got)
	}
	overflow := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if id+overflow >= w.hwm {
		return nil, w.errf("page %d overflows past the pages in use (%d more pages)", id, overflow)
	}
	for o := id + 1; o <= id+overflow; o++ {
		w.seen[o] = true
	}
	buf := make([]byte, int64(overflow+1)*w.pageSize)
	if _, err := w.r.ReadAt(buf, int64(id)*w.pageSize); err != nil {
		return nil, w.errf("reading page %d: %v", id, err)
	}
	return buf, nil
}

// node checks a branch or leaf page's elements (buf is the page, inline
// or not) and visits what they point at.
func (w *walker) node(buf []byte, where string, depth int) error {
	if depth > maxDepth {
		return w.errf("%s: the tree is deeper than %d levels", where, maxDepth)
	}
	if len(buf) < pageHeader {
		return w.errf("%s: %d bytes, shorter than a page header", where, len(buf))
	}
	flags := binary.LittleEndian.Uint16(buf[8:])
	count := int(binary.LittleEndian.Uint16(buf[10:]))
	if flags != flagBranch && flags != flagLeaf {
		return w.errf("%s: flags %#x, want a branch or a leaf page", where, flags)
	}
	if pageHeader+count*elemSize > len(buf) {
		return w.errf("%s: %d elements do not fit in %d bytes", where, count, len(buf))
	}
	for i := range count {
		off := pageHeader + i*elemSize
		e := buf[off : off+elemSize]
		if flags == flagBranch {
			pos, ksize := int(binary.LittleEndian.Uint32(e)), int(binary.LittleEndian.Uint32(e[4:]))
			if off+pos+ksize > len(buf) || off+pos < 0 {
				return w.errf("%s: branch element %d points outside its page", where, i)
			}
			if err := w.tree(binary.LittleEndian.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		eflags := binary.LittleEndian.Uint32(e)
		pos := int(binary.LittleEndian.Uint32(e[4:]))
		ksize := int(binary.LittleEndian.Uint32(e[8:]))
		vsize := int(binary.LittleEndian.Uint32(e[12:]))
		start, end := off+pos+ksize, off+pos+ksize+vsize
		if pos < 0 || ksize < 0 || vsize < 0 || end > len(buf) || end < start {
			return w.errf("%s: leaf element %d points outside its page", where, i)
		}
		if eflags&bucketLeaf != 0 {
			if err := w.bucket(buf[start:end], fmt.Sprintf("%s, bucket %q", where, buf[off+pos:start]), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// tree visits the page id and what it points at.
func (w *walker) tree(id uint64, depth int) error {
	buf, err := w.page(id)
	if err != nil {
		return err
	}
	return w.node(buf, fmt.Sprintf("page %d", id), depth)
}

// bucket visits a bucket's tree: its root page, or its inline page.
func (w *walker) bucket(v []byte, where string, depth int) error {
	if len(v) < bucketHeader {
		return w.errf("%s: bucket header is %d bytes", where, len(v))
	}
	if root := binary.LittleEndian.Uint64(v); root != 0 {
		return w.tree(root, depth)
	}
	return w.node(v[bucketHeader:], where+" (inline)", depth)
}
