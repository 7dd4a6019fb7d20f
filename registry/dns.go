package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

const (
	// DefaultDomain is the zone served when DNSConfig.Domain is empty.
	DefaultDomain = "strata."
	// DefaultTTL is the TTL of every record when DNSConfig.TTL is 0: short, so a
	// client cache follows scaling and failures within seconds.
	DefaultTTL = 5 * time.Second
	// DefaultRecursorTimeout bounds one exchange with one recursor.
	DefaultRecursorTimeout = 2 * time.Second

	// maxUDPSize caps the client's EDNS0 buffer size; it is also the size this
	// server advertises and its UDP read buffer.
	maxUDPSize = dns.DefaultMsgSize

	// SOA timers, as in Consul's defaults. The serial is fixed: the zone is
	// synthesised on every query, there is nothing to transfer.
	soaSerial  = 1
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 86400
)

var (
	// ErrNoCatalog is returned by NewDNS without DNSConfig.Snapshots.
	ErrNoCatalog = errors.New("registry: DNSConfig.Snapshots is required")
	// ErrServerClosed is returned by Listen after Shutdown.
	ErrServerClosed = errors.New("registry: DNS server closed")
	// ErrAlreadyListening is returned by a second call to Listen.
	ErrAlreadyListening = errors.New("registry: DNS server already listening")
)

// DNSConfig configures a DNSServer.
type DNSConfig struct {
	Domain string // default "strata."; "consul." serves Consul's names unchanged

	// Snapshots is the catalog served: every query reads its current snapshot
	// (one atomic load, no lock, no I/O).
	Snapshots *Holder

	TTL time.Duration // 0 = DefaultTTL; at most 2^31-1 s

	// Recursors are the resolvers ("ip" or "ip:port", port 53 by default) that
	// names outside Domain are forwarded to, in order until one answers. With
	// none, such names are REFUSED.
	Recursors       []string
	RecursorTimeout time.Duration // per exchange; 0 = DefaultRecursorTimeout

	// Seed seeds the per-query shuffle of answers: the n-th query a server
	// answers is shuffled the same way for the same Seed. 0 = a random seed.
	Seed uint64

	Logger *slog.Logger // nil = discard

	// Observer, if set, hears of every query answered (DNSObserver).
	Observer DNSObserver
}

// DNSObserver is told of every query a DNSServer answers: the reply's
// rcode and the time from receiving it to writing the reply. It is called
// on the query's goroutine, on the hot path: it must not block, and
// should not allocate (the coordinator's metrics count with pre-resolved
// counters). The registry itself keeps no metrics.
type DNSObserver interface {
	ObserveDNS(rcode int, elapsed time.Duration)
}

// DNSServer answers DNS queries for the configured domain from a catalog
// snapshot. Its ServeDNS method is a dns.Handler and may be called
// concurrently; Listen, Addr and Shutdown manage an optional UDP+TCP listener
// pair.
type DNSServer struct {
	domain    string // canonical: lowercase, fully qualified
	snapshots *Holder
	ttl       uint32 // seconds
	recursors []string
	udpClient *dns.Client
	tcpClient *dns.Client
	seed      uint64
	queries   atomic.Uint64 // shuffle stream
	log       *slog.Logger
	observer  DNSObserver // nil: none

	mu      sync.Mutex
	state   serverState
	udpAddr string
	quit    chan struct{} // closed by Shutdown: stop serving
	done    chan struct{} // closed once every serving goroutine has returned
	err     error         // serving errors, readable once done is closed
}

