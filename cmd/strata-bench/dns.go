package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/strata-run/strata/registry"
)

// DNSConfig is `strata-bench dns`: dnsperf against Strata's DNS server over a
// generated catalog snapshot, and against a minimal miekg/dns server answering
// the same records from a map (the ceiling), one after the other in one run.
//
// With Target, the Strata side is a running server (`strata dev`, `strata
// server`, an agent's -dns-addr) at that address: the ceiling is filled with
// that server's own answers (asked over TCP, so they are whole) to the A and
// SRV questions about Services, and the query file asks about those.
type DNSConfig struct {
	Out        io.Writer
	DNSPerf    string        // dnsperf binary
	Instances  int           // catalog size
	PerService int           // instances per service
	Duration   time.Duration // per server
	InFlight   int           // dnsperf -q
	Queries    int           // distinct lines in the query file (half SRV, half A)
	Rounds     int           // runs of each server, alternating which goes first
	Serve      string        // "strata" or "ceiling": serve only that one on ServeAddr until interrupted
	ServeAddr  string
	Target     string   // a running Strata DNS server's address (host:port): measure it instead of a generated catalog
	Services   []string // with Target: the services to ask about (at least one, each answering A and SRV)
	Domain     string   // with Target: the server's -dns-domain; default "strata"
}

// DNSResult is one dnsperf run.
type DNSResult struct {
	QPS       float64
	Sent      int64
	Completed int64
	Lost      int64
}

// DNS runs the comparison and prints both figures and their ratio.
func DNS(ctx context.Context, cfg DNSConfig) error {
	if cfg.Target != "" {
		return dnsTarget(ctx, cfg)
	}
	if cfg.PerService < 1 || cfg.Instances < cfg.PerService {
		return fmt.Errorf("dns: need instances >= per-service >= 1")
	}
	snap, err := registry.NewSnapshot(1, dnsCatalog(cfg.Instances, cfg.PerService))
	if err != nil {
		return err
	}
	recorder, err := registry.NewDNS(registry.DNSConfig{Snapshots: registry.NewHolder(snap)})
	if err != nil {
		return err
	}
	names := snap.Services()
	ceiling, err := newCeiling(serveAsk(recorder), names, registry.DefaultDomain)
	if err != nil {
		return err
	}
	// (a) is served the way Strata serves (DNSServer.Listen), (b) by a plain
	// miekg/dns server.
	serve := map[string]startFunc{
		"strata": func(addr string) (string, func() error, error) {
			s, err := registry.NewDNS(registry.DNSConfig{Snapshots: registry.NewHolder(snap)})
			if err != nil {
				return "", nil, err
			}
			if err := s.Listen(ctx, addr); err != nil {
				return "", nil, err
			}
			return s.Addr(), func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return s.Shutdown(ctx)
			}, nil
		},
		"ceiling": func(addr string) (string, func() error, error) { return serveUDP(addr, ceiling) },
	}
	if cfg.Serve != "" {
		start := serve[cfg.Serve]
		if start == nil {
			return fmt.Errorf("dns: -serve %q: want strata or ceiling", cfg.Serve)
		}
		addr, stop, err := start(cfg.ServeAddr)
		if err != nil {
			return err
		}
		fmt.Fprintf(cfg.Out, "serving %s (%d instances, %d services) on %s until interrupted\n", cfg.Serve, snap.Len(), len(names), addr)
		<-ctx.Done()
		return stop()
	}
	fmt.Fprintf(cfg.Out, "catalog: %d instances in %d services; dnsperf -q %d -l %s, %d distinct queries, half SRV half A\n",
		snap.Len(), len(names), cfg.InFlight, cfg.Duration, cfg.Queries)
	return compareDNS(ctx, cfg, serve, names, registry.DefaultDomain)
}

