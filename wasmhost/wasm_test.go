package wasmhost

import (
	"encoding/binary"
	"time"
)

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
	opI32Load8U   byte = 0x2d
	opI32Const    byte = 0x41
	opI32Eq       byte = 0x46
	opI32Sub      byte = 0x6b
	opMemoryGrow  byte = 0x40 // followed by memory index 0x00
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
	types    []funcType
	imports  []wasmImport
	funcs    []wasmFunc
	memory   bool   // exported as "memory"
	memPages uint32 // its initial size; 0 = 1 page
	exports  []wasmExport
	data     []dataSegment
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
		section(5, 1, append([]byte{0x00}, uleb(max(m.memPages, 1))...)) // no max
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

// uleb and sleb are the package's own LEB128 encoders (coalesce.go).
func uleb(v uint32) []byte { return uleb32(v) }

func sleb(v int32) []byte { return sleb32(v) }

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

// growModule grows its memory 16 pages (1 MiB) at a time until memory.grow
// fails, then traps, as a C program's failed malloc would abort.
var growModule = startModule([]byte{
	opLoop, blockEmpty,
	opI32Const, 16, opMemoryGrow, 0x00,
	opI32Const, 0x7f, opI32Eq, // -1: the grow failed
	opIf, blockEmpty, opUnreachable, opEnd,
	opBr, 0x00,
	opEnd,
})

// bigModule declares pages pages of initial memory and does nothing.
func bigModule(pages uint32) []byte {
	return testModule{
		types:    []funcType{typeStart},
		funcs:    []wasmFunc{{typ: 0}},
		memory:   true,
		memPages: pages,
		exports:  []wasmExport{{name: "_start", kind: externFunc, idx: 0}},
	}.encode()
}

// pollSub is one poll_oneoff subscription of pollModule: a relative
// monotonic clock of timeout, or (fd >= 0) a read on fd.
type pollSub struct {
	fd      int32
	timeout time.Duration
}

// pollModule calls poll_oneoff once with subs, then writes to stdout the
// number of events (u32) and the events (32 bytes each, as WASI lays them
// out). If the first event is a successful read on fd 3 (the listener in
// listener mode), it accepts the connection and writes "hi" to it.
func pollModule(subs ...pollSub) []byte {
	const in, out, nevents, iovs, iovHi, nwritten, connFd, hi = 0, 512, 1024, 1200, 1216, 1300, 1400, 1500
	var subBytes []byte
	for i, s := range subs {
		b := make([]byte, 48)
		binary.LittleEndian.PutUint64(b, uint64(100+i)) // userdata
		if s.fd >= 0 {
			b[8] = 1 // fd_read
			binary.LittleEndian.PutUint32(b[16:], uint32(s.fd))
		} else {
			b[8] = 0                                 // clock
			binary.LittleEndian.PutUint32(b[16:], 1) // monotonic
			binary.LittleEndian.PutUint64(b[24:], uint64(s.timeout))
		}
		subBytes = append(subBytes, b...)
	}
	iov := make([]byte, 24)
	binary.LittleEndian.PutUint32(iov[0:], nevents)
	binary.LittleEndian.PutUint32(iov[4:], 4)
	binary.LittleEndian.PutUint32(iov[8:], out)
	binary.LittleEndian.PutUint32(iov[12:], uint32(32*len(subs)))
	binary.LittleEndian.PutUint32(iov[16:], hi) // iovHi
	binary.LittleEndian.PutUint32(iov[20:], 2)

	call := func(idx byte) []byte { return []byte{opCall, idx, opDrop} }
	body := concat(
		i32Const(in), i32Const(out), i32Const(int32(len(subs))), i32Const(nevents), call(1), // poll_oneoff
		i32Const(1), i32Const(iovs), i32Const(2), i32Const(nwritten), call(0), // fd_write(stdout)
		// errno (u16 at 8) 0 and type (u8 at 10) fd_read: the u32 at 8 is 0x10000.
		i32Const(out+8), []byte{opI32Load, 0x02, 0x00}, i32Const(eventTypeFdRead<<16), []byte{opI32Eq},
		[]byte{opIf, blockEmpty},
		i32Const(3), i32Const(0), i32Const(connFd), call(2), // sock_accept(3, 0, &connFd)
		i32Const(connFd), []byte{opI32Load, 0x02, 0x00}, i32Const(iovHi), i32Const(1), i32Const(nwritten), call(0),
		[]byte{opEnd},
	)
	return testModule{
		types: []funcType{typeFdWrite, {params: []byte{i32, i32, i32}, results: []byte{i32}}, typeStart},
		imports: []wasmImport{
			funcImport(wasi, "fd_write", 0),
			funcImport(wasi, "poll_oneoff", 0),
			funcImport(wasi, "sock_accept", 1),
		},
		funcs:   []wasmFunc{{typ: 2, body: body}},
		memory:  true,
		exports: []wasmExport{{name: "_start", kind: externFunc, idx: 3}},
		data: []dataSegment{
			{offset: in, bytes: subBytes},
			{offset: iovs, bytes: iov},
			{offset: hi, bytes: []byte("hi")},
		},
	}.encode()
}

