package wasmhost

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// WASI errno values (WASI preview 1, errno enum) that our functions return.
const (
	errnoSuccess uint64 = 0
	errnoBadf    uint64 = 8
	errnoFault   uint64 = 21
	errnoIntr    uint64 = 27
	errnoInval   uint64 = 28
	errnoIO      uint64 = 29
	errnoNosys   uint64 = 52
	errnoNotsup  uint64 = 58
)

// listenerWASIName names our second wasi_snapshot_preview1, the one listener
// instances import (through an experimental.ImportResolver): the first one plus
// sock_accept, fd_close and fd_renumber that keep track of connections (see
// sockets.go). Guests never see this name.
const listenerWASIName = "strata_wasi_snapshot_preview1_listener"

// instantiateWASI instantiates wasi_snapshot_preview1 on r: wazero's
// implementation, with three functions replaced by ours:
//
//   - environ_get and environ_sizes_get read the environment from the
//     instance's state in the call's context (see instState). wazero keeps the
//     environment in its ModuleConfig and clones the whole config for every
//     variable added, which made the environment half the cost of a tiny
//     request; ours is one byte slice built per instance.
//   - poll_oneoff waits for sockets for real (see pollOneoff). wazero reports
//     a non-blocking socket as always ready, so an idle Go server spins a core
//     in its scheduler loop, and sleeps a clock subscription's full timeout
//     even when a socket is ready.
//
// It also instantiates the listener variant (listenerWASIName) and returns it.
func instantiateWASI(ctx context.Context, r wazero.Runtime) (listener api.Module, err error) {
	for _, name := range []string{wasi_snapshot_preview1.ModuleName, listenerWASIName} {
		b := r.NewHostModuleBuilder(name)
		wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
		i32 := api.ValueTypeI32
		export := func(fn api.GoModuleFunc, name string, params ...string) {
			types := make([]api.ValueType, len(params))
			for i := range types {
				types[i] = i32
			}
			b.NewFunctionBuilder().
				WithGoModuleFunction(fn, types, []api.ValueType{i32}).
				WithParameterNames(params...).
				Export(name)
		}
		export(environSizesGet, "environ_sizes_get", "result.environc", "result.environv_len")
		export(environGet, "environ_get", "environ", "environ_buf")
		export(pollOneoff, "poll_oneoff", "in", "out", "nsubscriptions", "result.nevents")
		if name == listenerWASIName {
			export(sockAccept, "sock_accept", "fd", "flags", "result.fd")
			export(fdClose, "fd_close", "fd")
			export(fdRenumber, "fd_renumber", "fd", "to")
		}
		// Not b.Instantiate: it wraps the instance in a type that an
		// ImportResolver cannot resolve to.
		compiled, err := b.Compile(ctx)
		if err != nil {
			return nil, err
		}
		mod, err := r.InstantiateModule(ctx, compiled, wazero.NewModuleConfig())
		if err != nil {
			return nil, err
		}
		listener = mod
	}
	return listener, nil
}

// environSizesGet writes the number of environment variables and the size of
// their NUL-terminated "K=V" strings.
func environSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	var count, size uint32
	if st := stateOf(ctx); st != nil {
		st.noteMod(mod)
		count, size = uint32(st.envCount), uint32(len(st.env))
	}
	mem := mod.Memory()
	if mem == nil || !mem.WriteUint32Le(uint32(stack[0]), count) || !mem.WriteUint32Le(uint32(stack[1]), size) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// environGet writes the environment: a pointer per variable at environ, the
// NUL-terminated strings at environBuf, as wazero's own does.
func environGet(ctx context.Context, mod api.Module, stack []uint64) {
	environ, environBuf := uint32(stack[0]), uint32(stack[1])
	st := stateOf(ctx)
	st.noteMod(mod)
	if st == nil || st.envCount == 0 {
		stack[0] = errnoSuccess
		return
	}
	mem := mod.Memory()
	if mem == nil {
		stack[0] = errnoFault
		return
	}
	ptrs, ok1 := mem.Read(environ, uint32(4*st.envCount))
	buf, ok2 := mem.Read(environBuf, uint32(len(st.env)))
	if !ok1 || !ok2 {
		stack[0] = errnoFault
		return
	}
	copy(buf, st.env)
	start := 0
	for i, c := range st.env {
		if c == 0 {
			binary.LittleEndian.PutUint32(ptrs, environBuf+uint32(start))
			ptrs = ptrs[4:]
			start = i + 1
		}
	}
	stack[0] = errnoSuccess
}

// WASI poll_oneoff layout (preview 1): a subscription is 48 bytes (userdata
// u64, tag u8 at 8, the union from 16), an event 32 bytes (userdata u64, error
// u16 at 8, type u8 at 10, fd_readwrite.nbytes u64 at 16, .flags u16 at 24).
const (
	subscriptionSize = 48
	eventSize        = 32

	eventTypeClock   = 0
	eventTypeFdRead  = 1
	eventTypeFdWrite = 2

	subclockAbstime  = 1
	eventFdHangup    = 1
	pollForever      = time.Duration(1<<63 - 1)
	fallbackPollWait = time.Millisecond // see pollOneoff
)

