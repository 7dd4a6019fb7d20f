package wasmhost

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"sync"
	"syscall"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// Listener-mode sockets, around three gaps in wazero v1.12's experimental
// socket support:
//
//   - poll_oneoff reports a non-blocking socket as always ready (an idle Go
//     server spins a core) and its sockets' Poll returns ENOSYS;
//   - closing an accepted connection never closes the host socket
//     (tcpConnFile.close marks it closed, then calls Shutdown(SHUT_RDWR),
//     which calls close again and returns): a client waits on a dead
//     connection until Go's GC finalizes it, after the guest closed it or the
//     instance ended;
//   - a blocking accept cannot be interrupted, so a stopped instance waiting
//     in one never ends.
//
// Listener instances therefore import our own variant of
// wasi_snapshot_preview1 (listenerWASIName, see instantiateWASI) whose
// sock_accept, fd_close and fd_renumber keep track of the accepted
// connections and close them for real. They reach wazero's fd table by
// reflection on its internals, read-only except through its own exported
// methods: (*wasm.ModuleInstance).Sys.FS() is the *sys.FSContext, whose
// SockAccept, CloseFile, Renumber, LookupFile and Close do the work; a
// *FileEntry's File is a *sysfs.tcpListenerFile (field tl *net.TCPListener)
// or *sysfs.tcpConnFile (field tc *net.TCPConn), which give the host fds.
// TestPollOneoffSockets and the listener tests pin this shape; if a wazero
// upgrade changes it, these functions fail with EIO/ENOSYS and poll_oneoff
// falls back to wazero's "always ready" with a short wait (logged once).

// fdKind is what pollOneoff needs to know about a guest fd.
type fdKind int

const (
	fdOther   fdKind = iota // open, not a socket: always ready
	fdClosed                // not open: an EBADF event
	fdSocket                // a TCP socket with a host fd to poll
	fdUnknown               // cannot tell (reflection failed): treated as ready
)

// sockets is one listener instance's view of its sockets. Used from the
// instance's own goroutine only (WASI calls of one instance never run
// concurrently), except close and forceClose.
type sockets struct {
	fsc    reflect.Value // the instance's *sys.FSContext, once seen
	broken bool          // reflection failed once

	listenerFD int32
	listener   int                 // the listener's host fd; -1 until looked up
	conns      map[int32]*sockConn // by guest fd: connections accepted by our sock_accept

	poller *poller // waits for the sockets; nil until the first wait

	mu       sync.Mutex // guards the fields below against close and forceClose
	closed   bool
	open     map[*sockConn]bool // connections accepted and not yet closed by us
	listenLn *net.TCPListener   // the listener, once looked up (for forceClose)
}

type sockConn struct {
	conn   *net.TCPConn
	host   int
	closed bool
}

func newSockets(listenerFD int32) *sockets {
	return &sockets{listenerFD: listenerFD, listener: -1, conns: map[int32]*sockConn{}, open: map[*sockConn]bool{}}
}

// fsContext returns the instance's *sys.FSContext, found by reflection once.
func (s *sockets) fsContext(mod api.Module) (v reflect.Value, err error) {
	if s.fsc.IsValid() {
		return s.fsc, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reflecting on wazero's module instance: %v", r)
		}
	}()
	sysCtx := reflect.ValueOf(mod).Elem().FieldByName("Sys")
	if !sysCtx.IsValid() || sysCtx.Kind() != reflect.Pointer || sysCtx.IsNil() {
		return v, fmt.Errorf("module instance %T has no Sys context", mod)
	}
	fsc := sysCtx.MethodByName("FS").Call(nil)[0]
	for _, m := range []string{"LookupFile", "SockAccept", "CloseFile", "Renumber", "Close"} {
		if !fsc.MethodByName(m).IsValid() {
			return v, fmt.Errorf("%s has no method %s", fsc.Type(), m)
		}
	}
	s.fsc = fsc
	return fsc, nil
}

// call calls the FSContext method name and converts a trailing
// experimental/sys.Errno result to a WASI errno.
func (s *sockets) call(mod api.Module, name string, args ...any) (out []reflect.Value, errno uint64) {
	fsc, err := s.fsContext(mod)
	if err != nil {
		s.broken = true
		return nil, errnoNosys
	}
	defer func() {
		if r := recover(); r != nil {
			s.broken = true
			out, errno = nil, errnoIO
		}
	}()
	in := make([]reflect.Value, len(args))
	for i, a := range args {
		in[i] = reflect.ValueOf(a)
	}
	out = fsc.MethodByName(name).Call(in)
	if len(out) > 0 {
		if e, ok := out[len(out)-1].Interface().(experimentalsys.Errno); ok {
			return out, wasiErrno(e)
		}
	}
	return out, errnoSuccess
}