// NewDNS validates cfg and returns a server. It does not listen: use ServeDNS as
// a handler, or Listen.
func NewDNS(cfg DNSConfig) (*DNSServer, error) {
	if cfg.Snapshots == nil {
		return nil, ErrNoCatalog
	}
	domain := cfg.Domain
	if domain == "" {
		domain = DefaultDomain
	}
	domain = dns.CanonicalName(domain)
	if _, ok := dns.IsDomainName(domain); !ok || domain == "." || strings.IndexByte(domain, '\\') >= 0 {
		return nil, fmt.Errorf("registry: invalid DNS domain %q", cfg.Domain)
	}
	const maxTTL = math.MaxInt32 * time.Second // RFC 2181 §8
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < 0 || ttl > maxTTL {
		return nil, fmt.Errorf("registry: DNS TTL %v out of range (0s, %v]", cfg.TTL, maxTTL)
	}
	timeout := cfg.RecursorTimeout
	if timeout == 0 {
		timeout = DefaultRecursorTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("registry: negative recursor timeout %v", timeout)
	}
	var recursors []string
	for _, r := range cfg.Recursors {
		addr, err := recursorAddr(r)
		if err != nil {
			return nil, err
		}
		recursors = append(recursors, addr)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DNSServer{
		domain:    domain,
		snapshots: cfg.Snapshots,
		ttl:       uint32(ttl / time.Second),
		recursors: recursors,
		udpClient: &dns.Client{Net: "udp", Timeout: timeout, UDPSize: maxUDPSize},
		tcpClient: &dns.Client{Net: "tcp", Timeout: timeout},
		seed:      seed,
		log:       log.With("component", "registry.dns"),
		observer:  cfg.Observer,
	}, nil
}

// recursorAddr validates "ip" or "ip:port" and returns "ip:port".
func recursorAddr(r string) (string, error) {
	if a, err := netip.ParseAddr(r); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(r)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("registry: recursor %q is not an IP address with an optional port", r)
	}
	return ap.String(), nil
}

// Domain returns the zone the server is authoritative for, in canonical form
// (lowercase, fully qualified), e.g. "strata.".
func (s *DNSServer) Domain() string { return s.domain }

// ServeDNS implements dns.Handler. It writes exactly one reply to w for every
// non-nil request, and never panics on any message. The transport is told apart by
// w.RemoteAddr(): a *net.TCPAddr means TCP (no truncation below 64 KiB), anything
// else is treated as UDP.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if w == nil || r == nil {
		return
	}
	tcp := isTCP(w)
	var start time.Time
	if s.observer != nil {
		start = time.Now()
	}
	var m *dns.Msg
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic while answering a DNS query", "panic", p, "stack", string(debug.Stack()))
			if m == nil { // nothing was written yet
				rcode := s.write(w, r, serverFailure(r), tcp)
				if s.observer != nil {
					s.observer.ObserveDNS(rcode, time.Since(start))
				}
			}
		}
	}()
	m = s.reply(r, tcp)
	rcode := s.write(w, r, m, tcp)
	if s.observer != nil {
		s.observer.ObserveDNS(rcode, time.Since(start))
	}
}

// reply builds the answer to r, before EDNS0 and truncation.
func (s *DNSServer) reply(r *dns.Msg, tcp bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = len(s.recursors) > 0
	nameOK := len(r.Question) == 1 && validName(r.Question[0].Name)
	if len(m.Question) == 1 && !nameOK {
		m.Question = nil // it could not be packed back; only direct callers can send one
	}
	switch {
	case r.Response:
		m.Rcode = dns.RcodeFormatError
		return m
	case r.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
		return m
	case len(r.Question) != 1:
		m.Question = nil
		m.Rcode = dns.RcodeFormatError
		return m
	}
	opt, nOPT := requestOPT(r)
	switch {
	case nOPT > 1: // RFC 6891 §6.1.1
		m.Rcode = dns.RcodeFormatError
		return m
	case opt != nil && opt.Version() != 0: // RFC 6891 §6.1.3
		m.Rcode = dns.RcodeBadVers
		return m
	}

	q := r.Question[0]
	if !nameOK {
		if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
			m.Rcode = dns.RcodeRefused
		} else {
			m.Rcode = dns.RcodeFormatError
		}
		return m
	}
	name := lowerASCII(q.Name)
	if !inZone(name, s.domain) {
		if len(s.recursors) > 0 {
			return s.forward(r, tcp)
		}
		m.Rcode = dns.RcodeRefused
		return m
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		return m
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	m.Authoritative = true
	s.resolve(m, q.Name, name, q.Qtype)
	return m
}

