package registry

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const soaRR = "strata. 5 IN SOA ns.strata. hostmaster.strata. 1 3600 600 86400 5"

// SRV targets of the fixture.
const (
	e1  = "edge-1.node.strata."                           // 10.0.0.1
	e2  = "edge-2.node.strata."                           // 10.0.0.2
	e4  = "edge-4.node.strata."                           // 2001:db8::1
	h6b = "20010db8000000000000000000000002.addr.strata." // 2001:db8::2, not its node's address
	h1  = "0a000001.addr.strata."                         // 10.0.0.1
	h6  = "20010db8000000000000000000000001.addr.strata." // 2001:db8::1
)

type dnsCase struct {
	name   string
	msg    *dns.Msg
	rcode  int
	aa     bool
	answer []string // zone-file form, compared as sets after parsing
	ns     []string
	extra  []string // OPT excluded
}

func withClass(m *dns.Msg, class uint16) *dns.Msg {
	m.Question[0].Qclass = class
	return m
}

func withOpcode(m *dns.Msg, op int) *dns.Msg {
	m.Opcode = op
	return m
}

func withEDNS(m *dns.Msg, size uint16, version uint8) *dns.Msg {
	m.SetEdns0(size, false)
	m.IsEdns0().SetVersion(version)
	return m
}