// hostConn returns the *net.TCPConn or *net.TCPListener behind a guest fd's
// file, and its host fd, or ok false if the file is not a socket.
func (s *sockets) hostConn(mod api.Module, fd int32) (conn any, host int, kind fdKind) {
	out, errno := s.call(mod, "LookupFile", fd)
	if errno != errnoSuccess {
		return nil, -1, fdUnknown
	}
	if !out[1].Bool() {
		return nil, -1, fdClosed
	}
	defer func() {
		if r := recover(); r != nil {
			s.broken = true
			conn, host, kind = nil, -1, fdUnknown
		}
	}()
	file := out[0].Elem().FieldByName("File")
	if !file.IsValid() || file.IsNil() {
		return nil, -1, fdOther
	}
	impl := file.Elem()
	if impl.Kind() != reflect.Pointer || impl.Elem().Kind() != reflect.Struct {
		return nil, -1, fdOther
	}
	for _, name := range []string{"tl", "tc"} { // tcpListenerFile, tcpConnFile
		f := impl.Elem().FieldByName(name)
		if !f.IsValid() {
			continue
		}
		c := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
		sc, ok := c.(syscall.Conn)
		if !ok {
			continue
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return nil, -1, fdClosed
		}
		if err := raw.Control(func(fd uintptr) { host = int(fd) }); err != nil {
			return nil, -1, fdClosed
		}
		return c, host, fdSocket
	}
	return nil, -1, fdOther
}

// lookupFD classifies a guest fd of mod for pollOneoff.
func (st *instState) lookupFD(mod api.Module, fd int32) (fdKind, int) {
	if st == nil || st.socks == nil {
		return fdOther, -1
	}
	s := st.socks
	if c, ok := s.conns[fd]; ok {
		return fdSocket, c.host
	}
	if fd == s.listenerFD && s.listener >= 0 {
		return fdSocket, s.listener
	}
	if s.broken {
		return fdUnknown, -1
	}
	c, host, kind := s.hostConn(mod, fd)
	if s.broken {
		st.warnBroken()
		return fdUnknown, -1
	}
	if fd == s.listenerFD && kind == fdSocket {
		s.listener = host
		if ln, ok := c.(*net.TCPListener); ok {
			s.mu.Lock()
			s.listenLn = ln
			s.mu.Unlock()
		}
	}
	return kind, host
}

func (st *instState) warnBroken() {
	if st.log != nil {
		st.log.Warn("cannot see wazero's sockets: polls fall back to short waits (an idle server wakes every millisecond) and closed connections linger until garbage-collected")
	}
}