// inZone reports whether the lowercase FQDN name is domain or below it.
func inZone(name, domain string) bool {
	if len(name) == len(domain) {
		return name == domain
	}
	return len(name) > len(domain) && name[len(name)-len(domain)-1] == '.' &&
		name[len(name)-len(domain):] == domain
}

// resolve fills m for a question in our domain. qname is the question's
// spelling (used for owner names), name its lowercase form.
func (s *DNSServer) resolve(m *dns.Msg, qname, name string, qtype uint16) {
	if len(name) == len(s.domain) { // the apex
		if qtype == dns.TypeSOA {
			m.Answer = append(m.Answer, s.soa())
			return
		}
		s.nodata(m)
		return
	}
	rest := name[:len(name)-len(s.domain)-1] // the labels below the zone, without the final dot
	if strings.IndexByte(rest, '\\') >= 0 {  // escaped bytes: never a name this server made
		s.nxdomain(m)
		return
	}
	rest, kind := cutLast(rest)
	switch kind {
	case "service":
		s.resolveService(m, qname, rest, qtype)
	case "node":
		s.resolveNode(m, qname, rest, qtype)
	case "addr":
		s.resolveAddr(m, qname, rest, qtype)
	default:
		s.nxdomain(m)
	}
}

// cutLast splits "a.b.c" into "a.b" and "c" ("" and "c" for "c").
func cutLast(s string) (rest, last string) {
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

// resolveService answers "[tag.]<service>.service.<domain>" and
// "_<service>._<tag>.service.<domain>"; rest is what precedes "service".
func (s *DNSServer) resolveService(m *dns.Msg, qname, rest string, qtype uint16) {
	var service, tag string
	first, second, two := strings.Cut(rest, ".")
	switch {
	case rest == "": // "service.<domain>": an empty non-terminal
		s.nodata(m)
		return
	case !two:
		if strings.HasPrefix(first, "_") { // "_tcp.service.<domain>": parent of RFC 2782 names
			s.nodata(m)
			return
		}
		service = first
	case strings.IndexByte(second, '.') >= 0:
		s.nxdomain(m)
		return
	case strings.HasPrefix(first, "_") && strings.HasPrefix(second, "_"):
		service, tag = first[1:], second[1:]
		if tag == "" {
			s.nxdomain(m)
			return
		}
		if tag == "tcp" { // _<service>._tcp: no tag filter
			tag = ""
		}
	default:
		tag, service = first, second
	}
	if service == "" {
		s.nxdomain(m)
		return
	}
	eps := s.snapshots.Snapshot().Passing(service, tag)
	if len(eps) == 0 { // unknown, not passing, or nothing with that tag: Consul says NXDOMAIN
		s.nxdomain(m)
		return
	}
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
		s.addressAnswers(m, qname, eps, qtype == dns.TypeA)
	case dns.TypeSRV:
		s.srvAnswers(m, qname, eps)
	}
	if len(m.Answer) == 0 {
		s.nodata(m)
	}
}

// small is the answer count up to which the shuffle's permutation lives on the
// stack and duplicates are found by scanning the records kept so far; larger
// answers allocate both. Kept small: a handler runs on a fresh goroutine whose
// stack would have to grow for a large frame.
const small = 16

