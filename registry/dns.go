package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	// DefaultDomain is the zone served when DNSConfig.Domain is empty.
	DefaultDomain = "strata."

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
	// ErrNoCatalog is returned by NewDNS when DNSConfig.Catalog is nil.
	ErrNoCatalog = errors.New("registry: DNSConfig.Catalog is required")
	// ErrServerClosed is returned by Listen after Shutdown.
	ErrServerClosed = errors.New("registry: DNS server closed")
	// ErrAlreadyListening is returned by a second call to Listen.
	ErrAlreadyListening = errors.New("registry: DNS server already listening")
)

// DNSConfig configures a DNSServer.
type DNSConfig struct {
	Domain  string        // default "strata."
	Catalog Catalog       // required
	TTL     time.Duration // default 0 (like Consul's default service TTL): answers are not cached
	Logger  *slog.Logger  // nil = discard
}

// DNSServer answers DNS queries for the configured domain from a Catalog. Its
// ServeDNS method is a dns.Handler and may be called concurrently; Listen,
// Addr and Shutdown manage an optional UDP+TCP listener pair.
type DNSServer struct {
	domain       string // canonical: lowercase, fully qualified
	domainLabels int
	catalog      Catalog
	ttl          uint32 // seconds
	log          *slog.Logger

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
	if cfg.Catalog == nil {
		return nil, ErrNoCatalog
	}
	domain := cfg.Domain
	if domain == "" {
		domain = DefaultDomain
	}
	domain = dns.CanonicalName(domain)
	if _, ok := dns.IsDomainName(domain); !ok || domain == "." {
		return nil, fmt.Errorf("registry: invalid DNS domain %q", cfg.Domain)
	}
	const maxTTL = math.MaxInt32 * time.Second // RFC 2181 §8
	if cfg.TTL < 0 || cfg.TTL > maxTTL {
		return nil, fmt.Errorf("registry: DNS TTL %v out of range [0s, %v]", cfg.TTL, maxTTL)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DNSServer{
		domain:       domain,
		domainLabels: dns.CountLabel(domain),
		catalog:      cfg.Catalog,
		ttl:          uint32(cfg.TTL / time.Second),
		log:          log.With("component", "registry.dns"),
	}, nil
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
	var m *dns.Msg
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic while answering a DNS query", "panic", p, "stack", string(debug.Stack()))
			if m == nil { // nothing was written yet
				s.write(w, r, serverFailure(r), tcp)
			}
		}
	}()
	m = s.reply(r)
	s.write(w, r, m, tcp)
}

