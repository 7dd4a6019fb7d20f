package wasmhost

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// invalidError is a reason a module cannot run under Strata. It matches
// ErrInvalidModule with errors.Is and unwraps to wazero's error, if any.
type invalidError struct {
	msg   string
	cause error
}

func (e *invalidError) Error() string        { return "wasmhost: invalid module: " + e.msg }
func (e *invalidError) Unwrap() error        { return e.cause }
func (e *invalidError) Is(target error) bool { return target == ErrInvalidModule }

func invalidf(cause error, format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...), cause: cause}
}

var (
	wasmMagic     = []byte{0x00, 'a', 's', 'm'}
	coreVersion   = []byte{0x01, 0x00, 0x00, 0x00}
	componentTail = []byte{0x01, 0x00} // component binaries: version 0x0d (or older drafts), layer 1
)

// Validate checks that b is a WASI preview 1 core module that Strata can run:
// the magic bytes and version, that wazero decodes and validates it, that it
// exports a `_start` function taking and returning nothing, and that it imports
// only functions wazero's wasi_snapshot_preview1 provides, with matching
// signatures. Errors wrap ErrInvalidModule and say what is wrong, e.g.
// "wasmhost: invalid module: module imports env.foo: only wasi_snapshot_preview1
// is available".
//
// Validate compiles b with wazero's interpreter on a throwaway runtime, which
// decodes and validates everything but generates no machine code: a 2 MB Go
// module takes tens of milliseconds (see BenchmarkValidateHello), so it may run
// in an HTTP handler.
func Validate(ctx context.Context, b []byte) error {
	if err := checkHeader(b); err != nil {
		return err
	}
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithDebugInfoEnabled(false))
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, b)
	if err != nil {
		return invalidf(err, "invalid WebAssembly: %v", err)
	}
	return checkShape(cm, b)
}

// checkHeader checks the 8-byte preamble, so that the commonest mistakes (not
// wasm at all, a component, a truncated download) get a clear message rather
// than a decoder's.
func checkHeader(b []byte) error {
	switch {
	case len(b) < 4 || !bytes.Equal(b[:4], wasmMagic):
		return invalidf(nil, "not a WebAssembly module: bad magic bytes")
	case len(b) < 8:
		return invalidf(nil, "truncated WebAssembly module: %d bytes, no version", len(b))
	case bytes.Equal(b[4:8], coreVersion):
		return nil
	case bytes.Equal(b[6:8], componentTail):
		return invalidf(nil, "a WebAssembly component, not a core module: only WASI preview 1 core modules are supported")
	default:
		return invalidf(nil, "unsupported WebAssembly binary version %d, want 1", binary.LittleEndian.Uint32(b[4:8]))
	}
}

// checkShape checks what wazero's validation does not: the WASI command ABI
// (an exported `_start: [] -> []`) and that every import is one Strata provides.
func checkShape(cm wazero.CompiledModule, b []byte) error {
	start, ok := cm.ExportedFunctions()["_start"]
	if !ok {
		if _, reactor := cm.ExportedFunctions()["_initialize"]; reactor {
			return invalidf(nil, "module does not export _start: it is a WASI reactor (exports _initialize), Strata runs WASI commands")
		}
		return invalidf(nil, "module does not export _start")
	}
	if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		return invalidf(nil, "module exports _start with signature %s, want ()", signature(start.ParamTypes(), start.ResultTypes()))
	}

	imports, err := importKinds(b)
	if err != nil {
		return invalidf(err, "reading import section: %v", err)
	}
	for _, im := range imports {
		if im.module != wasi_snapshot_preview1.ModuleName {
			return invalidf(nil, "module imports %s.%s: only %s is available", im.module, im.name, wasi_snapshot_preview1.ModuleName)
		}
		if im.kind != externFunc {
			return invalidf(nil, "module imports %s %s.%s: %s provides only functions", externNames[im.kind], im.module, im.name, wasi_snapshot_preview1.ModuleName)
		}
	}

	wasi := wasiSignatures()
	for _, fn := range cm.ImportedFunctions() {
		mod, name, _ := fn.Import()
		got := signature(fn.ParamTypes(), fn.ResultTypes())
		want, ok := wasi[name]
		switch {
		case mod != wasi_snapshot_preview1.ModuleName: // already rejected above; kept for safety
			return invalidf(nil, "module imports %s.%s: only %s is available", mod, name, wasi_snapshot_preview1.ModuleName)
		case !ok:
			return invalidf(nil, "module imports %s.%s, which is not a WASI preview 1 function", mod, name)
		case got != want:
			return invalidf(nil, "module imports %s.%s with signature %s, want %s", mod, name, got, want)
		}
	}
	return nil
}

