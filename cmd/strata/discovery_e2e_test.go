package main

import (
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// Discovery through a real `strata dev` with -dns-domain consul: DNS under
// Consul's names (SRV targets are node names), the official consul/api
// client's blocking query following a scale, an idle query returning after
// its wait, and garbage UDP that does not stop the DNS server.
func TestDiscoveryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	buildArtifacts(t)
	d := startDev(t, t.TempDir(), freePort(t), freePort(t), "-dns-domain", "consul")
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	d.mustCLI("run", filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	const svc = "hello-web-hello"
	waitServing(t, d, svc+".service.consul", "/")

	ask := func(name string, qtype uint16, net string) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, _, err := (&dns.Client{Net: net, Timeout: 5 * time.Second}).Exchange(m, d.dnsAddr)
		if err != nil {
			t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], net, err)
		}
		return r
	}
	r := ask(svc+".service.consul.", dns.TypeSRV, "udp")
	if len(r.Answer) != 1 || r.Answer[0].(*dns.SRV).Target != "dev.node.consul." {
		t.Fatalf("SRV answer %v: want one record whose target is the node's name", r.Answer)
	}
	if r := ask("dev.node.consul.", dns.TypeA, "udp"); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
		t.Fatalf("the node's A record: %v", r.Answer)
	}
	if r := ask(svc+".service.strata.", dns.TypeA, "udp"); r.Rcode != dns.RcodeRefused {
		t.Fatalf("a name outside -dns-domain without -dns-recursors: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}

	client, err := api.NewClient(&api.Config{Address: d.httpAddr})
	if err != nil {
		t.Fatal(err)
	}
	entries, meta, err := client.Health().Service(svc, "example", true, nil)
	if err != nil || len(entries) != 1 || !meta.KnownLeader {
		t.Fatalf("Health().Service: %d entries, meta %+v, %v", len(entries), meta, err)
	}

	// Scale to 3: blocking queries follow the catalog until 3 pass.
	type result struct {
		entries []*api.ServiceEntry
		meta    *api.QueryMeta
		at      time.Time
		err     error
	}
	query := func(index uint64, wait time.Duration) <-chan result {
		out := make(chan result, 1)
		go func() {
			es, m, err := client.Health().Service(svc, "", true, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
			out <- result{es, m, time.Now(), err}
		}()
		return out
	}
	first := query(meta.LastIndex, time.Minute)
	scaled := time.Now()
	d.mustCLI("job", "scale", "-detach", "hello", "web", "3")
	deadline := time.After(90 * time.Second) // process boundary: agents start wasm and run checks
	var last result
	for n := 0; ; n++ {
		var next <-chan result = first
		if n > 0 {
			next = query(last.meta.LastIndex, time.Minute)
		}
		select {
		case last = <-next:
		case <-deadline:
			t.Fatalf("3 passing instances not seen within 90s of the scale (last: %d)", len(last.entries))
		}
		if last.err != nil {
			t.Fatal(last.err)
		}
		if n == 0 {
			t.Logf("first blocking query returned %v after the scale was submitted, index %d -> %d, %d passing",
				last.at.Sub(scaled).Round(time.Millisecond), meta.LastIndex, last.meta.LastIndex, len(last.entries))
			if last.meta.LastIndex <= meta.LastIndex {
				t.Fatalf("returned at index %d, not past %d", last.meta.LastIndex, meta.LastIndex)
			}
		}
		if len(last.entries) == 3 {
			t.Logf("3 passing instances seen %v after the scale, after %d blocking queries", last.at.Sub(scaled).Round(time.Millisecond), n+1)
			break
		}
	}

	// Nothing changes: the query returns after its wait at the same index,
	// though the agent keeps running checks and reporting.
	const wait = time.Second
	start := time.Now()
	idle := <-query(last.meta.LastIndex, wait)
	if idle.err != nil || idle.meta.LastIndex != last.meta.LastIndex || len(idle.entries) != 3 || idle.at.Sub(start) < wait {
		t.Fatalf("idle query: index %d (want %d), %d entries, after %v, %v", idle.meta.LastIndex, last.meta.LastIndex, len(idle.entries), idle.at.Sub(start), idle.err)
	}

	// Garbage over UDP: dropped, or answered FORMERR (NOTIMP for a header
	// naming an opcode other than QUERY, as miekg/dns answers), and the
	// server goes on.
	conn, err := net.Dial("udp", d.dnsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(16, 2))
	for i := range 200 {
		b := make([]byte, 1+i%80)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if new(dns.Msg).Unpack(b) == nil {
			continue // a well-formed message by chance: not garbage
		}
		conn.Write(b)
	}
	conn.Write([]byte{0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff}) // a header, then a broken question
	for _, transport := range []string{"udp", "tcp"} {
		if r := ask(svc+".service.consul.", dns.TypeSRV, transport); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 3 {
			t.Fatalf("after garbage, over %s: %s with %d answers, want the 3 instances", transport, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			break // nothing more: the rest was dropped
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("a reply to garbage does not unpack: %v", err)
		}
		if m.Rcode != dns.RcodeFormatError && (m.Rcode != dns.RcodeNotImplemented || m.Opcode == dns.OpcodeQuery) {
			t.Fatalf("a reply to garbage: %s (opcode %s), want FORMERR, or NOTIMP for another opcode", dns.RcodeToString[m.Rcode], dns.OpcodeToString[m.Opcode])
		}
	}
	if out := d.out.String(); strings.Contains(out, "panic") {
		t.Fatalf("strata dev logged a panic:\n%s", out)
	}
}
