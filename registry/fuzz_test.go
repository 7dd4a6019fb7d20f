package registry

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds arbitrary bytes to the handler: whatever miekg/dns unpacks,
// ServeDNS must answer with exactly one reply that packs, with the request's ID,
// within the transport's size limit, and never with SERVFAIL (which only a
// recovered panic or an unpackable reply would produce).
func FuzzServeDNS(f *testing.F) {
	seeds := []*dns.Msg{
		query("web.service.strata.", dns.TypeA),
		query("Web.Service.Strata.", dns.TypeAAAA),
		query("web.service.strata.", dns.TypeSRV),
		query("prod.web.service.strata.", dns.TypeSRV),
		query("_web._tcp.service.strata.", dns.TypeSRV),
		query("_web._prod.service.strata.", dns.TypeA),
		query("edge-1.node.strata.", dns.TypeA),
		query("EDGE-4.Node.strata.", dns.TypeAAAA),
		query("node.strata.", dns.TypeA),
		query("big.service.strata.", dns.TypeSRV),
		query("0a000001.addr.strata.", dns.TypeA),
		query("20010db8000000000000000000000001.addr.strata.", dns.TypeAAAA),
		query("nope.service.strata.", dns.TypeANY),
		query("down.service.strata.", dns.TypeTXT),
		query("strata.", dns.TypeSOA),
		query("example.com.", dns.TypeA),
		withClass(query("web.service.strata.", dns.TypeA), dns.ClassCHAOS),
		withOpcode(query("strata.", dns.TypeSOA), dns.OpcodeUpdate),
		withEDNS(query("big.service.strata.", dns.TypeSRV), 1232, 0),
		withEDNS(query("web.service.strata.", dns.TypeA), 4096, 1),
	}
	two := query("web.service.strata.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	seeds = append(seeds, two)
	for _, m := range seeds {
		b, err := m.Pack()
		if err != nil {
			f.Fatalf("seed %v: %v", m.Question, err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}

	s := newTestServer(f, DNSConfig{})
	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		r := new(dns.Msg)
		if err := r.Unpack(data); err != nil {
			return
		}
		w := &recorder{tcp: tcp}
		s.ServeDNS(w, r)
		got, size := w.only(t)
		if got.Id != r.Id || !got.Response {
			t.Fatalf("reply id %d response %v, request id %d", got.Id, got.Response, r.Id)
		}
		if got.Rcode == dns.RcodeServerFailure {
			t.Fatalf("SERVFAIL for %v", r)
		}
		limit := dns.MaxMsgSize
		if !tcp {
			opt, _ := requestOPT(r)
			limit = udpSize(opt)
		}
		if size > limit {
			t.Fatalf("reply is %d bytes, limit %d (tcp=%v)", size, limit, tcp)
		}
	})
}