// dnsTarget compares a running server at cfg.Target with the ceiling
// answering what that server answers.
func dnsTarget(ctx context.Context, cfg DNSConfig) error {
	if len(cfg.Services) == 0 {
		return fmt.Errorf("dns: -target needs -service (the services to ask the server about)")
	}
	if cfg.Serve != "" {
		return fmt.Errorf("dns: -target and -serve do not go together")
	}
	if _, _, err := net.SplitHostPort(cfg.Target); err != nil {
		return fmt.Errorf("dns: -target %q: %w", cfg.Target, err)
	}
	domain := dns.Fqdn(cfg.Domain)
	if cfg.Domain == "" {
		domain = registry.DefaultDomain
	}
	ceiling, err := newCeiling(exchangeAsk(cfg.Target), cfg.Services, domain)
	if err != nil {
		return fmt.Errorf("%w (is %s a Strata DNS server with -dns-domain %s?)", err, cfg.Target, domain)
	}
	serve := map[string]startFunc{
		"strata":  func(string) (string, func() error, error) { return cfg.Target, func() error { return nil }, nil },
		"ceiling": func(addr string) (string, func() error, error) { return serveUDP(addr, ceiling) },
	}
	fmt.Fprintf(cfg.Out, "target: %s, services %v; dnsperf -q %d -l %s, %d distinct queries, half SRV half A\n",
		cfg.Target, cfg.Services, cfg.InFlight, cfg.Duration, cfg.Queries)
	return compareDNS(ctx, cfg, serve, cfg.Services, domain)
}

// startFunc starts a server on addr and returns the address it serves on
// and how to stop it.
type startFunc func(addr string) (string, func() error, error)

// compareDNS runs dnsperf against "strata" and "ceiling" over queries
// about names in domain, cfg.Rounds times, and prints the best of each
// and their ratio.
func compareDNS(ctx context.Context, cfg DNSConfig, serve map[string]startFunc, names []string, domain string) error {
	dir, err := os.MkdirTemp("", "strata-bench-dns")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	queryFile := filepath.Join(dir, "queries")
	if err := writeQueries(queryFile, names, cfg.Queries, domain); err != nil {
		return err
	}
	// Rounds alternate which server goes first, so neither always runs on a
	// warmer (or busier) machine; the best round of each is reported.
	best := map[string]DNSResult{}
	var lost int64
	for round := range max(1, cfg.Rounds) {
		order := []string{"strata", "ceiling"}
		if round%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, name := range order {
			addr, stop, err := serve[name]("127.0.0.1:0")
			if err != nil {
				return err
			}
			res, err := runDNSPerf(ctx, cfg, addr, queryFile)
			if serr := stop(); err == nil {
				err = serr
			}
			if err != nil {
				return fmt.Errorf("dns: %s: %w", name, err)
			}
			if res.QPS > best[name].QPS {
				best[name] = res
			}
			if name == "strata" {
				lost += res.Lost
			}
			fmt.Fprintf(cfg.Out, "round %d %-8s %9.0f queries/s  sent %d completed %d lost %d\n",
				round+1, name, res.QPS, res.Sent, res.Completed, res.Lost)
		}
	}
	s, c := best["strata"], best["ceiling"]
	fmt.Fprintf(cfg.Out, "best: strata %.0f queries/s, ceiling %.0f queries/s, ratio strata/ceiling %.2f\n", s.QPS, c.QPS, s.QPS/c.QPS)
	fmt.Fprintf(cfg.Out, "strata_qps=%.0f ceiling_qps=%.0f ratio=%.2f strata_lost=%d\n", s.QPS, c.QPS, s.QPS/c.QPS, lost)
	return nil
}

// dnsCatalog generates n passing instances, perService per service, on nodes of
// 10 instances each (node address = instance address, so SRV targets are node names).
func dnsCatalog(n, perService int) []registry.Instance {
	out := make([]registry.Instance, n)
	for i := range out {
		node := i / 10
		addr := fmt.Sprintf("10.%d.%d.%d", node/65536%256, node/256%256, node%256+0)
		out[i] = registry.Instance{
			ID:          fmt.Sprintf("alloc-%06d/0", i),
			Service:     fmt.Sprintf("svc-%d", i/perService),
			Tags:        []string{"prod"},
			Address:     addr,
			Port:        20000 + i%12000,
			Node:        fmt.Sprintf("edge-%d", node),
			NodeID:      fmt.Sprintf("node-%06d", node),
			NodeAddress: addr,
			AllocID:     fmt.Sprintf("alloc-%06d", i),
			Health:      registry.HealthPassing,
		}
	}
	return out
}

