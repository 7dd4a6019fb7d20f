package wasmhost

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// poller waits for a listener instance's sockets without holding an OS
// thread: the sockets are registered (level-triggered) in an epoll instance
// of its own, and that epoll fd, itself pollable, is waited on through Go's
// network poller (an *os.File's RawConn), so an idle instance is a parked
// goroutine. A blocking ppoll(2) here held a Go processor (P) until sysmon
// took it back, which on two cores starved the other goroutines for up to
// 10 ms, and took a thread per idle instance. The instance's context ending,
// and clock timeouts, are read deadlines on that file.
type poller struct {
	epfd       int
	file       *os.File
	raw        syscall.RawConn
	stops      []func() bool        // the context.AfterFuncs that end waits
	registered map[int]uint32       // host fd → epoll events
	events     []syscall.EpollEvent // epoll_wait's buffer
	want       map[int]uint32       // scratch: this poll's fds
}

func newPoller(ctx, closing context.Context) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "wasmhost-epoll") // non-blocking: Go's poller watches it
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &poller{epfd: epfd, file: f, raw: raw, registered: map[int]uint32{}, want: map[int]uint32{}, events: make([]syscall.EpollEvent, 64)}
	end := func() { f.SetReadDeadline(time.Unix(1, 0)) }
	p.stops = append(p.stops, context.AfterFunc(ctx, end))
	if closing != nil {
		p.stops = append(p.stops, context.AfterFunc(closing, end))
	}
	return p, nil
}

func (p *poller) close() {
	for _, stop := range p.stops {
		stop()
	}
	p.file.Close()
}

// forget drops a host fd about to be closed from the registrations (the
// kernel drops it on close; the number may come back for another socket).
func (p *poller) forget(fd int) {
	if _, ok := p.registered[fd]; ok {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
		delete(p.registered, fd)
	}
}

// set makes the registrations exactly p.want.
func (p *poller) set() {
	for fd := range p.registered {
		if _, ok := p.want[fd]; !ok {
			syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
			delete(p.registered, fd)
		}
	}
	for fd, ev := range p.want {
		if old, ok := p.registered[fd]; ok && old == ev {
			continue
		}
		e := syscall.EpollEvent{Events: ev, Fd: int32(fd)}
		err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, fd, &e)
		if errors.Is(err, syscall.ENOENT) {
			err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &e)
		}
		if err == nil {
			p.registered[fd] = ev
		} else {
			delete(p.registered, fd)
		}
	}
}

// pollSockets waits up to wait (pollForever: no limit) until one of the
// events' sockets is ready, or the instance's context ends, and marks the
// ready events.
func (st *instState) pollSockets(ctx context.Context, events []pollEvent, wait time.Duration) uint64 {
	s := st.socks
	if s.poller == nil {
		p, err := newPoller(ctx, st.closing)
		if err != nil {
			return errnoIO
		}
		s.poller = p
	}
	p := s.poller
	clear(p.want)
	for i := range events {
		ev := &events[i]
		if ev.host < 0 {
			continue
		}
		if ev.typ == eventTypeFdWrite {
			p.want[ev.host] |= syscall.EPOLLOUT
		} else {
			p.want[ev.host] |= syscall.EPOLLIN | syscall.EPOLLRDHUP
		}
	}
	p.set()

	n := 0
	check := func() bool {
		var err error
		n, err = syscall.EpollWait(p.epfd, p.events, 0)
		if err != nil {
			n = 0
			return !errors.Is(err, syscall.EINTR)
		}
		return n > 0
	}
	stopped := func() bool { return ctx.Err() != nil || (st.closing != nil && st.closing.Err() != nil) }
	if !check() && wait != 0 && !stopped() {
		var deadline time.Time
		if wait != pollForever {
			deadline = time.Now().Add(wait)
		}
		p.file.SetReadDeadline(deadline)
		if !stopped() { // else an AfterFunc may have run before: do not wait
			p.raw.Read(func(uintptr) bool { return check() }) // returns on readiness, deadline or ctx
		}
	}

	ready := make(map[int]uint32, n)
	for _, e := range p.events[:n] {
		ready[int(e.Fd)] = e.Events
	}
	for i := range events {
		ev := &events[i]
		if ev.host < 0 {
			continue
		}
		r, ok := ready[ev.host]
		if !ok {
			continue
		}
		want := uint32(syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR)
		if ev.typ == eventTypeFdWrite {
			want = syscall.EPOLLOUT | syscall.EPOLLHUP | syscall.EPOLLERR
		}
		if r&want != 0 {
			ev.ready = true
		}
		if r&(syscall.EPOLLHUP|syscall.EPOLLRDHUP) != 0 {
			ev.flags |= eventFdHangup
		}
	}
	return errnoSuccess
}
