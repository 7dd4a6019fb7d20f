package wasmhost

import "slices"

// coalesceData returns b with its data segments merged where that changes
// nothing a module can observe, or b itself when it cannot tell.
//
// wazero evaluates every active data segment's offset expression at every
// instantiation, allocating as it goes, and the Go linker writes tens of
// thousands of small segments (27,794 in examples/hello: it starts a new one
// at every run of zero bytes): that was a third of the cost of instantiating
// a Go module, in http mode a third of every request. Merged, adjacent
// segments (at most maxDataGap zero bytes apart, the zeros written out) make a
// few hundred.
//
// Only modules whose every segment is active, for memory 0, at an i32.const
// offset, are rewritten, and only while offsets increase without overlap (a
// later segment overwriting an earlier one stays a separate segment, in
// order). A module with a DataCount section (bulk memory: memory.init and
// data.drop name segments by index) is left alone. Gaps are filled with the
// bytes the memory already holds there (zeros, or what an earlier merged
// segment wrote: gapBytes), within the span the original segments covered,
// so bounds do not change either.
func coalesceData(b []byte) []byte {
	r := &reader{b: b, off: 8}
	var dataStart, dataEnd int // the data section, id and size included
	var segs []segment
	for r.off < len(r.b) {
		start := r.off
		id := r.byte()
		size := r.u32()
		if r.err != nil || size > uint32(len(r.b)-r.off) {
			return b
		}
		end := r.off + int(size)
		switch id {
		case 12: // DataCount: segments are referred to by index
			return b
		case 11:
			sec := &reader{b: r.b[:end], off: r.off}
			n := sec.u32()
			if n < 2 {
				return b
			}
			segs = make([]segment, 0, n)
			for range n {
				flags := sec.u32()
				if flags == 2 && sec.u32() != 0 { // explicit memory index
					return b
				}
				if flags != 0 && flags != 2 {
					return b // passive
				}
				if sec.byte() != 0x41 { // i32.const
					return b
				}
				offset := sec.s32()
				if sec.byte() != 0x0b { // end
					return b
				}
				l := sec.u32()
				if sec.err != nil || l > uint32(end-sec.off) {
					return b
				}
				segs = append(segs, segment{offset: uint32(offset), data: sec.b[sec.off : sec.off+int(l)]})
				sec.off += int(l)
			}
			if sec.err != nil || sec.off != end {
				return b
			}
			dataStart, dataEnd = start, end
		}
		r.off = end
	}
	if segs == nil {
		return b
	}

	const maxDataGap = 4096
	var merged []segment
	for _, s := range segs {
		if len(merged) > 0 {
			last := &merged[len(merged)-1]
			lastEnd := uint64(last.offset) + uint64(len(last.data))
			if uint64(s.offset) >= lastEnd && uint64(s.offset)-lastEnd <= maxDataGap {
				last.data = append(last.data, gapBytes(merged[:len(merged)-1], lastEnd, uint64(s.offset))...)
				last.data = append(last.data, s.data...)
				continue
			}
		}
		if len(merged) == maxMergedSegments {
			return b // too scattered to be worth merging
		}
		merged = append(merged, segment{offset: s.offset, data: slices.Clip(slices.Clone(s.data))})
	}
	if len(merged) == len(segs) {
		return b
	}

	var sec []byte
	sec = append(sec, uleb32(uint32(len(merged)))...)
	for _, s := range merged {
		sec = append(sec, 0x00, 0x41)
		sec = append(sec, sleb32(int32(s.offset))...)
		sec = append(sec, 0x0b)
		sec = append(sec, uleb32(uint32(len(s.data)))...)
		sec = append(sec, s.data...)
	}
	out := make([]byte, 0, len(b)-(dataEnd-dataStart)+len(sec)+6)
	out = append(out, b[:dataStart]...)
	out = append(out, 11)
	out = append(out, uleb32(uint32(len(sec)))...)
	out = append(out, sec...)
	return append(out, b[dataEnd:]...)
}

// segment is an active data segment: data written at offset.
type segment struct {
	offset uint32
	data   []byte
}

// maxMergedSegments bounds coalesceData's work (each gap reads every
// merged segment before it): a module whose segments leave more runs in
// address order than this is left as it is.
const maxMergedSegments = 256

// gapBytes is what linear memory holds at [lo, hi) once the merged
// segments before are written: zeros, except where one of them wrote (the
// last one wins, as at instantiation). The Go linker's segments are not
// all in address order (one run of segments comes back to lower addresses
// and fills the holes of the one before), so a gap is not always zeros:
// filled with zeros, it once overwrote the earlier run's bytes and a Go
// module crashed in its runtime ("unexpected signal during runtime
// execution", exit code 4) when it called os.Exit after writing output.
func gapBytes(before []segment, lo, hi uint64) []byte {
	gap := make([]byte, hi-lo)
	for _, m := range before {
		mLo, mHi := uint64(m.offset), uint64(m.offset)+uint64(len(m.data))
		if from, to := max(lo, mLo), min(hi, mHi); from < to {
			copy(gap[from-lo:to-lo], m.data[from-mLo:to-mLo])
		}
	}
	return gap
}

// s32 reads a signed LEB128 i32.
func (r *reader) s32() int32 {
	var v int64
	var shift uint
	for shift < 35 {
		c := r.byte()
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return int32(v)
		}
	}
	r.fail()
	return 0
}

func uleb32(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func sleb32(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
