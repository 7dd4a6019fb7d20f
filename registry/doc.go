// Package registry is Strata's service discovery: the Endpoint type that agents
// report for every running service instance, the read-only Catalog interface over
// the stored endpoints, and an authoritative DNS server that answers from it.
//
// # What it owns
//
//   - Endpoint, Catalog and HealthyWithTag: the shared vocabulary of discovery,
//     used both by the coordinator (which stores endpoints) and the agents
//     (which report them).
//   - DNSServer: a miekg/dns handler (ServeDNS) plus a small UDP+TCP listener
//     life cycle (Listen, Addr, Shutdown).
//   - StaticCatalog: an immutable in-memory Catalog for tests and tools.
//
// # What it must not do
//
// It never mutates cluster state: endpoints are written by the coordinator (through
// Raft) and this package only reads them through a Catalog. It does not recurse, does
// not forward, does not cache, and never encodes DNS wire format by hand (miekg/dns
// does all packing, compression and truncation).
//
// # DNS interface
//
// The interface follows Consul's, with the configured domain (default "strata.")
// in place of "consul.":
//
//	<service>.service.strata.            A, AAAA, SRV  healthy endpoints
//	<tag>.<service>.service.strata.      A, AAAA, SRV  healthy endpoints carrying tag
//	_<service>._<tag>.service.strata.    RFC 2782 form; "_tcp" means no tag filter
//	<hex>.addr.strata.                   A (8 hex digits) or AAAA (32 hex digits)
//	strata.                              SOA
//
// A and AAAA answers carry the distinct addresses of the healthy endpoints, in catalog
// order. SRV answers carry one record per healthy endpoint (priority 1, weight 1), whose
// target is the endpoint's "<hex>.addr.<domain>" name; the matching A/AAAA records go in
// the Additional section, once per distinct target.
//
// Response codes:
//
//   - A service with no endpoints, or with no healthy endpoint (or none carrying the
//     requested tag), is NXDOMAIN, as in Consul: an unhealthy-only service does not
//     exist as far as DNS is concerned. NXDOMAIN and NODATA answers carry the zone's
//     SOA in the Authority section (its TTL and MINIMUM are the configured TTL, so
//     negative answers are cached no longer than positive ones).
//   - A name that exists but has no record of the asked type is NODATA (NOERROR, empty
//     answer, SOA in Authority). That includes ANY and TXT for a service (ANY is
//     deliberately not expanded, see RFC 8482), AAAA for an IPv4-only service, the
//     apex for anything but SOA, and the empty non-terminals "service.<domain>",
//     "addr.<domain>" and "_x.service.<domain>" (so an RFC 8020 resolver never
//     concludes from an NXDOMAIN that "_web._tcp.service.<domain>" cannot exist).
//   - Names outside the domain, and classes other than IN or ANY: REFUSED, without the
//     Authoritative bit. Zero or several questions, a message with the QR bit set, or
//     several OPT records: FORMERR. Opcodes other than QUERY, and AXFR/IXFR: NOTIMP.
//     An EDNS version other than 0: BADVERS.
//   - Every other answer has the Authoritative bit; RecursionAvailable is never set.
//
// Names are case-insensitive: the question is lowercased before it is parsed, so the
// Catalog is always asked for the lowercased service name and tags are compared with
// strings.EqualFold. Answers echo the question's spelling in their owner names.
//
// Over UDP a reply is cut to the client's EDNS0 buffer size (512 bytes without EDNS0,
// at most 4096 bytes, which is also the size this server advertises) with
// dns.Msg.Truncate, which sets TC so the client retries over TCP; over TCP the whole
// answer is sent (up to the 64 KiB DNS message limit). Names are always compressed.
//
// Answers are in the Catalog's (stable) order: no per-query shuffling, so replies
// are deterministic and testable. Load spreading by rotation is left to a later
// change (and to clients, most of which pick among SRV records of equal weight).
//
// Every query is logged at Debug level. ServeDNS never panics: a panic from a Catalog
// is recovered, logged at Error and answered with SERVFAIL.
package registry
