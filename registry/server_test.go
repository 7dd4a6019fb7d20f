package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
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

// TestGarbageUDP: packets that are not DNS, or barely, never stop the server:
// they are dropped or answered (FORMERR for a header it can read), and a real
// query afterwards is answered as usual.
func TestGarbageUDP(t *testing.T) {
	s := newTestServer(t, DNSConfig{})
	if err := s.Listen(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	valid, _ := query("web.service.strata.", dns.TypeA).Pack()
	for i := range 300 {
		var b []byte
		switch i % 3 {
		case 0: // random bytes of random length
			b = make([]byte, rng.IntN(600))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		case 1: // a valid query with bytes flipped
			b = slices.Clone(valid)
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		case 2: // a valid query cut short
			b = valid[:rng.IntN(len(valid))]
		}
		if _, err := conn.Write(b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	// The burst may have filled the socket's receive buffer: the kernel drops
	// what does not fit, so the first real query is retried, as a resolver would.
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	var r *dns.Msg
	for attempt := 0; attempt < 5 && r == nil; attempt++ {
		r, _, err = c.Exchange(query("web.service.strata.", dns.TypeA), s.Addr())
	}
	if r == nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Errorf("UDP after garbage: %v, %v", r, err)
	}
	if r := exchange(t, "tcp", s.Addr(), query("web.service.strata.", dns.TypeA)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Errorf("TCP after garbage: rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	// Whatever came back on the garbage socket is a DNS message.
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		if err := new(dns.Msg).Unpack(buf[:n]); err != nil {
			t.Errorf("a reply to garbage does not unpack: %v", err)
		}
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown: %v (a serving loop died)", err)
	}
}

// upstream starts a miekg/dns server on loopback answering example.com. A.
func upstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		if r.Question[0].Name == "example.com." {
			rr, _ := dns.NewRR("example.com. 60 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { srv.ActivateAndServe(); close(done) }()
		<-started
		t.Cleanup(func() { srv.Shutdown(); <-done })
	}
	return pc.LocalAddr().String()
}

// deadAddr is a loopback UDP address nobody listens on.
func deadAddr(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func TestRecursors(t *testing.T) {
	up := upstream(t)
	s := newTestServer(t, DNSConfig{Recursors: []string{deadAddr(t), up}, RecursorTimeout: time.Second})
	for _, tcp := range []bool{false, true} {
		req := query("example.com.", dns.TypeA)
		req.Id = 4242
		got, _ := ask(t, s, req, tcp)
		if got.Id != 4242 || got.Rcode != dns.RcodeSuccess || !got.RecursionAvailable || got.Authoritative {
			t.Errorf("tcp=%v: id %d rcode %s RA %v AA %v", tcp, got.Id, dns.RcodeToString[got.Rcode], got.RecursionAvailable, got.Authoritative)
		}
		checkRRs(t, "answer", got.Answer, []string{"example.com. 60 IN A 192.0.2.1"})
		// An EDNS0 query is forwarded and answered with this server's one OPT.
		got, _ = ask(t, s, withEDNS(query("nope.example.", dns.TypeA), 1232, 0), tcp)
		if got.Rcode != dns.RcodeNameError {
			t.Errorf("tcp=%v: upstream NXDOMAIN relayed as %s", tcp, dns.RcodeToString[got.Rcode])
		}
		checkOPT(t, withEDNS(query("x.", dns.TypeA), 1232, 0), got)
	}
	// Our own zone is never forwarded, and now says RA.
	got, _ := ask(t, s, query("web.service.strata.", dns.TypeA), false)
	if got.Rcode != dns.RcodeSuccess || !got.Authoritative || !got.RecursionAvailable || len(got.Answer) != 2 {
		t.Errorf("own zone with recursors: rcode %s AA %v RA %v answers %d", dns.RcodeToString[got.Rcode], got.Authoritative, got.RecursionAvailable, len(got.Answer))
	}

	dead := newTestServer(t, DNSConfig{Recursors: []string{deadAddr(t)}, RecursorTimeout: time.Second})
	if got, _ := ask(t, dead, query("example.com.", dns.TypeA), false); got.Rcode != dns.RcodeServerFailure || len(got.Question) != 1 {
		t.Errorf("no recursor answers: rcode %s, %d questions; want SERVFAIL echoing the question", dns.RcodeToString[got.Rcode], len(got.Question))
	}
}
