// Package registry is Strata's service discovery: the catalog of service
// instances as an immutable, indexed Snapshot, the Holder that publishes it, the
// byte encoding an agent's replica is kept and updated in, and an authoritative
// DNS server over it. Package registry/consul serves the same snapshots as
// Consul's catalog and health HTTP API.
//
// # What it owns
//
//   - Instance, Health, Entry, Snapshot, Delta: the catalog. A Snapshot holds
//     every instance (service, tags, address, port, node name, ID and address,
//     allocation, health passing/warning/critical) at an Index, indexed for
//     constant-time lookups by service, by (service, tag) and by node, each with
//     the index at which it last changed. Snapshot.Apply(Delta) returns the next
//     snapshot (upserts and deletes by instance ID) sharing every unchanged
//     service, node and entry with its parent, which it never modifies.
//   - Holder: the current snapshot behind one atomic pointer. Readers never lock;
//     Wait(ctx, n) sleeps until a snapshot with Index > n is published (blocking
//     queries, the agent's replica), on a channel closed by the publication.
//   - The encoding (AppendBinary/MarshalBinary, DecodeSnapshot, DecodeDelta):
//     versioned and compact (strings written once); decoders return errors
//     wrapping ErrBadEncoding and never panic (fuzzed).
//   - DNSServer: a miekg/dns handler (ServeDNS; DNSConfig.Observer hears
//     each answered query's rcode and duration: the servers' metrics count
//     them, no metrics library here) plus a UDP+TCP listener life
//     cycle (Listen, Addr, Shutdown), answering from a Holder's snapshot.
//   - Endpoint, Catalog, HealthyWithTag, StaticCatalog: the vocabulary agents
//     report and the coordinator stores (its native /v1/service API reads
//     them); Endpoint.Instance converts, Instance.Validate says what a
//     snapshot refuses.
//
// # What it must not do
//
// It never mutates cluster state: instances are written by the coordinator
// (through Raft) and reach this package as snapshots and deltas. The DNS hot path
// takes no lock and does no I/O; it forwards only names outside its domain and
// only to configured recursors; it caches nothing beyond what an immutable
// Entry derives for it, and never encodes DNS wire format by hand (miekg/dns
// does all packing, compression and truncation).
//
// # Wiring (for the coordinator and the agent)
//
// The coordinator keeps one Holder, built at start with NewSnapshot(appliedIndex,
// all instances) and advanced by Holder.Apply(Delta{Index: raftIndex, ...}) after
// each FSM transaction that changes endpoints (one delta per batch keeps Apply's
// cost, a copy of the ID map, per batch). An agent's replica is DecodeSnapshot of
// what it stored, then Holder.Apply(DecodeDelta(frame)) per delta received;
// after a reconnect it sends its Holder.Index() and the server answers with
// Holder.DeltaSince(that index) (one merged delta), or with the whole snapshot
// when it no longer has the deltas (ok == false). A delta re-sent after a
// reconnect is refused as ErrStaleDelta (its index is not above), deletes of
// unknown IDs are ignored. An agent that changed its replica locally while
// offline (its own allocations' health) resynchronises with Holder.Replace.
//
// # DNS interface
//
// The interface follows Consul's, with the configured domain (default "strata.";
// "consul." serves Consul's own names) in place of "consul.":
//
//	<service>.service.strata.            A, AAAA, SRV  passing instances
//	<tag>.<service>.service.strata.      A, AAAA, SRV  passing instances carrying tag
//	_<service>._<tag>.service.strata.    RFC 2782 form; "_tcp" means no tag filter
//	<node>.node.strata.                  A or AAAA: the node's address
//	<hex>.addr.strata.                   A (8 hex digits) or AAAA (32 hex digits)
//	strata.                              SOA
//
// Only passing instances are served (warning and critical ones are not). A and
// AAAA answers carry the distinct addresses of the passing instances. SRV answers
// carry one record per passing instance with an address and a port (priority 1,
// weight 1) whose target is "<node>.node.<domain>" when the instance listens on
// its node's address (and the node name is a DNS label), else
// "<hex>.addr.<domain>", as Consul does for a service address that differs from
// its node's; the target's A/AAAA record goes in the Additional section, once per
// distinct target.
//
// Answers are shuffled per query (Fisher-Yates over a PCG stream seeded by
// DNSConfig.Seed and the query's sequence number), so clients that take the first
// record spread their load; the same seed gives the same sequence of orders.
//
// Every record carries DNSConfig.TTL (default 5 s): short, so caches follow
// scaling and failures; the SOA's TTL and MINIMUM are the same, so negative
// answers are cached no longer than positive ones.
//
// Response codes:
//
//   - A service with no instances, or with no passing instance (or none carrying
//     the requested tag), is NXDOMAIN, as in Consul: a service with nothing
//     passing does not exist as far as DNS is concerned. So is an unknown node.
//     NXDOMAIN and NODATA answers carry the zone's SOA in the Authority section.
//   - A name that exists but has no record of the asked type is NODATA (NOERROR,
//     empty answer, SOA in Authority). That includes ANY and TXT for a service
//     (ANY is deliberately not expanded, see RFC 8482), AAAA for an IPv4-only
//     service or node, the apex for anything but SOA, and the empty
//     non-terminals "service.<domain>", "node.<domain>", "addr.<domain>" and
//     "_x.service.<domain>" (so an RFC 8020 resolver never concludes from an
//     NXDOMAIN that "_web._tcp.service.<domain>" cannot exist). Names with
//     escaped bytes ("\.") are NXDOMAIN: this server never makes one.
//   - Names outside the domain are forwarded to DNSConfig.Recursors in order
//     (miekg/dns's client, over the query's transport, RecursorTimeout per
//     exchange, default 2 s) and the first answer is relayed; SERVFAIL if none
//     answers. With no recursors they are REFUSED, without the Authoritative bit.
//     RecursionAvailable is set on every reply exactly when recursors are
//     configured.
//   - In the domain, classes other than IN or ANY are REFUSED. Zero or several
//     questions, a message with the QR bit set, or several OPT records: FORMERR.
//     Opcodes other than QUERY, and AXFR/IXFR: NOTIMP. An EDNS version other
//     than 0: BADVERS. Garbage that miekg/dns cannot parse is dropped, or answered
//     FORMERR when its header is readable.
//   - Every other answer has the Authoritative bit.
//
// Names are case-insensitive (ASCII): the question is lowercased before it is
// parsed, and services, tags and nodes are matched lowercased. Answers echo the
// question's spelling in their owner names.
//
// Over UDP a reply is cut to the client's EDNS0 buffer size (512 bytes without
// EDNS0, at most 4096 bytes, which is also the size this server advertises) with
// dns.Msg.Truncate, which sets TC so the client retries over TCP; over TCP the
// whole answer is sent (up to the 64 KiB DNS message limit). Names are
// compressed when the reply would not fit without.
//
// Every query is logged at Debug level.
// ServeDNS never panics: a panic is recovered, logged at Error and answered
// with SERVFAIL.
//
// Every server answers from the Holder its coordinator feeds (Server.Catalog):
// the per-query Catalog source (a bbolt read per query) is gone.
package registry