func TestServeDNS(t *testing.T) {
	s := newTestServer(t, DNSConfig{})

	twoQuestions := query("web.service.strata.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: "v6.service.strata.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	noQuestion := query("web.service.strata.", dns.TypeA)
	noQuestion.Question = nil
	isResponse := query("web.service.strata.", dns.TypeA)
	isResponse.Response = true
	twoOPT := withEDNS(query("web.service.strata.", dns.TypeA), 1232, 0)
	twoOPT.SetEdns0(1232, false)

	cases := []dnsCase{
		// Standard service lookups: passing instances only.
		{name: "A dedupes and skips critical, warning and v6", msg: query("web.service.strata.", dns.TypeA), aa: true,
			answer: []string{"web.service.strata. 5 IN A 10.0.0.1", "web.service.strata. 5 IN A 10.0.0.2"}},
		{name: "AAAA", msg: query("web.service.strata.", dns.TypeAAAA), aa: true,
			answer: []string{"web.service.strata. 5 IN AAAA 2001:db8::1"}},
		{name: "SRV targets name the node, its address in additional", msg: query("web.service.strata.", dns.TypeSRV), aa: true,
			answer: []string{
				"web.service.strata. 5 IN SRV 1 1 8080 " + e1,
				"web.service.strata. 5 IN SRV 1 1 8080 " + e2,
				"web.service.strata. 5 IN SRV 1 1 9090 " + e1,
				"web.service.strata. 5 IN SRV 1 1 8080 " + e4,
			},
			extra: []string{e1 + " 5 IN A 10.0.0.1", e2 + " 5 IN A 10.0.0.2", e4 + " 5 IN AAAA 2001:db8::1"}},
		{name: "v6-only service: A is NODATA", msg: query("v6.service.strata.", dns.TypeA), aa: true, ns: []string{soaRR}},
		{name: "SRV of an instance off its node's address: addr target", msg: query("v6.service.strata.", dns.TypeSRV), aa: true,
			answer: []string{"v6.service.strata. 5 IN SRV 1 1 443 " + h6b},
			extra:  []string{h6b + " 5 IN AAAA 2001:db8::2"}},
		{name: "class ANY is served", msg: withClass(query("web.service.strata.", dns.TypeAAAA), dns.ClassANY), aa: true,
			answer: []string{"web.service.strata. 5 IN AAAA 2001:db8::1"}},
		{name: "odd instances are skipped or normalised", msg: query("odd.service.strata.", dns.TypeSRV), aa: true,
			answer: []string{
				"odd.service.strata. 5 IN SRV 1 1 53 0a000202.addr.strata.",
				"odd.service.strata. 5 IN SRV 1 1 54 fe800000000000000000000000000001.addr.strata.",
				"odd.service.strata. 5 IN SRV 1 1 55 0a000203.addr.strata.",
			},
			extra: []string{
				"0a000202.addr.strata. 5 IN A 10.0.2.2",
				"fe800000000000000000000000000001.addr.strata. 5 IN AAAA fe80::1",
				"0a000203.addr.strata. 5 IN A 10.0.2.3",
			}},
		{name: "odd instances: A keeps port-less addresses", msg: query("odd.service.strata.", dns.TypeA), aa: true,
			answer: []string{
				"odd.service.strata. 5 IN A 10.0.2.1",
				"odd.service.strata. 5 IN A 10.0.2.2",
				"odd.service.strata. 5 IN A 10.0.2.3",
			}},

		// Tags.
		{name: "tag A", msg: query("prod.web.service.strata.", dns.TypeA), aa: true,
			answer: []string{"prod.web.service.strata. 5 IN A 10.0.0.1"}},
		{name: "tag SRV", msg: query("prod.web.service.strata.", dns.TypeSRV), aa: true,
			answer: []string{
				"prod.web.service.strata. 5 IN SRV 1 1 8080 " + e1,
				"prod.web.service.strata. 5 IN SRV 1 1 9090 " + e1,
				"prod.web.service.strata. 5 IN SRV 1 1 8080 " + e4,
			},
			extra: []string{e1 + " 5 IN A 10.0.0.1", e4 + " 5 IN AAAA 2001:db8::1"}},
		{name: "tag matched case-insensitively", msg: query("blue.web.service.strata.", dns.TypeSRV), aa: true,
			answer: []string{"blue.web.service.strata. 5 IN SRV 1 1 9090 " + e1},
			extra:  []string{e1 + " 5 IN A 10.0.0.1"}},
		{name: "tag nobody carries is NXDOMAIN", msg: query("staging.web.service.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},

		// RFC 2782.
		{name: "RFC 2782 _tcp means no tag", msg: query("_web._tcp.service.strata.", dns.TypeSRV), aa: true,
			answer: []string{
				"_web._tcp.service.strata. 5 IN SRV 1 1 8080 " + e1,
				"_web._tcp.service.strata. 5 IN SRV 1 1 8080 " + e2,
				"_web._tcp.service.strata. 5 IN SRV 1 1 9090 " + e1,
				"_web._tcp.service.strata. 5 IN SRV 1 1 8080 " + e4,
			},
			extra: []string{e1 + " 5 IN A 10.0.0.1", e2 + " 5 IN A 10.0.0.2", e4 + " 5 IN AAAA 2001:db8::1"}},
		{name: "RFC 2782 tag", msg: query("_web._canary.service.strata.", dns.TypeSRV), aa: true,
			answer: []string{"_web._canary.service.strata. 5 IN SRV 1 1 8080 " + e2},
			extra:  []string{e2 + " 5 IN A 10.0.0.2"}},
		{name: "RFC 2782 A", msg: query("_web._canary.service.strata.", dns.TypeA), aa: true,
			answer: []string{"_web._canary.service.strata. 5 IN A 10.0.0.2"}},
		{name: "RFC 2782 empty tag", msg: query("_web._.service.strata.", dns.TypeSRV), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "RFC 2782 parent is an empty non-terminal", msg: query("_tcp.service.strata.", dns.TypeSRV), aa: true,
			ns: []string{soaRR}},

		// Case-insensitivity: owner names echo the question.
		{name: "mixed-case name", msg: query("Web.SERVICE.Strata.", dns.TypeA), aa: true,
			answer: []string{"Web.SERVICE.Strata. 5 IN A 10.0.0.1", "Web.SERVICE.Strata. 5 IN A 10.0.0.2"}},
		{name: "mixed-case tag and RFC 2782", msg: query("_WEB._Canary.Service.STRATA.", dns.TypeA), aa: true,
			answer: []string{"_WEB._Canary.Service.STRATA. 5 IN A 10.0.0.2"}},

		// node.
		{name: "node A", msg: query(e1, dns.TypeA), aa: true, answer: []string{e1 + " 5 IN A 10.0.0.1"}},
		{name: "node registered mixed-case, asked uppercase", msg: query("EDGE-2.node.strata.", dns.TypeA), aa: true,
			answer: []string{"EDGE-2.node.strata. 5 IN A 10.0.0.2"}},
		{name: "node AAAA", msg: query(e4, dns.TypeAAAA), aa: true, answer: []string{e4 + " 5 IN AAAA 2001:db8::1"}},
		{name: "node of a critical instance still resolves", msg: query("edge-3.node.strata.", dns.TypeA), aa: true,
			answer: []string{"edge-3.node.strata. 5 IN A 10.0.0.3"}},
		{name: "node v4 asked AAAA", msg: query(e1, dns.TypeAAAA), aa: true, ns: []string{soaRR}},
		{name: "node SRV is NODATA", msg: query(e1, dns.TypeSRV), aa: true, ns: []string{soaRR}},
		{name: "unknown node", msg: query("edge-99.node.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "node extra label", msg: query("x.edge-1.node.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "node empty non-terminal", msg: query("node.strata.", dns.TypeA), aa: true, ns: []string{soaRR}},

		// addr.
		{name: "addr A", msg: query(h1, dns.TypeA), aa: true, answer: []string{h1 + " 5 IN A 10.0.0.1"}},
		{name: "addr uppercase", msg: query("0A0000FF.ADDR.STRATA.", dns.TypeA), aa: true,
			answer: []string{"0A0000FF.ADDR.STRATA. 5 IN A 10.0.0.255"}},
		{name: "addr AAAA", msg: query(h6, dns.TypeAAAA), aa: true, answer: []string{h6 + " 5 IN AAAA 2001:db8::1"}},
		{name: "addr v4 asked AAAA", msg: query(h1, dns.TypeAAAA), aa: true, ns: []string{soaRR}},
		{name: "addr v6 asked A", msg: query(h6, dns.TypeA), aa: true, ns: []string{soaRR}},
		{name: "addr bad hex", msg: query("zz000001.addr.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "addr bad length", msg: query("0a0001.addr.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "addr extra label", msg: query("x.0a000001.addr.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "addr empty non-terminal", msg: query("addr.strata.", dns.TypeA), aa: true, ns: []string{soaRR}},

		// NXDOMAIN and NODATA.
		{name: "unknown service", msg: query("nope.service.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "unknown service ANY", msg: query("nope.service.strata.", dns.TypeANY), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "critical-only service A", msg: query("down.service.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "critical-only service SRV", msg: query("down.service.strata.", dns.TypeSRV), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "ANY is NODATA", msg: query("web.service.strata.", dns.TypeANY), aa: true, ns: []string{soaRR}},
		{name: "TXT is NODATA", msg: query("web.service.strata.", dns.TypeTXT), aa: true, ns: []string{soaRR}},
		{name: "MX is NODATA", msg: query("web.service.strata.", dns.TypeMX), aa: true, ns: []string{soaRR}},
		{name: "too many labels", msg: query("a.prod.web.service.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "escaped dot is never ours", msg: query(`prod\.web.service.strata.`, dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "service empty non-terminal", msg: query("service.strata.", dns.TypeA), aa: true, ns: []string{soaRR}},
		{name: "unknown kind", msg: query("edge-1.query.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "unknown name", msg: query("www.strata.", dns.TypeA), aa: true,
			rcode: dns.RcodeNameError, ns: []string{soaRR}},
		{name: "apex SOA", msg: query("strata.", dns.TypeSOA), aa: true, answer: []string{soaRR}},
		{name: "apex SOA mixed case", msg: query("STRATA.", dns.TypeSOA), aa: true, answer: []string{soaRR}},
		{name: "apex A is NODATA", msg: query("strata.", dns.TypeA), aa: true, ns: []string{soaRR}},
		{name: "SOA below the apex is NODATA", msg: query("web.service.strata.", dns.TypeSOA), aa: true, ns: []string{soaRR}},

		// Not ours, or not a query we serve.
		{name: "other zone without recursors", msg: query("example.com.", dns.TypeA), rcode: dns.RcodeRefused},
		{name: "suffix is not a label boundary", msg: query("xstrata.", dns.TypeA), rcode: dns.RcodeRefused},
		{name: "domain as a non-final label", msg: query("strata.example.", dns.TypeA), rcode: dns.RcodeRefused},
		{name: "root", msg: query(".", dns.TypeNS), rcode: dns.RcodeRefused},
		{name: "class CHAOS", msg: withClass(query("version.bind.", dns.TypeTXT), dns.ClassCHAOS), rcode: dns.RcodeRefused},
		{name: "class CHAOS in our zone", msg: withClass(query("web.service.strata.", dns.TypeA), dns.ClassCHAOS), rcode: dns.RcodeRefused},
		{name: "no question", msg: noQuestion, rcode: dns.RcodeFormatError},
		{name: "two questions", msg: twoQuestions, rcode: dns.RcodeFormatError},
		{name: "QR bit set", msg: isResponse, rcode: dns.RcodeFormatError},
		{name: "two OPT records", msg: twoOPT, rcode: dns.RcodeFormatError},
		{name: "name not fully qualified", msg: query("web.service.strata", dns.TypeA), rcode: dns.RcodeFormatError},
		{name: "bad name in another class", msg: withClass(query("a..b", dns.TypeA), dns.ClassCHAOS), rcode: dns.RcodeRefused},
		{name: "bad name with a bad opcode", msg: withOpcode(query("a..b", dns.TypeA), dns.OpcodeUpdate), rcode: dns.RcodeNotImplemented},
		{name: "opcode UPDATE", msg: withOpcode(query("strata.", dns.TypeSOA), dns.OpcodeUpdate), rcode: dns.RcodeNotImplemented},
		{name: "opcode NOTIFY", msg: withOpcode(query("strata.", dns.TypeSOA), dns.OpcodeNotify), rcode: dns.RcodeNotImplemented},
		{name: "opcode STATUS", msg: withOpcode(query("strata.", dns.TypeSOA), dns.OpcodeStatus), rcode: dns.RcodeNotImplemented},
		{name: "AXFR", msg: query("strata.", dns.TypeAXFR), rcode: dns.RcodeNotImplemented},

		// EDNS0.
		{name: "EDNS0 query gets an OPT back", msg: withEDNS(query("web.service.strata.", dns.TypeA), 1232, 0), aa: true,
			answer: []string{"web.service.strata. 5 IN A 10.0.0.1", "web.service.strata. 5 IN A 10.0.0.2"}},
		{name: "EDNS version 1", msg: withEDNS(query("web.service.strata.", dns.TypeA), 1232, 1), rcode: dns.RcodeBadVers},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, tcp := range []bool{false, true} {
				got, _ := ask(t, s, tc.msg, tcp)
				checkHeader(t, tc.msg, got, tc.rcode, tc.aa)
				checkRRs(t, "answer", got.Answer, tc.answer)
				checkRRs(t, "authority", got.Ns, tc.ns)
				checkRRs(t, "additional", got.Extra, tc.extra)
				if got.Truncated {
					t.Errorf("TC set on a small reply (tcp=%v)", tcp)
				}
				checkOPT(t, tc.msg, got)
			}
		})
	}
}

func checkHeader(t *testing.T, req, got *dns.Msg, rcode int, aa bool) {
	t.Helper()
	if got.Id != req.Id || !got.Response {
		t.Errorf("id %d response %v, want id %d response true", got.Id, got.Response, req.Id)
	}
	if got.Rcode != rcode {
		t.Errorf("rcode %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[rcode])
	}
	if got.Authoritative != aa {
		t.Errorf("AA %v, want %v", got.Authoritative, aa)
	}
	if got.RecursionAvailable {
		t.Errorf("RA set without recursors")
	}
	if req.Opcode == dns.OpcodeQuery && got.RecursionDesired != req.RecursionDesired {
		t.Errorf("RD %v, want it copied (%v)", got.RecursionDesired, req.RecursionDesired)
	}
}

// checkRRs compares rrs (OPT excluded) with want as sets, in presentation form:
// answers are shuffled per query.
func checkRRs(t *testing.T, section string, rrs []dns.RR, want []string) {
	t.Helper()
	var got, exp []string
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			got = append(got, rr.String())
		}
	}
	for _, s := range want {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad expectation %q: %v", s, err)
		}
		exp = append(exp, rr.String())
	}
	slices.Sort(got)
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		t.Errorf("%s section:\n got: %s\nwant: %s", section, strings.Join(got, "\n      "), strings.Join(exp, "\n      "))
	}
}

// checkOPT: a request with OPT gets exactly one OPT (advertising 4096), others none.
func checkOPT(t *testing.T, req, got *dns.Msg) {
	t.Helper()
	n := 0
	for _, rr := range got.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	switch {
	case req.IsEdns0() == nil && n != 0:
		t.Errorf("reply has %d OPT records, request had none", n)
	case req.IsEdns0() != nil && n != 1:
		t.Errorf("reply has %d OPT records, want 1", n)
	case n == 1 && got.IsEdns0().UDPSize() != maxUDPSize:
		t.Errorf("reply advertises %d bytes, want %d", got.IsEdns0().UDPSize(), maxUDPSize)
	}
}

func TestServeDNSTruncation(t *testing.T) {
	s := newTestServer(t, DNSConfig{Snapshots: holderOf(t, append(bigService("big", 40), bigService("huge", 300)...))})

	cases := []struct {
		name      string
		msg       *dns.Msg
		tcp       bool
		limit     int  // the reply must fit in this many bytes
		tc        bool // TC expected
		answers   int  // exact count when !tc
		additions int
	}{
		{name: "SRV over UDP without EDNS0", msg: query("big.service.strata.", dns.TypeSRV), limit: 512, tc: true},
		{name: "A over UDP without EDNS0", msg: query("big.service.strata.", dns.TypeA), limit: 512, tc: true},
		{name: "SRV over UDP, EDNS0 1232", msg: withEDNS(query("big.service.strata.", dns.TypeSRV), 1232, 0), limit: 1232, tc: true},
		{name: "SRV over UDP, EDNS0 below 512 counts as 512", msg: withEDNS(query("big.service.strata.", dns.TypeSRV), 100, 0), limit: 512, tc: true},
		{name: "SRV over UDP, EDNS0 4096 fits", msg: withEDNS(query("big.service.strata.", dns.TypeSRV), 4096, 0), limit: 4096, answers: 40, additions: 40},
		{name: "SRV over UDP, EDNS0 above our cap", msg: withEDNS(query("huge.service.strata.", dns.TypeSRV), 65000, 0), limit: maxUDPSize, tc: true},
		{name: "SRV over TCP", msg: query("big.service.strata.", dns.TypeSRV), tcp: true, limit: dns.MaxMsgSize, answers: 40, additions: 40},
		{name: "A over TCP", msg: query("big.service.strata.", dns.TypeA), tcp: true, limit: dns.MaxMsgSize, answers: 40},
		{name: "huge SRV over TCP", msg: query("huge.service.strata.", dns.TypeSRV), tcp: true, limit: dns.MaxMsgSize, answers: 300, additions: 300},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, size := ask(t, s, tc.msg, tc.tcp)
			if got.Rcode != dns.RcodeSuccess || !got.Authoritative {
				t.Fatalf("rcode %s AA %v", dns.RcodeToString[got.Rcode], got.Authoritative)
			}
			if size > tc.limit {
				t.Errorf("reply is %d bytes, limit %d", size, tc.limit)
			}
			if got.Truncated != tc.tc {
				t.Errorf("TC %v, want %v (size %d, %d answers)", got.Truncated, tc.tc, size, len(got.Answer))
			}
			extra := 0
			for _, rr := range got.Extra {
				if rr.Header().Rrtype != dns.TypeOPT {
					extra++
				}
			}
			if tc.tc {
				total := 40
				if strings.HasPrefix(got.Question[0].Name, "huge.") {
					total = 300
				}
				if len(got.Answer) == 0 || len(got.Answer) >= total {
					t.Errorf("truncated reply has %d answers", len(got.Answer))
				}
			} else if len(got.Answer) != tc.answers || extra != tc.additions {
				t.Errorf("%d answers, %d additional; want %d, %d", len(got.Answer), extra, tc.answers, tc.additions)
			}
			checkOPT(t, tc.msg, got)
		})
	}
}

// TestServeDNSCompresses: a reply that fits only compressed is compressed (and
// not truncated); one that fits as it is is sent uncompressed (cheaper to build).
func TestServeDNSCompresses(t *testing.T) {
	s := newTestServer(t, DNSConfig{})
	_, plain := ask(t, s, query("big.service.strata.", dns.TypeSRV), true) // TCP: fits uncompressed
	limit := uint16(plain - 1)
	got, size := ask(t, s, withEDNS(query("big.service.strata.", dns.TypeSRV), limit, 0), false)
	if size > int(limit) || got.Truncated || len(got.Answer) != 40 {
		t.Errorf("reply is %d bytes (%d answers, TC %v), limit %d, uncompressed %d: want all 40, compressed",
			size, len(got.Answer), got.Truncated, limit, plain)
	}
	got, size = ask(t, s, query("web.service.strata.", dns.TypeSRV), false)
	got.Compress = false
	if plain := got.Len(); size != plain {
		t.Errorf("small reply is %d bytes, uncompressed %d: compressed for nothing", size, plain)
	}
}

func TestServeDNSTTLAndDomain(t *testing.T) {
	s := newTestServer(t, DNSConfig{Domain: "Consul", TTL: 30 * time.Second})
	if s.Domain() != "consul." {
		t.Fatalf("Domain() = %q", s.Domain())
	}
	soa := "consul. 30 IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 30"

	req := query("prod.web.service.consul.", dns.TypeSRV)
	got, _ := ask(t, s, req, false)
	checkHeader(t, req, got, dns.RcodeSuccess, true)
	checkRRs(t, "answer", got.Answer, []string{
		"prod.web.service.consul. 30 IN SRV 1 1 8080 edge-1.node.consul.",
		"prod.web.service.consul. 30 IN SRV 1 1 9090 edge-1.node.consul.",
		"prod.web.service.consul. 30 IN SRV 1 1 8080 edge-4.node.consul.",
	})
	checkRRs(t, "additional", got.Extra, []string{"edge-1.node.consul. 30 IN A 10.0.0.1", "edge-4.node.consul. 30 IN AAAA 2001:db8::1"})

	got, _ = ask(t, s, query("edge-1.node.consul.", dns.TypeA), false)
	checkRRs(t, "answer", got.Answer, []string{"edge-1.node.consul. 30 IN A 10.0.0.1"})

	got, _ = ask(t, s, query("nope.service.consul.", dns.TypeA), false)
	checkRRs(t, "authority", got.Ns, []string{soa})

	got, _ = ask(t, s, query("web.service.strata.", dns.TypeA), false)
	if got.Rcode != dns.RcodeRefused {
		t.Errorf("strata. on a consul. server: %s, want REFUSED", dns.RcodeToString[got.Rcode])
	}
}

// TestServeDNSShuffles: answers come in a random order per query, the same
// sequence of orders for the same seed.
func TestServeDNSShuffles(t *testing.T) {
	order := func(s *DNSServer) []string {
		got, _ := ask(t, s, query("big.service.strata.", dns.TypeSRV), true)
		var names []string
		for _, rr := range got.Answer {
			names = append(names, rr.(*dns.SRV).Target)
		}
		return names
	}
	a := newTestServer(t, DNSConfig{Seed: 42})
	b := newTestServer(t, DNSConfig{Seed: 42})
	c := newTestServer(t, DNSConfig{Seed: 43})
	firsts := map[string]bool{}
	differs := false
	for i := range 200 {
		oa, ob, oc := order(a), order(b), order(c)
		if len(oa) != 40 {
			t.Fatalf("query %d: %d answers, want 40", i, len(oa))
		}
		if !slices.Equal(oa, ob) {
			t.Fatalf("query %d: same seed, different orders:\n%v\n%v", i, oa, ob)
		}
		differs = differs || !slices.Equal(oa, oc)
		firsts[oa[0]] = true
	}
	if !differs {
		t.Errorf("seeds 42 and 43 gave the same 200 orders")
	}
	if len(firsts) < 30 {
		t.Errorf("only %d of 40 instances ever came first in 200 queries", len(firsts))
	}
}

// TestServeDNSFollowsHolder: a query reads the snapshot published last.
func TestServeDNSFollowsHolder(t *testing.T) {
	h := holderOf(t, fixture())
	s := newTestServer(t, DNSConfig{Snapshots: h})
	if got, _ := ask(t, s, query("down.service.strata.", dns.TypeA), false); got.Rcode != dns.RcodeNameError {
		t.Fatalf("down before: %s", dns.RcodeToString[got.Rcode])
	}
	up := fixture()[6] // d1, critical
	up.Health = HealthPassing
	if _, err := h.Apply(Delta{Index: 2, Upserts: []Instance{up}, Deletes: []string{"a2"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := ask(t, s, query("down.service.strata.", dns.TypeA), false)
	checkRRs(t, "answer", got.Answer, []string{"down.service.strata. 5 IN A 10.0.1.1"})
	got, _ = ask(t, s, query("web.service.strata.", dns.TypeA), false)
	checkRRs(t, "answer", got.Answer, []string{"web.service.strata. 5 IN A 10.0.0.1"})
	if got, _ := ask(t, s, query("edge-2.node.strata.", dns.TypeA), false); got.Rcode != dns.RcodeNameError {
		t.Errorf("edge-2 after its only instance left: %s", dns.RcodeToString[got.Rcode])
	}
}

func TestNewDNS(t *testing.T) {
	h := NewHolder(nil)
	cases := []struct {
		name    string
		cfg     DNSConfig
		ok      bool
		domain  string
		ttl     uint32
		wantErr error
	}{
		{name: "defaults", cfg: DNSConfig{Snapshots: h}, ok: true, domain: "strata.", ttl: 5},
		{name: "not fully qualified", cfg: DNSConfig{Snapshots: h, Domain: "consul"}, ok: true, domain: "consul.", ttl: 5},
		{name: "multi-label", cfg: DNSConfig{Snapshots: h, Domain: "DC1.Strata."}, ok: true, domain: "dc1.strata.", ttl: 5},
		{name: "max TTL", cfg: DNSConfig{Snapshots: h, TTL: (1<<31 - 1) * time.Second}, ok: true, domain: "strata.", ttl: 1<<31 - 1},
		{name: "recursors", cfg: DNSConfig{Snapshots: h, Recursors: []string{"127.0.0.1", "[::1]:5353"}}, ok: true, domain: "strata.", ttl: 5},
		{name: "no catalog", cfg: DNSConfig{}, wantErr: ErrNoCatalog},
		{name: "root domain", cfg: DNSConfig{Snapshots: h, Domain: "."}},
		{name: "empty label", cfg: DNSConfig{Snapshots: h, Domain: "a..b."}},
		{name: "negative TTL", cfg: DNSConfig{Snapshots: h, TTL: -time.Second}},
		{name: "TTL too large", cfg: DNSConfig{Snapshots: h, TTL: 1 << 31 * time.Second}},
		{name: "recursor host name", cfg: DNSConfig{Snapshots: h, Recursors: []string{"dns.example:53"}}},
		{name: "recursor port 0", cfg: DNSConfig{Snapshots: h, Recursors: []string{"127.0.0.1:0"}}},
		{name: "negative recursor timeout", cfg: DNSConfig{Snapshots: h, RecursorTimeout: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewDNS(tc.cfg)
			if tc.ok {
				if err != nil {
					t.Fatalf("NewDNS: %v", err)
				}
				if s.Domain() != tc.domain || s.ttl != tc.ttl {
					t.Errorf("domain %q TTL %d, want %q %d", s.Domain(), s.ttl, tc.domain, tc.ttl)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewDNS accepted %+v", tc.cfg)
			}
			if !strings.HasPrefix(err.Error(), "registry: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tc.wantErr != nil && err != tc.wantErr {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestServeDNSLogsEachQueryAtDebug(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newTestServer(t, DNSConfig{Logger: log})
	ask(t, s, query("web.service.strata.", dns.TypeA), false)
	ask(t, s, query("example.com.", dns.TypeA), true)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		`level=DEBUG msg="dns query" component=registry.dns question="web.service.strata. IN A" rcode=NOERROR answers=2 truncated=false proto=udp`,
		`level=DEBUG msg="dns query" component=registry.dns question="example.com. IN A" rcode=REFUSED answers=0 truncated=false proto=tcp`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("log line %d:\n got %s\nwant %s", i, lines[i], want)
		}
	}
}

// A panic while answering (here: a zero Holder, which its doc forbids)
// is recovered and answered SERVFAIL.
func TestServeDNSRecoversFromPanic(t *testing.T) {
	s := newTestServer(t, DNSConfig{Snapshots: &Holder{}})
	req := withEDNS(query("web.service.strata.", dns.TypeA), 1232, 0)
	got, _ := ask(t, s, req, false)
	if got.Rcode != dns.RcodeServerFailure || got.Id != req.Id {
		t.Errorf("rcode %s id %d, want SERVFAIL id %d", dns.RcodeToString[got.Rcode], got.Id, req.Id)
	}
	checkOPT(t, req, got)
}

func TestServeDNSNilArgs(t *testing.T) {
	s := newTestServer(t, DNSConfig{})
	w := &recorder{}
	s.ServeDNS(w, nil)
	s.ServeDNS(nil, query("web.service.strata.", dns.TypeA))
	if len(w.replies) != 0 {
		t.Errorf("reply to a nil request")
	}
}

func TestServeDNSDoesNotModifyRequest(t *testing.T) {
	s := newTestServer(t, DNSConfig{})
	req := withEDNS(query("big.service.strata.", dns.TypeSRV), 512, 0)
	before := req.String()
	ask(t, s, req, false)
	if after := req.String(); after != before {
		t.Errorf("request changed:\n%s\n---\n%s", before, after)
	}
}

func TestServeDNSConcurrent(t *testing.T) {
	s := newTestServer(t, DNSConfig{})
	names := []string{"web.service.strata.", "prod.web.service.strata.", "big.service.strata.", "nope.service.strata.", h1}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				w := &recorder{tcp: i%2 == 0}
				s.ServeDNS(w, query(names[(g+i)%len(names)], dns.TypeSRV))
				if len(w.replies) != 1 || len(w.errs) != 0 {
					t.Errorf("replies %d errs %v", len(w.replies), w.errs)
					return
				}
			}
		})
	}
	wg.Wait()
}

// discardWriter packs like a real writer and throws the bytes away.
type discardWriter struct{ recorder }

func (discardWriter) WriteMsg(m *dns.Msg) error {
	_, err := m.Pack()
	return err
}

func BenchmarkServeDNSSRV100(b *testing.B) {
	s := newTestServer(b, DNSConfig{Snapshots: holderOf(b, bigService("svc", 100))})
	for _, tc := range []struct {
		name string
		tcp  bool
		size uint16
	}{{"tcp", true, 0}, {"udp-edns4096", false, 4096}, {"udp-512", false, 0}} {
		b.Run(tc.name, func(b *testing.B) {
			req := query("svc.service.strata.", dns.TypeSRV)
			if tc.size != 0 {
				req.SetEdns0(tc.size, false)
			}
			w := &discardWriter{recorder{tcp: tc.tcp}}
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, req)
			}
		})
	}
}

// BenchmarkServeDNSTypical is the benchmark's shape: a service of 4 instances,
// A and SRV over UDP without EDNS0, through a writer that packs.
func BenchmarkServeDNSTypical(b *testing.B) {
	s := newTestServer(b, DNSConfig{Snapshots: holderOf(b, append(bigService("svc", 4), fixture()...))})
	for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
		b.Run(dns.TypeToString[qtype], func(b *testing.B) {
			req := query("svc.service.strata.", qtype)
			w := &discardWriter{}
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, req)
			}
		})
	}
}
