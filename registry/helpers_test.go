package registry

import (
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps every reply as it went on the wire:
// WriteMsg packs (as miekg/dns's own writer does), and both paths unpack the bytes
// again, so tests see exactly what a client would.
type recorder struct {
	tcp     bool
	replies []*dns.Msg
	sizes   []int
	errs    []error
}

func (w *recorder) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (w *recorder) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}

func (w *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		w.errs = append(w.errs, err)
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		w.errs = append(w.errs, fmt.Errorf("reply does not unpack: %w", err))
		return 0, err
	}
	w.replies = append(w.replies, m)
	w.sizes = append(w.sizes, len(b))
	return len(b), nil
}

func (w *recorder) Close() error        { return nil }
func (w *recorder) TsigStatus() error   { return nil }
func (w *recorder) TsigTimersOnly(bool) {}
func (w *recorder) Hijack()             {}

// only returns the single reply w recorded, failing the test otherwise.
func (w *recorder) only(t testing.TB) (*dns.Msg, int) {
	t.Helper()
	if len(w.errs) > 0 {
		t.Fatalf("write errors: %v", w.errs)
	}
	if len(w.replies) != 1 {
		t.Fatalf("got %d replies, want exactly 1", len(w.replies))
	}
	return w.replies[0], w.sizes[0]
}

// ask runs one query through s.ServeDNS and returns the reply and its wire size.
func ask(t testing.TB, s *DNSServer, r *dns.Msg, tcp bool) (*dns.Msg, int) {
	t.Helper()
	w := &recorder{tcp: tcp}
	s.ServeDNS(w, r)
	return w.only(t)
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// fixture is the catalog most tests use.
//
//	web:  10.0.0.1:8080 [prod], 10.0.0.2:8080 [canary], 10.0.0.1:9090 [prod, Blue],
//	      10.0.0.3:8080 unhealthy, [2001:db8::1]:8080 [prod]
//	down: 10.0.1.1:80 unhealthy only
//	v6:   [2001:db8::2]:443
//	odd:  a bogus address, bad ports, a v4-mapped and a zoned v6 address
//	big:  40 healthy endpoints 10.1.0.1..40:7000
func fixture() *StaticCatalog {
	eps := []Endpoint{
		{Service: "web", Tags: []string{"prod"}, AllocID: "a1", NodeID: "n1", NodeName: "edge-1", Address: "10.0.0.1", Port: 8080, Healthy: true},
		{Service: "web", Tags: []string{"canary"}, AllocID: "a2", NodeID: "n2", NodeName: "edge-2", Address: "10.0.0.2", Port: 8080, Healthy: true},
		{Service: "web", Tags: []string{"prod", "Blue"}, AllocID: "a3", NodeID: "n1", NodeName: "edge-1", Address: "10.0.0.1", Port: 9090, Healthy: true},
		{Service: "web", Tags: []string{"prod"}, AllocID: "a4", NodeID: "n3", NodeName: "edge-3", Address: "10.0.0.3", Port: 8080, Healthy: false},
		{Service: "web", Tags: []string{"prod"}, AllocID: "a5", NodeID: "n4", NodeName: "edge-4", Address: "2001:db8::1", Port: 8080, Healthy: true},
		{Service: "down", AllocID: "d1", NodeID: "n1", NodeName: "edge-1", Address: "10.0.1.1", Port: 80, Healthy: false},
		{Service: "v6", AllocID: "s1", NodeID: "n4", NodeName: "edge-4", Address: "2001:db8::2", Port: 443, Healthy: true},
		// odd: what agents should never report, but DNS must survive.
		{Service: "odd", AllocID: "o1", Address: "bogus", Port: 80, Healthy: true},
		{Service: "odd", AllocID: "o2", Address: "10.0.2.1", Port: 0, Healthy: true},
		{Service: "odd", AllocID: "o3", Address: "::ffff:10.0.2.2", Port: 53, Healthy: true},
		{Service: "odd", AllocID: "o4", Address: "fe80::1%eth0", Port: 54, Healthy: true},
		{Service: "odd", AllocID: "o5", Address: "10.0.2.3", Port: 70000, Healthy: true},
	}
	eps = append(eps, bigService("big", 40)...)
	return NewStaticCatalog(eps...)
}

func bigService(name string, n int) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{
			Service:  name,
			AllocID:  fmt.Sprintf("%s-%d", name, i),
			NodeID:   fmt.Sprintf("node-%d", i),
			NodeName: fmt.Sprintf("edge-%d", i),
			Address:  fmt.Sprintf("10.1.%d.%d", i/250, i%250+1),
			Port:     7000,
			Healthy:  true,
		}
	}
	return eps
}

func newTestServer(t testing.TB, cfg DNSConfig) *DNSServer {
	t.Helper()
	if cfg.Catalog == nil {
		cfg.Catalog = fixture()
	}
	s, err := NewDNS(cfg)
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	return s
}
