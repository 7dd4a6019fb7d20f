package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/miekg/dns"
)

type serverState int

const (
	stateIdle serverState = iota
	stateListening
	stateClosed
)

// portAttempts bounds the retries when addr asks for an ephemeral port: the UDP
// port the kernel picks may already be taken for TCP.
const portAttempts = 10

// Listen binds addr over both UDP and TCP (the same port; with port 0 the UDP port
// the kernel picks is reused for TCP) and serves until ctx is done or Shutdown is
// called. It returns once both listeners are bound and serving, or with the error
// that prevented it, in which case nothing is left open and Listen may be retried.
// The serving goroutines belong to the server; Shutdown stops them and waits.
//
// A server listens at most once: a second call returns ErrAlreadyListening, a call
// after Shutdown ErrServerClosed.
func (s *DNSServer) Listen(ctx context.Context, addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateListening:
		return ErrAlreadyListening
	case stateClosed:
		return ErrServerClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("registry: dns listen %s: %w", addr, err)
	}

	pc, ln, err := listenBoth(ctx, addr)
	if err != nil {
		return fmt.Errorf("registry: dns listen %s: %w", addr, err)
	}

	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	udp := &dns.Server{PacketConn: pc, Handler: s, UDPSize: maxUDPSize, NotifyStartedFunc: notify}
	tcp := &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: notify}

	// Each serving goroutine sends exactly one value: what ActivateAndServe returned.
	served := make(chan error, 2)
	for _, srv := range []*dns.Server{udp, tcp} {
		go func() { served <- srv.ActivateAndServe() }()
	}

	for n := 0; n < 2; {
		select {
		case <-started:
			n++
		case err := <-served:
			// One loop failed (before or after starting): close both sockets so the
			// other loop returns too, and wait for it.
			if err == nil {
				err = errors.New("server stopped while starting")
			}
			pc.Close()
			ln.Close()
			<-served
			return fmt.Errorf("registry: dns serve %s: %w", addr, err)
		}
	}

	s.state = stateListening
	s.udpAddr = pc.LocalAddr().String()
	s.quit = make(chan struct{})
	s.done = make(chan struct{})
	go s.run(ctx, udp, tcp, served)
	return nil
}

// run owns the two dns.Servers: it waits for ctx or Shutdown, stops them, waits
// for both serving goroutines, records their errors and closes s.done.
func (s *DNSServer) run(ctx context.Context, udp, tcp *dns.Server, served <-chan error) {
	var errs []error
	pending := 2
wait:
	for pending > 0 {
		select {
		case <-ctx.Done():
			break wait
		case <-s.quit:
			break wait
		case err := <-served:
			// A serving loop died on its own (the other protocol keeps serving).
			pending--
			if err != nil {
				s.log.Error("DNS server stopped", "err", err)
				errs = append(errs, err)
			}
		}
	}
	// ShutdownContext unblocks the reads and waits for in-flight handlers, which are
	// bounded by the servers' read/write timeouts. Its "not started" error cannot
	// happen here (Listen waited for both to start), and a loop that already
	// returned makes it return at once.
	udp.ShutdownContext(context.Background())
	tcp.ShutdownContext(context.Background())
	for ; pending > 0; pending-- {
		if err := <-served; err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	s.state = stateClosed
	s.err = errors.Join(errs...)
	s.mu.Unlock()
	close(s.done)
}

// Addr returns the bound UDP address (host:port), "" if the server never listened.
// The TCP listener is bound to the same address.
func (s *DNSServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udpAddr
}

// Shutdown stops the listeners and waits until every serving goroutine has
// returned, or until ctx is done (then it returns ctx's error and the goroutines
// finish on their own shortly after). It returns the errors, if any, that stopped a
// listener before Shutdown. It is safe to call more than once and before Listen.
func (s *DNSServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case stateIdle:
		s.state = stateClosed
		s.mu.Unlock()
		return nil
	case stateListening:
		s.state = stateClosed
		close(s.quit)
	}
	done := s.done
	s.mu.Unlock()
	if done == nil { // closed without ever listening
		return nil
	}
	select {
	case <-done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// listenBoth binds addr over UDP, then TCP on the same IP and port.
func listenBoth(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	ephemeral := port == "" || port == "0"
	var lc net.ListenConfig
	for attempt := 1; ; attempt++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, err
		}
		u := pc.LocalAddr().(*net.UDPAddr)
		tcpAddr := net.JoinHostPort(u.IP.String(), strconv.Itoa(u.Port))
		if u.Zone != "" {
			tcpAddr = net.JoinHostPort(u.IP.String()+"%"+u.Zone, strconv.Itoa(u.Port))
		}
		ln, err := lc.Listen(ctx, "tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if !ephemeral || attempt == portAttempts {
			return nil, nil, err
		}
	}
}
