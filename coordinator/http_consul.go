package coordinator

import (
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/registry/consul"
)

// consulRoutes are the routes of Consul's HTTP API the server answers
// (package registry/consul), at Consul's own paths so Consul's tools and
// client work unchanged. Each has its ACL need in routeNeeds like every
// route. They answer from this server's catalog snapshot whether or not
// a leader is known (as Consul's ?stale, which they say in
// X-Consul-Effective-Consistency), with X-Consul-KnownLeader and
// X-Consul-LastContact from Raft: the readMode of Strata's own reads does
// not apply. Strata's own view of services, which used to be at the two
// /v1/catalog/service paths, is at Nomad's paths: /v1/services and
// /v1/service/{name}.
var consulRoutes = []string{
	"GET /v1/catalog/services",
	"GET /v1/catalog/service/{name}",
	"GET /v1/health/service/{name}",
	"GET /v1/catalog/nodes",
	"GET /v1/catalog/node/{name}",
	"GET /v1/catalog/datacenters",
	"GET /v1/agent/self",
}

// newConsulAPI is the Consul-compatible handler over catalog; name is
// this server's name in /v1/agent/self.
func newConsulAPI(catalog *registry.Holder, node *raftNode, name string, log *slog.Logger) (*consul.Handler, error) {
	return consul.New(consul.Config{Snapshots: catalog, NodeName: name, Leader: node.contact, Logger: log})
}

// contact reports whether this server knows the leader and how long ago
// it last heard from it (0 on the leader itself), for Consul's
// X-Consul-KnownLeader and X-Consul-LastContact.
func (n *raftNode) contact() (known bool, last time.Duration) {
	if n.raft.State() == raft.Leader {
		return true, 0
	}
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return false, 0
	}
	if lc := n.raft.LastContact(); !lc.IsZero() {
		last = max(time.Since(lc), 0)
	}
	return true, last
}