// signature renders a function type as "(i32,i64)->i32"; it is also the map key
// of wasiSignatures.
func signature(params, results []api.ValueType) string {
	var sb strings.Builder
	sb.WriteByte('(')
	for i, p := range params {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(api.ValueTypeName(p))
	}
	sb.WriteByte(')')
	if len(results) > 0 {
		sb.WriteString("->")
		for i, r := range results {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(api.ValueTypeName(r))
		}
	}
	return sb.String()
}

// wasiSignatures returns, by function name, the signature of every function
// wazero's wasi_snapshot_preview1 exports. It is computed once, from wazero
// itself, so it cannot drift from what the runtime provides.
var wasiSignatures = sync.OnceValue(func() map[string]string {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := wasi_snapshot_preview1.NewBuilder(r).Compile(ctx)
	if err != nil {
		panic("wasmhost: compiling wazero's own wasi_snapshot_preview1 failed: " + err.Error())
	}
	sigs := make(map[string]string)
	for name, fn := range cm.ExportedFunctions() {
		sigs[name] = signature(fn.ParamTypes(), fn.ResultTypes())
	}
	return sigs
})

// External kinds of the import section (WebAssembly core spec, 5.5.5).
const (
	externFunc   byte = 0x00
	externTable  byte = 0x01
	externMemory byte = 0x02
	externGlobal byte = 0x03
	externTag    byte = 0x04
)

var externNames = map[byte]string{
	externFunc: "function", externTable: "table", externMemory: "memory",
	externGlobal: "global", externTag: "tag",
}

type importEntry struct {
	module, name string
	kind         byte
}

// importKinds lists the imports of b, which wazero has already decoded and
// validated: wazero's CompiledModule reports imported functions and memories
// but not tables or globals, so this walks the import section itself.
func importKinds(b []byte) ([]importEntry, error) {
	r := &reader{b: b, off: 8}
	for r.off < len(r.b) {
		id := r.byte()
		size := r.u32()
		if r.err != nil || size > uint32(len(r.b)-r.off) {
			return nil, fmt.Errorf("section at offset %d overruns the module", r.off)
		}
		if id != 2 { // not the import section
			r.off += int(size)
			continue
		}
		sec := &reader{b: r.b[:r.off+int(size)], off: r.off}
		n := sec.u32()
		var out []importEntry
		for i := uint32(0); i < n && sec.err == nil; i++ {
			im := importEntry{module: sec.name(), name: sec.name(), kind: sec.byte()}
			switch im.kind {
			case externFunc, externTag:
				if im.kind == externTag {
					sec.byte() // attribute
				}
				sec.u32() // type index
			case externTable:
				sec.byte() // reftype
				sec.limits()
			case externMemory:
				sec.limits()
			case externGlobal:
				sec.byte() // valtype
				sec.byte() // mutability
			default:
				return nil, fmt.Errorf("import %d has unknown kind 0x%02x", i, im.kind)
			}
			out = append(out, im)
		}
		if sec.err != nil {
			return nil, sec.err
		}
		return slices.Clip(out), nil
	}
	return nil, nil
}

// reader decodes the few LEB128 and vector forms the import section uses. The
// first error sticks; later reads return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("unexpected end of section at offset %d", r.off)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail()
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail()
	return 0
}

func (r *reader) name() string {
	n := r.u32()
	if r.err != nil || n > uint32(len(r.b)-r.off) {
		r.fail()
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}

func (r *reader) limits() (min uint32) {
	flags := r.byte()
	min = r.u32()
	if flags&0x01 != 0 {
		r.u32() // max
	}
	return min
}

// memoryMin returns the initial size in pages of b's memory (its memory
// section's first entry; imported memories are refused elsewhere), 0 if it
// has none. b has been decoded and validated by wazero already.
func memoryMin(b []byte) (uint32, error) {
	r := &reader{b: b, off: 8}
	for r.off < len(r.b) {
		id := r.byte()
		size := r.u32()
		if r.err != nil || size > uint32(len(r.b)-r.off) {
			return 0, fmt.Errorf("section at offset %d overruns the module", r.off)
		}
		if id != 5 { // not the memory section
			r.off += int(size)
			continue
		}
		sec := &reader{b: r.b[:r.off+int(size)], off: r.off}
		n := sec.u32()
		var min uint32
		if n > 0 {
			min = sec.limits()
		}
		return min, sec.err
	}
	return 0, nil
}
