package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/strata-run/strata/registry"
)

// TestCeilingAnswersLikeStrata: the ceiling server sends the same records as
// Strata for every question the benchmark asks, so the comparison is fair.
func TestCeilingAnswersLikeStrata(t *testing.T) {
	snap, err := registry.NewSnapshot(1, dnsCatalog(200, 4))
	if err != nil {
		t.Fatal(err)
	}
	strata, err := registry.NewDNS(registry.DNSConfig{Snapshots: registry.NewHolder(snap)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCeiling(serveAsk(strata), snap.Services(), registry.DefaultDomain)
	if err != nil {
		t.Fatal(err)
	}
	sorted := func(rrs []dns.RR) []string {
		var out []string
		for _, rr := range rrs {
			out = append(out, rr.String())
		}
		slices.Sort(out)
		return out
	}
	for _, svc := range []string{"svc-0", "svc-49"} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
			r := new(dns.Msg)
			r.SetQuestion(svc+".service.strata.", qtype)
			ws, wc := &captureWriter{}, &captureWriter{}
			strata.ServeDNS(ws, r)
			c.ServeDNS(wc, r)
			if ws.m == nil || wc.m == nil || len(ws.m.Answer) == 0 {
				t.Fatalf("%s %s: no answer", svc, dns.TypeToString[qtype])
			}
			if !slices.Equal(sorted(ws.m.Answer), sorted(wc.m.Answer)) || !slices.Equal(sorted(ws.m.Extra), sorted(wc.m.Extra)) {
				t.Errorf("%s %s: ceiling\n%v\nstrata\n%v", svc, dns.TypeToString[qtype], wc.m, ws.m)
			}
		}
	}
}

// With -target, the ceiling is filled over TCP from a running server's own
// answers (here one listening on a socket, under -dns-domain consul), and a
// server that does not answer a service is refused with its address.
func TestCeilingFromTarget(t *testing.T) {
	snap, err := registry.NewSnapshot(1, dnsCatalog(400, 40))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := registry.NewDNS(registry.DNSConfig{Snapshots: registry.NewHolder(snap), Domain: "consul"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c, err := newCeiling(exchangeAsk(srv.Addr()), []string{"svc-0", "SVC-3"}, "consul.")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []dns.Question{
		{Name: "svc-0.service.consul.", Qtype: dns.TypeSRV, Qclass: dns.ClassINET},
		{Name: "svc-3.service.consul.", Qtype: dns.TypeA, Qclass: dns.ClassINET},
	} {
		a, ok := c.records[q]
		if !ok {
			t.Fatalf("no ceiling record for %s", q.String())
		}
		eps := snap.Passing(strings.SplitN(q.Name, ".", 2)[0], "")
		want := len(eps)
		if q.Qtype == dns.TypeA { // one record per distinct address
			addrs := map[string]bool{}
			for _, e := range eps {
				addrs[e.Address] = true
			}
			want = len(addrs)
		}
		if len(a.answer) != want {
			t.Errorf("%s: %d records, want %d (the whole answer, over TCP)", q.String(), len(a.answer), want)
		}
	}
	err = DNS(context.Background(), DNSConfig{Out: io.Discard, Target: srv.Addr(), Services: []string{"nope"}, Domain: "consul"})
	if err == nil || !strings.Contains(err.Error(), srv.Addr()) || !strings.Contains(err.Error(), "nope.service.consul.") {
		t.Errorf("a service the target does not answer: %v", err)
	}
	if err := DNS(context.Background(), DNSConfig{Out: io.Discard, Target: srv.Addr()}); err == nil {
		t.Error("-target without -service accepted")
	}
}

func TestParseDNSPerf(t *testing.T) {
	const out = `Statistics:

  Queries sent:         735224
  Queries completed:    735200 (100.00%)
  Queries lost:         24 (0.00%)

  Response codes:       NOERROR 735200 (100.00%)
  Average packet size:  request 37, response 142
  Run time (s):         15.000102
  Queries per second:   49013.0
`
	got, err := parseDNSPerf(out)
	if err != nil || got != (DNSResult{QPS: 49013, Sent: 735224, Completed: 735200, Lost: 24}) {
		t.Errorf("parseDNSPerf = %+v, %v", got, err)
	}
	if _, err := parseDNSPerf("dnsperf: command not found"); err == nil {
		t.Error("parsed output without statistics")
	}
}
