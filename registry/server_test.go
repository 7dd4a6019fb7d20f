package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/strata-run/strata/internal/testutil"
)

// serverGoroutines returns the stacks of goroutines that belong to a listening
// DNSServer: its owner goroutine and miekg/dns's serving loops and handlers.
func serverGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/miekg/dns.(*Server)") ||
			strings.Contains(g, "registry.(*DNSServer).run") ||
			strings.Contains(g, "registry.(*DNSServer).Listen") {
			found = append(found, g)
		}
	}
	return found
}

// requireNoServerGoroutines checks that no server goroutine is left. Shutdown
// returns once they have signalled their end, but a goroutine that has closed
// the channel Shutdown waits on still has to return, and nothing announces
// that: like goleak, the check asks again, through the tests' one bounded
// poll, with the stacks it last saw as the failure.
func requireNoServerGoroutines(t *testing.T) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, "no DNS server goroutine left", func() error {
		if left := serverGoroutines(); len(left) > 0 {
			return fmt.Errorf("%d still running:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		return nil
	})
}

func exchange(t *testing.T, network, addr string, req *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(req, addr)
	if err != nil {
		t.Fatalf("%s exchange with %s: %v", network, addr, err)
	}
	return r
}

func TestListenServeShutdown(t *testing.T) {
	requireNoServerGoroutines(t)
	ctx := t.Context()
	s := newTestServer(t, DNSConfig{})
	if s.Addr() != "" {
		t.Fatalf("Addr() before Listen = %q", s.Addr())
	}
	if err := s.Listen(ctx, "127.0.0.1:0"); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if len(serverGoroutines()) == 0 {
		t.Fatal("the goroutine probe sees nothing while listening: the leak check would prove nothing")
	}
	addr := s.Addr()
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q", addr)
	}

	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, addr, query("web.service.strata.", dns.TypeA))
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 || !r.Authoritative {
			t.Errorf("%s: rcode %s, %d answers, AA %v", network, dns.RcodeToString[r.Rcode], len(r.Answer), r.Authoritative)
		}
	}
	// The same big answer: truncated over UDP, whole over TCP on the same port.
	if r := exchange(t, "udp", addr, query("big.service.strata.", dns.TypeSRV)); !r.Truncated {
		t.Errorf("UDP: 40 SRV records not truncated (%d answers)", len(r.Answer))
	}
	if r := exchange(t, "tcp", addr, query("big.service.strata.", dns.TypeSRV)); r.Truncated || len(r.Answer) != 40 || len(r.Extra) != 40 {
		t.Errorf("TCP: TC %v, %d answers, %d additional", r.Truncated, len(r.Answer), len(r.Extra))
	}
	// A request larger than 512 bytes over UDP (the read buffer is maxUDPSize).
	big := withEDNS(query("web.service.strata.", dns.TypeA), 4096, 0)
	big.IsEdns0().Option = append(big.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 1000)})
	if r := exchange(t, "udp", addr, big); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Errorf("padded UDP query: rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}

	if err := s.Listen(ctx, "127.0.0.1:0"); !errors.Is(err, ErrAlreadyListening) {
		t.Errorf("second Listen: %v, want ErrAlreadyListening", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	requireNoServerGoroutines(t)
	requirePortFree(t, addr)

	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := s.Listen(ctx, "127.0.0.1:0"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Listen after Shutdown: %v, want ErrServerClosed", err)
	}
}

// requirePortFree binds addr over UDP and TCP, proving the server released both.
func requirePortFree(t *testing.T, addr string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP %s still bound: %v", addr, err)
	}
	pc.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP %s still bound: %v", addr, err)
	}
	ln.Close()
}

func TestListenStopsWhenContextIsDone(t *testing.T) {
	s := newTestServer(t, DNSConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	if err := s.Listen(ctx, "127.0.0.1:0"); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	addr := s.Addr()
	exchange(t, "tcp", addr, query("web.service.strata.", dns.TypeA))
	cancel()
	// Shutdown after the context ended just waits for the stop to complete.
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	requireNoServerGoroutines(t)
	requirePortFree(t, addr)
	if err := s.Listen(t.Context(), "127.0.0.1:0"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Listen after the context ended: %v, want ErrServerClosed", err)
	}
}

func TestShutdownWithOpenTCPConnection(t *testing.T) {
	s := newTestServer(t, DNSConfig{})
	if err := s.Listen(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	// An idle client connection must not hold Shutdown up (miekg/dns would
	// otherwise keep it for its 8 s idle timeout).
	conn, err := dns.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteMsg(query("web.service.strata.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an idle TCP client: %v", err)
	}
	requireNoServerGoroutines(t)
}

func TestListenErrors(t *testing.T) {
	t.Run("UDP port taken", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		s := newTestServer(t, DNSConfig{})
		if err := s.Listen(t.Context(), pc.LocalAddr().String()); err == nil {
			t.Fatal("Listen on a bound UDP port succeeded")
		}
		if s.Addr() != "" {
			t.Errorf("Addr() after a failed Listen = %q", s.Addr())
		}
		// A failed Listen leaves the server usable.
		if err := s.Listen(t.Context(), "127.0.0.1:0"); err != nil {
			t.Fatalf("Listen after a failure: %v", err)
		}
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		requireNoServerGoroutines(t)
	})
	t.Run("TCP port taken", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addr := ln.Addr().String()
		s := newTestServer(t, DNSConfig{})
		if err := s.Listen(t.Context(), addr); err == nil {
			t.Fatal("Listen on a bound TCP port succeeded")
		}
		// The UDP socket it opened first was released.
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("UDP %s left bound by a failed Listen: %v", addr, err)
		}
		pc.Close()
		requireNoServerGoroutines(t)
	})
	t.Run("bad address", func(t *testing.T) {
		s := newTestServer(t, DNSConfig{})
		if err := s.Listen(t.Context(), "127.0.0.1"); err == nil || !strings.HasPrefix(err.Error(), "registry: ") {
			t.Fatalf("Listen without a port: %v", err)
		}
	})
	t.Run("context already done", func(t *testing.T) {
		s := newTestServer(t, DNSConfig{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.Listen(ctx, "127.0.0.1:0"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Listen with a done context: %v", err)
		}
	})
	t.Run("Shutdown before Listen", func(t *testing.T) {
		s := newTestServer(t, DNSConfig{})
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(t.Context(), "127.0.0.1:0"); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Listen after Shutdown: %v", err)
		}
	})
}