// acceptModule reads its environment size (so the host sees the instance),
// then accepts on fd 3 in blocking mode, which waits in the host for a client.
var acceptModule = testModule{
	types: []funcType{
		{params: []byte{i32, i32}, results: []byte{i32}},
		{params: []byte{i32, i32, i32}, results: []byte{i32}},
		typeStart,
	},
	imports: []wasmImport{
		funcImport(wasi, "environ_sizes_get", 0),
		funcImport(wasi, "sock_accept", 1),
	},
	funcs: []wasmFunc{{typ: 2, body: concat(
		i32Const(0), i32Const(4), []byte{opCall, 0x00, opDrop},
		i32Const(3), i32Const(0), i32Const(8), []byte{opCall, 0x01, opDrop},
	)}},
	memory:  true,
	exports: []wasmExport{{name: "_start", kind: externFunc, idx: 2}},
}.encode()

// connModule accepts one connection on fd 3 (blocking), writes "hi" to it,
// closes it if closeConn, then either reads from it (blocking) if read, or
// sleeps an hour in poll_oneoff.
func connModule(closeConn, read bool) []byte {
	const connFd, iov, hi, nwritten, sub, evt, nev, buf = 0, 8, 16, 24, 64, 128, 192, 256
	call := func(idx byte) []byte { return []byte{opCall, idx, opDrop} }
	sleep := make([]byte, 48) // a relative monotonic clock of an hour
	binary.LittleEndian.PutUint32(sleep[16:], 1)
	binary.LittleEndian.PutUint64(sleep[24:], uint64(time.Hour))
	iovs := make([]byte, 8)
	binary.LittleEndian.PutUint32(iovs, hi)
	binary.LittleEndian.PutUint32(iovs[4:], 2)
	loadConn := concat(i32Const(connFd), []byte{opI32Load, 0x02, 0x00})
	body := concat(
		i32Const(3), i32Const(0), i32Const(connFd), call(0), // sock_accept
		loadConn, i32Const(iov), i32Const(1), i32Const(nwritten), call(1), // fd_write(conn, "hi")
	)
	if closeConn {
		body = concat(body, loadConn, call(2)) // fd_close
	}
	if read {
		// fd_read(conn, iov{buf, 2}): the iovec at iov now points at buf.
		body = concat(body,
			i32Const(iov), i32Const(buf), []byte{opI32Store, 0x02, 0x00},
			loadConn, i32Const(iov), i32Const(1), i32Const(nwritten), call(4))
	} else {
		body = concat(body, i32Const(sub), i32Const(evt), i32Const(1), i32Const(nev), call(3)) // poll_oneoff
	}
	return testModule{
		types: []funcType{
			{params: []byte{i32, i32, i32}, results: []byte{i32}},
			typeFdWrite,
			{params: []byte{i32}, results: []byte{i32}},
			typeStart,
		},
		imports: []wasmImport{
			funcImport(wasi, "sock_accept", 0),
			funcImport(wasi, "fd_write", 1),
			funcImport(wasi, "fd_close", 2),
			funcImport(wasi, "poll_oneoff", 1),
			funcImport(wasi, "fd_read", 1),
		},
		funcs:   []wasmFunc{{typ: 3, body: body}},
		memory:  true,
		exports: []wasmExport{{name: "_start", kind: externFunc, idx: 5}},
		data: []dataSegment{
			{offset: iov, bytes: iovs},
			{offset: hi, bytes: []byte("hi")},
			{offset: sub, bytes: sleep},
		},
	}.encode()
}