// order returns a fresh random permutation of 0..n-1, drawn from the server's
// seeded stream, in buf when it fits.
func (s *DNSServer) order(n int, buf *[small]int32) []int32 {
	var p []int32
	if n <= len(buf) {
		p = buf[:n]
	} else {
		p = make([]int32, n)
	}
	for i := range p {
		p[i] = int32(i)
	}
	if n > 1 {
		rng := rand.NewPCG(s.seed, s.queries.Add(1))
		for i := n - 1; i > 0; i-- {
			j := int(rng.Uint64() % uint64(i+1)) // bias below 2^-50 for any real n
			p[i], p[j] = p[j], p[i]
		}
	}
	return p
}

// addressAnswers appends one A (v4) or AAAA (!v4) record per distinct address,
// in a random order.
func (s *DNSServer) addressAnswers(m *dns.Msg, qname string, eps []*Entry, v4 bool) {
	var pbuf [small]int32
	var seen map[netip.Addr]bool // for large answers; small ones scan what they kept
	if len(eps) > small {
		seen = make(map[netip.Addr]bool, len(eps))
	}
	m.Answer = make([]dns.RR, 0, len(eps))
	for _, i := range s.order(len(eps), &pbuf) {
		e := eps[i]
		if !e.addr.IsValid() || e.addr.Is4() != v4 || s.dupAddr(m.Answer, e.addr, seen) {
			continue
		}
		d := s.entryDNS(e)
		if qname == d.owner {
			m.Answer = append(m.Answer, d.addrRR) // the usual spelling: shared, prebuilt
		} else {
			m.Answer = append(m.Answer, s.addrRR(qname, e.addr, d.ip))
		}
	}
}

// dupAddr reports whether a is already among the A/AAAA records in rrs,
// recording it in seen (if non-nil) when it is not.
func (s *DNSServer) dupAddr(rrs []dns.RR, a netip.Addr, seen map[netip.Addr]bool) bool {
	if seen != nil {
		if seen[a] {
			return true
		}
		seen[a] = true
		return false
	}
	for _, rr := range rrs {
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A
		case *dns.AAAA:
			ip = rr.AAAA
		}
		if b, ok := netip.AddrFromSlice(ip); ok && b == a {
			return true
		}
	}
	return false
}

// srvAnswers appends one SRV record per endpoint with an address and a port, in
// a random order, and each distinct target's address record to Additional.
func (s *DNSServer) srvAnswers(m *dns.Msg, qname string, eps []*Entry) {
	var pbuf [small]int32
	var seen map[string]bool // for large answers; small ones scan Extra
	if len(eps) > small {
		seen = make(map[string]bool, len(eps))
	}
	m.Answer = make([]dns.RR, 0, len(eps))
	m.Extra = make([]dns.RR, 0, len(eps)+1) // +1: room for the OPT record
	for _, i := range s.order(len(eps), &pbuf) {
		e := eps[i]
		if !e.addr.IsValid() || e.Port == 0 {
			continue
		}
		d := s.entryDNS(e)
		if qname == d.owner {
			m.Answer = append(m.Answer, d.srvRR) // the usual spelling: shared, prebuilt
		} else {
			m.Answer = append(m.Answer, s.srvRR(qname, e, d.target))
		}
		if !dupTarget(m.Extra, d.target, seen) {
			m.Extra = append(m.Extra, d.targetRR)
		}
	}
}

// dupTarget reports whether rrs already hold a record owned by target,
// recording it in seen (if non-nil) when they do not.
func dupTarget(rrs []dns.RR, target string, seen map[string]bool) bool {
	if seen != nil {
		if seen[target] {
			return true
		}
		seen[target] = true
		return false
	}
	for _, rr := range rrs {
		if rr.Header().Name == target {
			return true
		}
	}
	return false
}

// entryDNS is what the DNS answers of one Entry need, computed once per entry
// version and server and shared, read-only, by every reply.
type entryDNS struct {
	srv      *DNSServer // the server (domain, TTL) it was computed for
	ip       net.IP     // the address, for A/AAAA rdata
	target   string     // SRV target: "<node>.node.<domain>" or "<hex>.addr.<domain>"
	targetRR dns.RR     // the target's A/AAAA record (Additional section)
	owner    string     // "<service>.service.<domain>", the name most questions spell
	addrRR   dns.RR     // the A/AAAA record owned by owner
	srvRR    dns.RR     // the SRV record owned by owner (nil without a port)
}

