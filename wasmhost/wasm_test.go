package wasmhost

// A minimal WebAssembly binary encoder for hand-assembled test modules, and the
// modules the tests use. Only what the tests need: types, imports, functions,
// one memory, exports, code and active data segments.

const wasi = "wasi_snapshot_preview1"

// Value types and instructions used below.
const (
	i32 byte = 0x7f

	opUnreachable byte = 0x00
	opLoop        byte = 0x03
	opIf          byte = 0x04
	opEnd         byte = 0x0b
	opBr          byte = 0x0c
	opBrIf        byte = 0x0d
	opCall        byte = 0x10
	opDrop        byte = 0x1a
	opLocalGet    byte = 0x20
	opLocalTee    byte = 0x22
	opI32Load     byte = 0x28
	opI32Store    byte = 0x36
	opI32Const    byte = 0x41
	opI32Sub      byte = 0x6b
	blockEmpty    byte = 0x40
)

type funcType struct{ params, results []byte }

type wasmImport struct {
	module, name string
	kind         byte   // externFunc, externMemory, externGlobal, …
	desc         []byte // encoded import description after the kind byte
}

// funcImport imports a function of type index typ.
func funcImport(module, name string, typ uint32) wasmImport {
	return wasmImport{module: module, name: name, kind: externFunc, desc: uleb(typ)}
}

type wasmExport struct {
	name string
	kind byte
	idx  uint32
}

type wasmFunc struct {
	typ  uint32
	body []byte // instructions, without locals and without the final end
}

type dataSegment struct {
	offset int32
	bytes  []byte
}

type testModule struct {
	types   []funcType
	imports []wasmImport
	funcs   []wasmFunc
	memory  bool // one page, exported as "memory"
	exports []wasmExport
	data    []dataSegment
}

func (m testModule) encode() []byte {
	out := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	section := func(id byte, count int, body []byte) {
		if count == 0 {
			return
		}
		content := append(uleb(uint32(count)), body...)
		out = append(out, id)
		out = append(out, uleb(uint32(len(content)))...)
		out = append(out, content...)
	}

	var b []byte
	for _, t := range m.types {
		b = append(b, 0x60)
		b = append(b, vec(t.params)...)
		b = append(b, vec(t.results)...)
	}
	section(1, len(m.types), b)

	b = nil
	for _, im := range m.imports {
		b = append(b, name(im.module)...)
		b = append(b, name(im.name)...)
		b = append(b, im.kind)
		b = append(b, im.desc...)
	}
	section(2, len(m.imports), b)

	b = nil
	for _, f := range m.funcs {
		b = append(b, uleb(f.typ)...)
	}
	section(3, len(m.funcs), b)

	exports := m.exports
	if m.memory {
		section(5, 1, []byte{0x00, 0x01}) // min 1 page, no max
		exports = append(exports, wasmExport{name: "memory", kind: externMemory, idx: 0})
	}

	b = nil
	for _, e := range exports {
		b = append(b, name(e.name)...)
		b = append(b, e.kind)
		b = append(b, uleb(e.idx)...)
	}
	section(7, len(exports), b)

	b = nil
	for _, f := range m.funcs {
		code := append([]byte{0x00}, f.body...) // no locals
		code = append(code, opEnd)
		b = append(b, uleb(uint32(len(code)))...)
		b = append(b, code...)
	}
	section(10, len(m.funcs), b)

	b = nil
	for _, d := range m.data {
		b = append(b, 0x00, opI32Const)
		b = append(b, sleb(d.offset)...)
		b = append(b, opEnd)
		b = append(b, vec(d.bytes)...)
	}
	section(11, len(m.data), b)
	return out
}

