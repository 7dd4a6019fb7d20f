package wasmhost

import (
	"bytes"
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
)

// dumpModule has data segments (adjacent, with a small gap, overlapping,
// far apart) and writes memory [0x100, 0x2010) to stdout.
func dumpModule() []byte {
	const iov, nwritten = 0, 8
	body := concat(
		i32Const(iov), i32Const(0x100), []byte{opI32Store, 0x02, 0x00},
		i32Const(iov+4), i32Const(0x2010-0x100), []byte{opI32Store, 0x02, 0x00},
		i32Const(1), i32Const(iov), i32Const(1), i32Const(nwritten), []byte{opCall, 0x00, opDrop},
	)
	return testModule{
		types:   []funcType{typeFdWrite, typeStart},
		imports: []wasmImport{funcImport(wasi, "fd_write", 0)},
		funcs:   []wasmFunc{{typ: 1, body: body}},
		memory:  true,
		exports: []wasmExport{{name: "_start", kind: externFunc, idx: 1}},
		data: []dataSegment{
			{offset: 0x100, bytes: []byte("ab")},
			{offset: 0x102, bytes: []byte("cd")},   // adjacent
			{offset: 0x106, bytes: []byte("ef")},   // 2 bytes apart
			{offset: 0x103, bytes: []byte("X")},    // overwrites "d": stays apart, in order
			{offset: 0x10a, bytes: []byte("Y")},    // merged with X: the gap holds "ef", written before
			{offset: 0x2000, bytes: []byte("far")}, // over maxDataGap away
		},
	}.encode()
}

func dataSegments(t *testing.T, b []byte) int {
	t.Helper()
	r := &reader{b: b, off: 8}
	for r.off < len(r.b) {
		id := r.byte()
		size := r.u32()
		if id == 11 {
			return int(r.u32())
		}
		r.off += int(size)
	}
	return 0
}

func TestCoalesceData(t *testing.T) {
	orig := dumpModule()
	merged := coalesceData(orig)
	if got := dataSegments(t, merged); got != 3 {
		t.Errorf("%d segments after coalescing, want 3 (of %d)", got, dataSegments(t, orig))
	}

	// The memory the module sees is the same: wazero alone on the original,
	// and a Host (which coalesces) on it.
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	if _, err := instantiateWASI(ctx, r); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if _, err := r.InstantiateWithConfig(ctx, orig, wazero.NewModuleConfig().WithStdout(&want)); err != nil {
		t.Fatal(err)
	}
	h := newHost(t)
	var got bytes.Buffer
	if err := h.RunCommand(ctx, mustCompile(t, h, orig), CommandConfig{Stdout: &got}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) || !bytes.HasPrefix(want.Bytes(), []byte("abcX\x00\x00ef\x00\x00Y")) {
		t.Fatalf("memory differs after coalescing: %q… vs %q…", got.Bytes()[:11], want.Bytes()[:11])
	}

	// Left alone: a DataCount section (segments named by index), a single
	// segment, no data at all.
	withCount := append(bytes.Clone(orig), 12, 1, 5)
	if c := coalesceData(withCount); &c[0] != &withCount[0] {
		t.Error("a module with a DataCount section was rewritten")
	}
	for _, b := range [][]byte{okModule, loopModule} {
		if c := coalesceData(b); &c[0] != &b[0] {
			t.Error("a module with at most one segment was rewritten")
		}
	}
}

func TestReaderS32(t *testing.T) {
	for _, v := range []int32{0, 1, -1, 63, 64, -64, -65, 0x100, 1 << 30, -1 << 31, 1<<31 - 1} {
		r := &reader{b: sleb32(v)}
		if got := r.s32(); got != v || r.err != nil {
			t.Errorf("s32(sleb32(%d)) = %d, %v", v, got, r.err)
		}
	}
}

// activeSegments returns a module's data segments (all active, memory 0,
// i32.const offsets: what the Go linker writes).
func activeSegments(t *testing.T, b []byte) []segment {
	t.Helper()
	r := &reader{b: b, off: 8}
	for r.off < len(r.b) {
		id := r.byte()
		size := r.u32()
		end := r.off + int(size)
		if id != 11 {
			r.off = end
			continue
		}
		var out []segment
		for range r.u32() {
			if flags := r.u32(); flags != 0 || r.byte() != 0x41 {
				t.Fatalf("segment %d: not active at an i32.const offset", len(out))
			}
			off := r.s32()
			r.byte()
			l := int(r.u32())
			out = append(out, segment{offset: uint32(off), data: r.b[r.off : r.off+l]})
			r.off += l
		}
		return out
	}
	return nil
}

// initialMemory is the memory the segments write, in order.
func initialMemory(segs []segment) []byte {
	var mem []byte
	for _, s := range segs {
		if end := int(s.offset) + len(s.data); end > len(mem) {
			mem = append(mem, make([]byte, end-len(mem))...)
		}
		copy(mem[s.offset:], s.data)
	}
	return mem
}

// Go modules keep their initial memory byte for byte once coalesced. The
// Go linker writes a second run of segments back at lower addresses, in
// the holes of the first: zeros in the merged gaps once overwrote the
// first run's bytes, and a Go module that wrote output then called
// os.Exit(3) crashed in its runtime instead (exit code 4).
func TestCoalescePreservesGoModules(t *testing.T) {
	for _, pkg := range []string{envechoPkg, helloPkg, exitcodePkg} {
		t.Run(pkg, func(t *testing.T) {
			orig := goModule(t, pkg)
			merged := coalesceData(orig)
			before, after := activeSegments(t, orig), activeSegments(t, merged)
			if len(after) >= len(before) || len(after) > 16 {
				t.Errorf("%d segments coalesced into %d, want a handful", len(before), len(after))
			}
			if !bytes.Equal(initialMemory(before), initialMemory(after)) {
				t.Fatal("coalescing changed the module's initial memory")
			}
		})
	}
}