// sockAccept is WASI's sock_accept for listener instances: wazero's, plus
// recording the connection so that fd_close and the instance's end close it
// for real, and poll_oneoff polls it. A blocking accept waits here, in a poll
// the instance's context ends, rather than inside wazero, where nothing can.
func sockAccept(ctx context.Context, mod api.Module, stack []uint64) {
	fd, flags, resultFD := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	st := stateOf(ctx)
	if st == nil || st.socks == nil {
		stack[0] = errnoNosys
		return
	}
	st.noteMod(mod)
	s := st.socks
	if fd == s.listenerFD && s.blocking(mod, fd) {
		// Wait until a connection is there, or ctx ends.
		if kind, host := st.lookupFD(mod, fd); kind == fdSocket {
			ev := []pollEvent{{typ: eventTypeFdRead, fd: fd, host: host}}
			for !ev[0].ready && ctx.Err() == nil {
				if st.pollSockets(ctx, ev, pollForever) != errnoSuccess {
					break
				}
			}
			if ctx.Err() != nil {
				stack[0] = errnoIntr
				return
			}
		}
	}
	const fdflagsNonblock = 4
	out, errno := s.call(mod, "SockAccept", fd, flags&fdflagsNonblock != 0)
	if errno != errnoSuccess {
		stack[0] = errno
		if s.broken {
			st.warnBroken()
		}
		return
	}
	connFD := int32(out[0].Int())
	if c, host, kind := s.hostConn(mod, connFD); kind == fdSocket {
		if tc, ok := c.(*net.TCPConn); ok {
			sc := &sockConn{conn: tc, host: host}
			s.conns[connFD] = sc
			s.mu.Lock()
			s.open[sc] = true
			s.mu.Unlock()
		}
	}
	if !mod.Memory().WriteUint32Le(resultFD, uint32(connFD)) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// blocking reports whether the guest's fd is an open file in blocking mode.
func (s *sockets) blocking(mod api.Module, fd int32) (blocking bool) {
	if s.broken {
		return false
	}
	out, errno := s.call(mod, "LookupFile", fd)
	if errno != errnoSuccess || !out[1].Bool() {
		return false
	}
	defer func() {
		if recover() != nil {
			blocking = false
		}
	}()
	pf, ok := out[0].Elem().FieldByName("File").Interface().(interface{ IsNonblock() bool })
	return ok && !pf.IsNonblock()
}

// fdClose is WASI's fd_close for listener instances: wazero's, then the
// host socket's close that wazero forgets.
func fdClose(ctx context.Context, mod api.Module, stack []uint64) {
	fd := int32(stack[0])
	st := stateOf(ctx)
	if st == nil || st.socks == nil {
		stack[0] = errnoNosys
		return
	}
	s := st.socks
	_, errno := s.call(mod, "CloseFile", fd)
	if c, ok := s.conns[fd]; ok && errno == errnoSuccess {
		delete(s.conns, fd)
		if s.poller != nil {
			s.poller.forget(c.host)
		}
		s.closeConn(c)
	}
	stack[0] = errno
}

// fdRenumber is WASI's fd_renumber for listener instances: wazero's, keeping
// track of connections.
func fdRenumber(ctx context.Context, mod api.Module, stack []uint64) {
	from, to := int32(stack[0]), int32(stack[1])
	st := stateOf(ctx)
	if st == nil || st.socks == nil {
		stack[0] = errnoNosys
		return
	}
	s := st.socks
	_, errno := s.call(mod, "Renumber", from, to)
	if errno == errnoSuccess {
		if c, ok := s.conns[to]; ok {
			delete(s.conns, to)
			s.closeConn(c)
		}
		if c, ok := s.conns[from]; ok {
			delete(s.conns, from)
			s.conns[to] = c
		}
		if from == s.listenerFD || to == s.listenerFD {
			s.listener = -1
			s.listenerFD = to
		}
	}
	stack[0] = errno
}

func (s *sockets) closeConn(c *sockConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.conn.Close()
	}
	delete(s.open, c)
}

// close closes every connection the instance left open, and the poller. The
// instance has returned.
func (s *sockets) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.open {
		c.closed = true
		c.conn.Close()
	}
	clear(s.open)
	if s.poller != nil {
		s.poller.close()
	}
}

// forceClose closes the instance's host sockets, its listener and every
// connection, under it: the last resort to stop an instance blocked in a
// blocking socket call that our functions do not wait in (a blocking read),
// which neither its context nor wazero's close flag reach. The call then
// fails, and the instance ends at its next check. wazero's fd table is left
// alone (the instance's goroutine owns it): wazero closes its files when the
// instance ends. It reports whether there was anything to close.
func (st *instState) forceClose() bool {
	s := st.socks
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if s.listenLn != nil {
		s.listenLn.Close()
		n++
	}
	for c := range s.open {
		if !c.closed {
			c.closed = true
			c.conn.Close()
			n++
		}
	}
	return n > 0
}

// wasiErrno maps wazero's experimental/sys.Errno to WASI's, as wazero does.
func wasiErrno(e experimentalsys.Errno) uint64 {
	switch e {
	case 0:
		return errnoSuccess
	case experimentalsys.EACCES:
		return 2
	case experimentalsys.EAGAIN:
		return 6
	case experimentalsys.EBADF:
		return errnoBadf
	case experimentalsys.EEXIST:
		return 20
	case experimentalsys.EFAULT:
		return errnoFault
	case experimentalsys.EINTR:
		return errnoIntr
	case experimentalsys.EINVAL:
		return errnoInval
	case experimentalsys.EISDIR:
		return 31
	case experimentalsys.ELOOP:
		return 32
	case experimentalsys.ENAMETOOLONG:
		return 37
	case experimentalsys.ENOENT:
		return 44
	case experimentalsys.ENOSYS:
		return errnoNosys
	case experimentalsys.ENOTDIR:
		return 54
	case experimentalsys.ERANGE:
		return 68
	case experimentalsys.ENOTEMPTY:
		return 55
	case experimentalsys.ENOTSOCK:
		return 57
	case experimentalsys.ENOTSUP:
		return errnoNotsup
	case experimentalsys.EPERM:
		return 63
	case experimentalsys.EROFS:
		return 69
	default:
		return errnoIO
	}
}