// pollEvent is one subscription being answered.
type pollEvent struct {
	userdata [8]byte
	typ      byte
	errno    uint64
	flags    uint16
	fd       int32         // fd subscriptions
	host     int           // the socket's host fd; -1 if the fd is not a socket
	timeout  time.Duration // clock subscriptions
	ready    bool
}

// pollOneoff is WASI's poll_oneoff, with real readiness for sockets.
//
// A clock subscription fires when its (relative) timeout has passed; absolute
// clocks are not supported (ENOTSUP, as in wazero). An fd subscription on a
// socket is ready when the host socket is (ppoll); on any other open fd (stdio,
// files) it is ready at once, and on a closed fd it is an EBADF event. The call
// returns as soon as something is ready, or when the instance's context ends.
//
// Sockets are found through wazero's internals (see sockets.go); if that ever
// fails, sockets count as always ready, as in wazero, but a blocking poll
// then waits up to a millisecond so an idle server does not spin a core.
func pollOneoff(ctx context.Context, mod api.Module, stack []uint64) {
	in, out, nsub, resultNevents := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	if nsub == 0 {
		stack[0] = errnoInval
		return
	}
	mem := mod.Memory()
	if mem == nil {
		stack[0] = errnoFault
		return
	}
	inBuf, ok := mem.Read(in, nsub*subscriptionSize)
	if !ok {
		stack[0] = errnoFault
		return
	}
	outBuf, ok := mem.Read(out, nsub*eventSize)
	if !ok || !mem.WriteUint32Le(resultNevents, 0) {
		stack[0] = errnoFault
		return
	}
	st := stateOf(ctx)
	st.noteMod(mod)

	events := make([]pollEvent, nsub)
	timeout := pollForever
	ready, sockets, unknown := false, 0, 0
	for i := range events {
		sub := inBuf[i*subscriptionSize:]
		ev := &events[i]
		copy(ev.userdata[:], sub[:8])
		ev.typ = sub[8]
		ev.host = -1
		switch ev.typ {
		case eventTypeClock:
			// clock: id u32 at 16, timeout u64 at 24, precision u64 at 32, flags u16 at 40.
			if binary.LittleEndian.Uint16(sub[40:]) == subclockAbstime {
				stack[0] = errnoNotsup
				return
			}
			ev.timeout = time.Duration(min(binary.LittleEndian.Uint64(sub[24:]), uint64(pollForever)))
			timeout = min(timeout, ev.timeout)
		case eventTypeFdRead, eventTypeFdWrite:
			ev.fd = int32(binary.LittleEndian.Uint32(sub[16:]))
			switch kind, host := st.lookupFD(mod, ev.fd); kind {
			case fdClosed:
				ev.errno, ev.ready, ready = errnoBadf, true, true
			case fdSocket:
				ev.host = host
				sockets++
			case fdUnknown:
				ev.ready = true
				unknown++
			default:
				ev.ready, ready = true, true
			}
		default:
			stack[0] = errnoInval
			return
		}
	}

	wait := timeout
	switch {
	case ready:
		wait = 0 // something is ready: report it now
	case unknown > 0:
		// Only sockets we cannot see into, "ready" by default: wait a little
		// so that a server polling in a loop does not spin.
		wait = min(timeout, fallbackPollWait)
	}
	start := time.Now()
	if sockets > 0 {
		if err := st.pollSockets(ctx, events, wait); err != 0 {
			stack[0] = err
			return
		}
	} else if wait > 0 {
		st.sleep(ctx, wait)
	}
	elapsed := time.Since(start)

	n := uint32(0)
	for i := range events {
		ev := &events[i]
		if ev.typ == eventTypeClock {
			ev.ready = ev.timeout <= elapsed
		}
		if !ev.ready {
			continue
		}
		e := outBuf[n*eventSize : (n+1)*eventSize]
		clear(e)
		copy(e, ev.userdata[:])
		binary.LittleEndian.PutUint16(e[8:], uint16(ev.errno))
		e[10] = ev.typ
		binary.LittleEndian.PutUint16(e[24:], ev.flags)
		n++
	}
	if !mem.WriteUint32Le(resultNevents, n) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// sleep sleeps for d, or until ctx ends or the Host closes.
func (st *instState) sleep(ctx context.Context, d time.Duration) {
	var closing <-chan struct{}
	if st != nil && st.closing != nil {
		closing = st.closing.Done()
	}
	var timeout <-chan time.Time
	if d != pollForever {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
	case <-ctx.Done():
	case <-closing:
	}
}
