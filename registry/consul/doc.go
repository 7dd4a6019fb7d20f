// Package consul serves Consul's catalog and health HTTP API from a registry
// snapshot Holder, so tools written for Consul (consul-template, Prometheus's
// consul_sd_configs, Traefik's Consul catalog provider, the official
// github.com/hashicorp/consul/api client) work against a Strata server
// unchanged. See docs/consul.md for the tools' configuration.
//
// # What it owns
//
// Handler, an http.Handler for:
//
//	GET /v1/catalog/services            service name -> tags
//	GET /v1/catalog/service/{name}      ?tag= (repeatable: all must match)
//	GET /v1/health/service/{name}       ?tag=, ?passing
//	GET /v1/catalog/nodes
//	GET /v1/catalog/node/{name}         null for an unknown node, as in Consul
//	GET /v1/catalog/datacenters
//	GET /v1/agent/self                  Config.Datacenter, Config.NodeName, Member
//
// with Consul's JSON shapes and headers (X-Consul-Index, X-Consul-KnownLeader,
// X-Consul-LastContact, X-Consul-Effective-Consistency: stale).
//
// Blocking queries: ?index=N returns once the watched index passes N, or after
// ?wait (default 5m, at most 10m, plus up to wait/16 of jitter, as Consul). The
// watched index is the service's own for /catalog/service and /health/service
// (a change to another service does not wake the query), the node's for
// /catalog/node, the catalog's last change for the lists. The handler sleeps
// on the Holder's publication channel: it never polls.
//
// Each instance has one check, "service:<ID>", whose status is the instance's
// aggregated health (passing, warning, critical); ?passing keeps only passing
// instances. Service metadata carries external-source=strata and alloc_id.
//
// Parameters that would change the result and are not implemented (filter,
// node-meta, near, hash, peer, sameness-group, consistent, a dc other than the
// configured one, a namespace or partition other than default) get 400 naming
// the parameter, as does a malformed index, wait or passing. stale and cached
// are accepted: every answer comes from this server's snapshot. The handler
// checks no token: whoever mounts it does (the coordinator puts each route
// behind its ACL table, which reads X-Consul-Token).
//
// # What it must not do
//
// Write anything: there is no registration endpoint. It reads snapshots only,
// never the coordinator's state store.
package consul