func writeQueries(path string, services []string, n int, domain string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		qtype := "A"
		if i%2 == 0 {
			qtype = "SRV"
		}
		fmt.Fprintf(w, "%s.service.%s %s\n", services[r.IntN(len(services))], domain, qtype)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ceiling is the minimal miekg/dns handler: the answer and additional records
// for each question, looked up in a map, packed as Strata packs them.
type ceiling struct {
	records map[dns.Question]ceilingAnswer
}

type ceilingAnswer struct{ answer, extra []dns.RR }

// newCeiling records Strata's full answers (ask: over a TCP-sized writer or
// TCP) to every A and SRV question the benchmark asks, so both servers send
// the same records.
func newCeiling(ask func(*dns.Msg) (*dns.Msg, error), services []string, domain string) (*ceiling, error) {
	c := &ceiling{records: map[dns.Question]ceilingAnswer{}}
	for _, svc := range services {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
			q := dns.Question{Name: dns.CanonicalName(svc + ".service." + domain), Qtype: qtype, Qclass: dns.ClassINET}
			r := new(dns.Msg)
			r.Id = dns.Id()
			r.Question = []dns.Question{q}
			m, err := ask(r)
			if err != nil {
				return nil, fmt.Errorf("dns: asking %s: %w", q.String(), err)
			}
			if m == nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
				return nil, fmt.Errorf("dns: strata does not answer %s", q.String())
			}
			c.records[q] = ceilingAnswer{answer: m.Answer, extra: m.Extra}
		}
	}
	return c, nil
}

// serveAsk asks a DNS server in process, as over TCP (no truncation).
func serveAsk(s *registry.DNSServer) func(*dns.Msg) (*dns.Msg, error) {
	return func(r *dns.Msg) (*dns.Msg, error) {
		w := &captureWriter{}
		s.ServeDNS(w, r)
		return w.m, nil
	}
}

// exchangeAsk asks the server at addr over TCP (the whole answer).
func exchangeAsk(addr string) func(*dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	return func(r *dns.Msg) (*dns.Msg, error) {
		m, _, err := c.Exchange(r, addr)
		return m, err
	}
}

func (c *ceiling) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) == 1 {
		if a, ok := c.records[r.Question[0]]; ok {
			m.Authoritative = true
			m.Answer, m.Extra = a.answer, a.extra
		} else {
			m.Rcode = dns.RcodeNameError
		}
	}
	w.WriteMsg(m)
}

// captureWriter keeps the reply; its TCP address lifts the UDP size limit.
type captureWriter struct{ m *dns.Msg }

func (w *captureWriter) LocalAddr() net.Addr       { return &net.TCPAddr{} }
func (w *captureWriter) RemoteAddr() net.Addr      { return &net.TCPAddr{} }
func (w *captureWriter) WriteMsg(m *dns.Msg) error { w.m = m; return nil }
func (w *captureWriter) Write([]byte) (int, error) { return 0, errors.New("unused") }
func (w *captureWriter) Close() error              { return nil }
func (w *captureWriter) TsigStatus() error         { return nil }
func (w *captureWriter) TsigTimersOnly(bool)       {}
func (w *captureWriter) Hijack()                   {}

// serveUDP serves h over UDP with a plain miekg/dns server on addr: the
// ceiling's server.
func serveUDP(addr string, h dns.Handler) (string, func() error, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return "", nil, err
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, UDPSize: dns.DefaultMsgSize, NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		return "", nil, err
	}
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.ShutdownContext(ctx)
		if serr := <-done; err == nil {
			err = serr
		}
		return err
	}
	return pc.LocalAddr().String(), stop, nil
}

var dnsperfLine = regexp.MustCompile(`(?m)^\s*(Queries sent|Queries completed|Queries lost|Queries per second):\s+([0-9.]+)`)

func runDNSPerf(ctx context.Context, cfg DNSConfig, addr, queryFile string) (DNSResult, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return DNSResult{}, err
	}
	secs := strconv.Itoa(max(1, int(cfg.Duration/time.Second)))
	cmd := exec.CommandContext(ctx, cfg.DNSPerf, "-s", host, "-p", port, "-d", queryFile,
		"-q", strconv.Itoa(cfg.InFlight), "-l", secs, "-t", "2")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return DNSResult{}, fmt.Errorf("%s: %w\n%s", cfg.DNSPerf, err, out)
	}
	return parseDNSPerf(string(out))
}

// parseDNSPerf reads dnsperf's statistics block.
func parseDNSPerf(out string) (DNSResult, error) {
	var res DNSResult
	found := 0
	for _, m := range dnsperfLine.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		found++
		switch m[1] {
		case "Queries sent":
			res.Sent = int64(v)
		case "Queries completed":
			res.Completed = int64(v)
		case "Queries lost":
			res.Lost = int64(v)
		case "Queries per second":
			res.QPS = v
		}
	}
	if found != 4 {
		return DNSResult{}, fmt.Errorf("unexpected dnsperf output:\n%s", out)
	}
	return res, nil
}
