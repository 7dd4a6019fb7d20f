package wasmhost

import (
	"bytes"
	"context"
	"testing"
)

// Linear memories are pooled: an instance never sees what an earlier one
// wrote. storeModule writes a word at 0x8000; dumpWordModule prints it.
func TestMemoryPoolIsolation(t *testing.T) {
	storeModule := startModule(concat(i32Const(0x8000), i32Const(0x41424344), []byte{opI32Store, 0x02, 0x00}))
	dumpWordModule := testModule{
		types:   []funcType{typeFdWrite, typeStart},
		imports: []wasmImport{funcImport(wasi, "fd_write", 0)},
		funcs: []wasmFunc{{typ: 1, body: concat(
			i32Const(0), i32Const(0x8000), []byte{opI32Store, 0x02, 0x00},
			i32Const(4), i32Const(4), []byte{opI32Store, 0x02, 0x00},
			i32Const(1), i32Const(0), i32Const(1), i32Const(8), []byte{opCall, 0x00, opDrop},
		)}},
		memory:  true,
		exports: []wasmExport{{name: "_start", kind: externFunc, idx: 1}},
	}.encode()

	h := newHost(t)
	store, dump := mustCompile(t, h, storeModule), mustCompile(t, h, dumpWordModule)
	for range 20 {
		if err := h.RunCommand(context.Background(), store, CommandConfig{}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := h.RunCommand(context.Background(), dump, CommandConfig{Stdout: &out}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), make([]byte, 4)) {
			t.Fatalf("a fresh instance read %q where an earlier one wrote", out.Bytes())
		}
	}
}

// A memory that grows past the pooled size moves to a reservation, keeping
// its contents.
func TestLinearMemoryGrowth(t *testing.T) {
	m := newLinearMemory(8 << 20)
	b := m.Reallocate(pageSize)
	copy(b, "kept")
	b = m.Reallocate(2 * smallMemory)
	if string(b[:4]) != "kept" || len(b) != 2*smallMemory {
		t.Fatalf("after growing: %q…, %d bytes", b[:4], len(b))
	}
	if m.Reallocate(9<<20) != nil || m.refused.Load() != 9<<20 {
		t.Fatal("grow past the limit was not refused")
	}
	m.release()
}