func (s *DNSServer) entryDNS(e *Entry) *entryDNS {
	if d := e.dns.Load(); d != nil && d.srv == s {
		return d
	}
	d := &entryDNS{srv: s}
	if e.addr.IsValid() {
		d.ip = e.addr.AsSlice()
		if e.nodeAddr == e.addr && isLabel(e.Node) {
			d.target = e.Node + ".node." + s.domain
		} else {
			d.target = hexLabel(e.addr) + ".addr." + s.domain
		}
		d.targetRR = s.addrRR(d.target, e.addr, d.ip)
		d.owner = e.Service + ".service." + s.domain
		d.addrRR = s.addrRR(d.owner, e.addr, d.ip)
		if e.Port != 0 {
			d.srvRR = s.srvRR(d.owner, e, d.target)
		}
	}
	e.dns.Store(d)
	return d
}

func (s *DNSServer) srvRR(owner string, e *Entry, target string) dns.RR {
	return &dns.SRV{
		Hdr:      s.hdr(owner, dns.TypeSRV),
		Priority: 1,
		Weight:   1,
		Port:     uint16(e.Port),
		Target:   target,
	}
}

// isLabel reports whether a node name can be a DNS label as it is: 1 to 63
// letters, digits, '-' or '_'.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// resolveNode answers "<node>.node.<domain>" with the node's address; rest is
// what precedes "node".
func (s *DNSServer) resolveNode(m *dns.Msg, qname, rest string, qtype uint16) {
	switch {
	case rest == "": // "node.<domain>": an empty non-terminal
		s.nodata(m)
		return
	case strings.IndexByte(rest, '.') >= 0:
		s.nxdomain(m)
		return
	}
	snap := s.snapshots.Snapshot()
	if snap.nodes[rest] == nil {
		s.nxdomain(m)
		return
	}
	a, ok := snap.nodeAddr(rest)
	if ok && ((qtype == dns.TypeA && a.Is4()) || (qtype == dns.TypeAAAA && a.Is6())) {
		m.Answer = append(m.Answer, s.addrRR(qname, a, a.AsSlice()))
		return
	}
	s.nodata(m)
}

// resolveAddr answers "<hex>.addr.<domain>"; rest is what precedes "addr".
func (s *DNSServer) resolveAddr(m *dns.Msg, qname, rest string, qtype uint16) {
	switch {
	case rest == "": // "addr.<domain>": an empty non-terminal
		s.nodata(m)
		return
	case strings.IndexByte(rest, '.') >= 0:
		s.nxdomain(m)
		return
	}
	a, ok := parseHexLabel(rest)
	if !ok {
		s.nxdomain(m)
		return
	}
	if (qtype == dns.TypeA && a.Is4()) || (qtype == dns.TypeAAAA && a.Is6()) {
		m.Answer = append(m.Answer, s.addrRR(qname, a, a.AsSlice()))
		return
	}
	s.nodata(m)
}

// forward sends r to the recursors in order and returns the first answer (its
// OPT record removed: write adds this server's), or SERVFAIL if none answers.
func (s *DNSServer) forward(r *dns.Msg, tcp bool) *dns.Msg {
	c := s.udpClient
	if tcp {
		c = s.tcpClient
	}
	for _, addr := range s.recursors {
		resp, _, err := c.Exchange(r, addr)
		if err != nil {
			s.log.Warn("DNS recursor failed", "recursor", addr, "err", err, "question", questionString(r))
			continue
		}
		resp.Id = r.Id
		resp.Extra = slices.DeleteFunc(resp.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
		resp.RecursionAvailable = true
		return resp
	}
	m := serverFailure(r)
	m.Question = r.Question
	m.RecursionDesired = r.RecursionDesired
	m.RecursionAvailable = true
	return m
}

func (s *DNSServer) nxdomain(m *dns.Msg) {
	m.Rcode = dns.RcodeNameError
	m.Ns = append(m.Ns, s.soa())
}

func (s *DNSServer) nodata(m *dns.Msg) {
	m.Rcode = dns.RcodeSuccess
	m.Ns = append(m.Ns, s.soa())
}

// soa returns a fresh SOA record for the zone (fresh: messages never share RRs).
func (s *DNSServer) soa() *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: s.domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.ttl},
		Ns:      "ns." + s.domain,
		Mbox:    "hostmaster." + s.domain,
		Serial:  soaSerial,
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  s.ttl,
	}
}

