package registry

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// countingObserver counts queries by rcode, as the servers' metrics do.
type countingObserver struct {
	byRcode [24]atomic.Int64
	timed   atomic.Int64
}

func (o *countingObserver) ObserveDNS(rcode int, elapsed time.Duration) {
	o.byRcode[rcode].Add(1)
	if elapsed > 0 {
		o.timed.Add(1)
	}
}

// DNSConfig.Observer hears of every answered query with the rcode sent.
func TestDNSObserver(t *testing.T) {
	o := &countingObserver{}
	s := newTestServer(t, DNSConfig{Snapshots: holderOf(t, fixture()), Observer: o})
	ask(t, s, query("web.service.strata.", dns.TypeA), false)
	ask(t, s, query("nothing.service.strata.", dns.TypeA), false)
	ask(t, s, query("example.com.", dns.TypeA), false) // outside the domain, no recursors
	for rcode, want := range map[int]int64{dns.RcodeSuccess: 1, dns.RcodeNameError: 1, dns.RcodeRefused: 1} {
		if got := o.byRcode[rcode].Load(); got != want {
			t.Errorf("%s observed %d times, want %d", dns.RcodeToString[rcode], got, want)
		}
	}
	if o.timed.Load() != 3 {
		t.Errorf("%d of 3 queries were timed", o.timed.Load())
	}
}

// The hook's own cost on the benchmark's typical query (two clock reads
// and a call); the coordinator's observer is BenchmarkObserveDNS there.
func BenchmarkServeDNSObserved(b *testing.B) {
	s := newTestServer(b, DNSConfig{Snapshots: holderOf(b, append(bigService("svc", 4), fixture()...)), Observer: &countingObserver{}})
	req := query("svc.service.strata.", dns.TypeA)
	w := &discardWriter{}
	b.ReportAllocs()
	for b.Loop() {
		s.ServeDNS(w, req)
	}
}