func uleb(v uint32) []byte {
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

func sleb(v int32) []byte {
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

func vec(b []byte) []byte  { return append(uleb(uint32(len(b))), b...) }
func name(s string) []byte { return vec([]byte(s)) }

func i32Const(v int32) []byte { return append([]byte{opI32Const}, sleb(v)...) }

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Type indexes shared by the modules below.
var (
	typeStart   = funcType{}                                                         // () -> ()
	typeFdWrite = funcType{params: []byte{i32, i32, i32, i32}, results: []byte{i32}} // fd_write
	typeExit    = funcType{params: []byte{i32}}                                      // proc_exit
)

// writeModule is a WASI command whose _start writes out to stdout with
// fd_write, then, if exitCode >= 0, calls proc_exit(exitCode).
func writeModule(out string, exitCode int32) []byte {
	const iov, nwritten, data = 0, 8, 64
	body := concat(
		// iov{buf: data, len: len(out)} at address 0
		i32Const(iov), i32Const(data), []byte{opI32Store, 0x02, 0x00},
		i32Const(iov+4), i32Const(int32(len(out))), []byte{opI32Store, 0x02, 0x00},
		// fd_write(1, iov, 1, nwritten)
		i32Const(1), i32Const(iov), i32Const(1), i32Const(nwritten),
		[]byte{opCall, 0x00, opDrop},
	)
	if exitCode >= 0 {
		body = concat(body, i32Const(exitCode), []byte{opCall, 0x01})
	}
	return testModule{
		types: []funcType{typeFdWrite, typeExit, typeStart},
		imports: []wasmImport{
			funcImport(wasi, "fd_write", 0),
			funcImport(wasi, "proc_exit", 1),
		},
		funcs:   []wasmFunc{{typ: 2, body: body}},
		memory:  true,
		exports: []wasmExport{{name: "_start", kind: externFunc, idx: 2}},
		data:    []dataSegment{{offset: data, bytes: []byte(out)}},
	}.encode()
}

// startModule is a WASI command with no imports whose _start is body.
func startModule(body []byte) []byte {
	return testModule{
		types:   []funcType{typeStart},
		funcs:   []wasmFunc{{typ: 0, body: body}},
		memory:  true,
		exports: []wasmExport{{name: "_start", kind: externFunc, idx: 0}},
	}.encode()
}

var (
	okResponse = "Content-Type: text/plain\r\nX-Tiny: 1\r\n\r\nok\n"

	// okModule writes a valid response and returns.
	okModule = writeModule(okResponse, -1)
	// exit0Module writes a valid response and calls proc_exit(0).
	exit0Module = writeModule(okResponse, 0)
	// exit7Module writes a valid response, then proc_exit(7).
	exit7Module = writeModule(okResponse, 7)
	// garbageModule writes something that is not a CGI response.
	garbageModule = writeModule("this is not a header\n\nbody\n", -1)
	// loopModule spins forever: loop br 0 end.
	loopModule = startModule([]byte{opLoop, blockEmpty, opBr, 0x00, opEnd})
	// trapModule executes unreachable.
	trapModule = startModule([]byte{opUnreachable})
	// emptyModule returns at once and writes nothing.
	emptyModule = startModule(nil)
)

// loopIfBodyModule reads stdin: if the request had a body it spins forever,
// otherwise it writes okResponse. One handler thus serves both a request that
// must time out and one that must succeed.
var loopIfBodyModule = func() []byte {
	const iov, n, buf, data = 0, 8, 1024, 64
	body := concat(
		// fd_read(0, iov{buf, 16}, 1, n)
		i32Const(iov), i32Const(buf), []byte{opI32Store, 0x02, 0x00},
		i32Const(iov+4), i32Const(16), []byte{opI32Store, 0x02, 0x00},
		i32Const(0), i32Const(iov), i32Const(1), i32Const(n), []byte{opCall, 0x00, opDrop},
		// if n != 0 { loop forever }
		i32Const(n), []byte{opI32Load, 0x02, 0x00},
		[]byte{opIf, blockEmpty, opLoop, blockEmpty, opBr, 0x00, opEnd, opEnd},
		// fd_write(1, iov{data, len}, 1, n)
		i32Const(iov), i32Const(data), []byte{opI32Store, 0x02, 0x00},
		i32Const(iov+4), i32Const(int32(len(okResponse))), []byte{opI32Store, 0x02, 0x00},
		i32Const(1), i32Const(iov), i32Const(1), i32Const(n), []byte{opCall, 0x01, opDrop},
	)
	return testModule{
		types: []funcType{typeFdWrite, typeStart},
		imports: []wasmImport{
			funcImport(wasi, "fd_read", 0),
			funcImport(wasi, "fd_write", 0),
		},
		funcs:   []wasmFunc{{typ: 1, body: body}},
		memory:  true,
		exports: []wasmExport{{name: "_start", kind: externFunc, idx: 2}},
		data:    []dataSegment{{offset: data, bytes: []byte(okResponse)}},
	}.encode()
}()

// countdownModule exports run(n i32): a tight loop of n iterations, and an
// empty _start. It measures the cost of WithCloseOnContextDone.
var countdownModule = testModule{
	types: []funcType{typeStart, {params: []byte{i32}}},
	funcs: []wasmFunc{
		{typ: 0},
		{typ: 1, body: []byte{
			opLoop, blockEmpty,
			opLocalGet, 0x00, opI32Const, 0x01, opI32Sub, opLocalTee, 0x00,
			opBrIf, 0x00,
			opEnd,
		}},
	},
	exports: []wasmExport{
		{name: "_start", kind: externFunc, idx: 0},
		{name: "run", kind: externFunc, idx: 1},
	},
}.encode()
