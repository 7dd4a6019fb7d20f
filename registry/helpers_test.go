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
//	web:  a1 10.0.0.1:8080 [prod] on edge-1, a2 10.0.0.2:8080 [canary] on edge-2,
//	      a3 10.0.0.1:9090 [prod, Blue] on edge-1, a4 10.0.0.3:8080 critical,
//	      a5 [2001:db8::1]:8080 [prod] on edge-4, a6 10.0.0.6:8080 warning
//	down: 10.0.1.1:80 critical only
//	v6:   [2001:db8::2]:443 on edge-4, whose address is 2001:db8::1 (an addr target)
//	odd:  a bogus address, port 0, a v4-mapped and a zoned v6 address, a node
//	      name that is not a label
//	big:  40 passing instances 10.1.0.1..40:7000
func fixture() []Instance {
	in := []Instance{
		{ID: "a1", Service: "web", Tags: []string{"prod"}, AllocID: "a1", NodeID: "n1", Node: "edge-1", NodeAddress: "10.0.0.1", Address: "10.0.0.1", Port: 8080, Health: HealthPassing},
		{ID: "a2", Service: "web", Tags: []string{"canary"}, AllocID: "a2", NodeID: "n2", Node: "Edge-2", NodeAddress: "10.0.0.2", Address: "10.0.0.2", Port: 8080, Health: HealthPassing},
		{ID: "a3", Service: "web", Tags: []string{"prod", "Blue"}, AllocID: "a3", NodeID: "n1", Node: "edge-1", NodeAddress: "10.0.0.1", Address: "10.0.0.1", Port: 9090, Health: HealthPassing},
		{ID: "a4", Service: "web", Tags: []string{"prod"}, AllocID: "a4", NodeID: "n3", Node: "edge-3", NodeAddress: "10.0.0.3", Address: "10.0.0.3", Port: 8080, Health: HealthCritical},
		{ID: "a5", Service: "web", Tags: []string{"prod"}, AllocID: "a5", NodeID: "n4", Node: "edge-4", NodeAddress: "2001:db8::1", Address: "2001:db8::1", Port: 8080, Health: HealthPassing},
		{ID: "a6", Service: "web", Tags: []string{"prod"}, AllocID: "a6", NodeID: "n6", Node: "edge-6", NodeAddress: "10.0.0.6", Address: "10.0.0.6", Port: 8080, Health: HealthWarning},
		{ID: "d1", Service: "down", AllocID: "d1", NodeID: "n1", Node: "edge-1", NodeAddress: "10.0.0.1", Address: "10.0.1.1", Port: 80, Health: HealthCritical},
		{ID: "s1", Service: "v6", AllocID: "s1", NodeID: "n4", Node: "edge-4", NodeAddress: "2001:db8::1", Address: "2001:db8::2", Port: 443, Health: HealthPassing},
		// odd: what agents should never report, but DNS must survive.
		{ID: "o1", Service: "odd", AllocID: "o1", Address: "bogus", Port: 80, Health: HealthPassing},
		{ID: "o2", Service: "odd", AllocID: "o2", Address: "10.0.2.1", Port: 0, Health: HealthPassing},
		{ID: "o3", Service: "odd", AllocID: "o3", Address: "::ffff:10.0.2.2", Port: 53, Health: HealthPassing},
		{ID: "o4", Service: "odd", AllocID: "o4", Address: "fe80::1%eth0", Port: 54, Health: HealthPassing},
		{ID: "o5", Service: "odd", AllocID: "o5", Node: "my.node", NodeAddress: "10.0.2.3", Address: "10.0.2.3", Port: 55, Health: HealthPassing},
	}
	return append(in, bigService("big", 40)...)
}

func bigService(name string, n int) []Instance {
	in := make([]Instance, n)
	for i := range in {
		addr := fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
		in[i] = Instance{
			ID:          fmt.Sprintf("%s-%03d", name, i),
			Service:     name,
			AllocID:     fmt.Sprintf("%s-%d", name, i),
			NodeID:      fmt.Sprintf("node-%d", i),
			Node:        fmt.Sprintf("%s-edge-%d", name, i),
			NodeAddress: addr,
			Address:     addr,
			Port:        7000,
			Health:      HealthPassing,
		}
	}
	return in
}

// holderOf returns a Holder publishing in at index 1.
func holderOf(t testing.TB, in []Instance) *Holder {
	t.Helper()
	s, err := NewSnapshot(1, in)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	return NewHolder(s)
}

// newTestServer returns a server over cfg, by default over the fixture with
// seed 1 (answers are shuffled reproducibly).
func newTestServer(t testing.TB, cfg DNSConfig) *DNSServer {
	t.Helper()
	if cfg.Snapshots == nil {
		cfg.Snapshots = holderOf(t, fixture())
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	s, err := NewDNS(cfg)
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	return s
}