// reply builds the answer to r, before EDNS0 and truncation.
func (s *DNSServer) reply(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(m.Question) == 1 && !validName(m.Question[0].Name) {
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
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		return m
	}
	if !validName(q.Name) {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	name := strings.ToLower(q.Name)
	if !dns.IsSubDomain(s.domain, name) {
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

// resolve fills m for a question in our domain. qname is the question's
// spelling (used for owner names), name its lowercase form.
func (s *DNSServer) resolve(m *dns.Msg, qname, name string, qtype uint16) {
	labels := dns.SplitDomainName(name)
	if len(labels) < s.domainLabels {
		s.nxdomain(m)
		return
	}
	sub := labels[:len(labels)-s.domainLabels]
	if len(sub) == 0 { // the apex
		if qtype == dns.TypeSOA {
			m.Answer = append(m.Answer, s.soa())
			return
		}
		s.nodata(m)
		return
	}
	kind, parts := sub[len(sub)-1], sub[:len(sub)-1]
	switch kind {
	case "service":
		s.resolveService(m, qname, parts, qtype)
	case "addr":
		s.resolveAddr(m, qname, parts, qtype)
	default:
		s.nxdomain(m)
	}
}

// resolveService answers "[tag.]<service>.service.<domain>" and
// "_<service>._<tag>.service.<domain>"; parts are the labels before "service".
func (s *DNSServer) resolveService(m *dns.Msg, qname string, parts []string, qtype uint16) {
	var service, tag string
	switch len(parts) {
	case 0: // "service.<domain>": an empty non-terminal
		s.nodata(m)
		return
	case 1:
		if strings.HasPrefix(parts[0], "_") { // "_tcp.service.<domain>": parent of RFC 2782 names
			s.nodata(m)
			return
		}
		service = parts[0]
	case 2:
		if strings.HasPrefix(parts[0], "_") && strings.HasPrefix(parts[1], "_") {
			service, tag = parts[0][1:], parts[1][1:]
			if tag == "" {
				s.nxdomain(m)
				return
			}
			if tag == "tcp" { // _<service>._tcp: no tag filter
				tag = ""
			}
		} else {
			tag, service = parts[0], parts[1]
		}
	default:
		s.nxdomain(m)
		return
	}
	if service == "" {
		s.nxdomain(m)
		return
	}
	eps := HealthyWithTag(s.catalog.Endpoints(service), tag)
	if len(eps) == 0 { // unknown, unhealthy, or nothing with that tag: Consul says NXDOMAIN
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

// addressAnswers appends one A (v4) or AAAA (!v4) record per distinct address.
func (s *DNSServer) addressAnswers(m *dns.Msg, qname string, eps []Endpoint, v4 bool) {
	seen := make(map[netip.Addr]struct{}, len(eps))
	for _, e := range eps {
		a, ok := parseEndpointAddr(e.Address)
		if !ok || a.Is4() != v4 {
			continue
		}
		if _, dup := seen[a]; dup {
			continue
		}
		seen[a] = struct{}{}
		m.Answer = append(m.Answer, s.addrRR(qname, a))
	}
}

// srvAnswers appends one SRV record per endpoint with a usable address and port,
// and one A/AAAA record per distinct target to the Additional section.
func (s *DNSServer) srvAnswers(m *dns.Msg, qname string, eps []Endpoint) {
	targets := make(map[string]struct{}, len(eps))
	m.Answer = slices.Grow(m.Answer, len(eps))
	m.Extra = slices.Grow(m.Extra, len(eps))
	for _, e := range eps {
		a, ok := parseEndpointAddr(e.Address)
		if !ok || e.Port < 1 || e.Port > math.MaxUint16 {
			continue
		}
		target := hexLabel(a) + ".addr." + s.domain
		m.Answer = append(m.Answer, &dns.SRV{
			Hdr:      s.hdr(qname, dns.TypeSRV),
			Priority: 1,
			Weight:   1,
			Port:     uint16(e.Port),
			Target:   target,
		})
		if _, dup := targets[target]; !dup {
			targets[target] = struct{}{}
			m.Extra = append(m.Extra, s.addrRR(target, a))
		}
	}
}

// resolveAddr answers "<hex>.addr.<domain>"; parts are the labels before "addr".
func (s *DNSServer) resolveAddr(m *dns.Msg, qname string, parts []string, qtype uint16) {
	switch len(parts) {
	case 0: // "addr.<domain>": an empty non-terminal
		s.nodata(m)
		return
	case 1:
	default:
		s.nxdomain(m)
		return
	}
	a, ok := parseHexLabel(parts[0])
	if !ok {
		s.nxdomain(m)
		return
	}
	if (qtype == dns.TypeA && a.Is4()) || (qtype == dns.TypeAAAA && a.Is6()) {
		m.Answer = append(m.Answer, s.addrRR(qname, a))
		return
	}
	s.nodata(m)
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

func (s *DNSServer) addrRR(name string, a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: s.hdr(name, dns.TypeA), A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: s.hdr(name, dns.TypeAAAA), AAAA: a.AsSlice()}
}

// write adds EDNS0, fits m to the transport and sends it.
func (s *DNSServer) write(w dns.ResponseWriter, r, m *dns.Msg, tcp bool) {
	opt, _ := requestOPT(r)
	if opt != nil { // RFC 6891 §7: a request with OPT gets a reply with OPT
		m.SetEdns0(maxUDPSize, false)
	}
	size := dns.MaxMsgSize
	if !tcp {
		size = udpSize(opt)
	}
	m.Truncate(size)
	m.Compress = true // Truncate turns compression off when the message fits without it
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