func (s *DNSServer) hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: s.ttl}
}

// addrRR is an A or AAAA record for a; ip is a's bytes (shared, never written).
func (s *DNSServer) addrRR(name string, a netip.Addr, ip net.IP) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: s.hdr(name, dns.TypeA), A: ip}
	}
	return &dns.AAAA{Hdr: s.hdr(name, dns.TypeAAAA), AAAA: ip}
}

// write adds EDNS0, fits m to the transport and sends it; it returns the
// rcode sent (SERVFAIL if m did not pack).
func (s *DNSServer) write(w dns.ResponseWriter, r, m *dns.Msg, tcp bool) int {
	opt, _ := requestOPT(r)
	if opt != nil { // RFC 6891 §7: a request with OPT gets a reply with OPT
		m.SetEdns0(maxUDPSize, false)
	}
	size := dns.MaxMsgSize
	if !tcp {
		size = udpSize(opt)
	}
	m.Truncate(size) // compresses names only when the reply would not fit without
	err := w.WriteMsg(m)
	if err != nil {
		if _, perr := m.Pack(); perr != nil {
			// Should be unreachable; say so loudly, and still answer something.
			s.log.Error("DNS reply does not pack", "err", perr, "question", questionString(r))
			m = serverFailure(r)
			err = w.WriteMsg(m)
		}
	}
	if err != nil {
		s.log.Warn("writing DNS reply", "err", err, "client", w.RemoteAddr())
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		proto := "udp"
		if tcp {
			proto = "tcp"
		}
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "dns query",
			slog.String("question", questionString(r)),
			slog.String("rcode", dns.RcodeToString[m.Rcode]),
			slog.Int("answers", len(m.Answer)),
			slog.Bool("truncated", m.Truncated),
			slog.String("proto", proto),
			slog.Any("client", w.RemoteAddr()),
		)
	}
	return m.Rcode
}

// serverFailure is the minimal reply for when the normal one cannot be built.
func serverFailure(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.Id = r.Id
	m.Response = true
	m.Opcode = r.Opcode
	m.Rcode = dns.RcodeServerFailure
	return m
}

// requestOPT returns the request's OPT record (the last one, as miekg/dns does)
// and how many there are.
func requestOPT(r *dns.Msg) (*dns.OPT, int) {
	var opt *dns.OPT
	n := 0
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			opt = o
			n++
		}
	}
	return opt, n
}

// udpSize is the largest UDP reply the client accepts: 512 bytes without EDNS0,
// else its advertised size, clamped to [512, maxUDPSize].
func udpSize(opt *dns.OPT) int {
	if opt == nil {
		return dns.MinMsgSize
	}
	return min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
}

// validName reports whether name is a fully qualified domain name in miekg/dns's
// presentation form. Names unpacked from the wire always are.
func validName(name string) bool {
	_, ok := dns.IsDomainName(name)
	return ok && dns.IsFqdn(name)
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

func questionString(r *dns.Msg) string {
	if len(r.Question) == 0 {
		return ""
	}
	q := r.Question[0]
	return q.Name + " " + dns.Class(q.Qclass).String() + " " + dns.Type(q.Qtype).String()
}
