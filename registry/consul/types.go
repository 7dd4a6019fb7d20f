package consul

import (
	"github.com/strata-run/strata/registry"
)

// The JSON shapes of Consul's API (field names as github.com/hashicorp/consul/api
// decodes them). Maps and slices are never null where Consul sends {} or [].

type weights struct {
	Passing int
	Warning int
}

type node struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

type catalogService struct {
	ID                       string // the node's ID
	Node                     string
	Address                  string // the node's address
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceKind              string
	ServiceID                string
	ServiceName              string
	ServiceAddress           string
	ServiceTags              []string
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceWeights           weights
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

type agentService struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	Weights           weights
	EnableTagOverride bool
	CreateIndex       uint64
	ModifyIndex       uint64
	Datacenter        string
}

type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	CreateIndex uint64
	ModifyIndex uint64
}

type serviceEntry struct {
	Node    node
	Service agentService
	Checks  []healthCheck
}

type catalogNode struct {
	Node     node
	Services map[string]agentService
}

// nodeAddress is the address Consul clients dial when a service has none of
// its own: the node's, or the instance's when the node's is unknown.
func nodeAddress(e *registry.Entry) string {
	if e.NodeAddress != "" {
		return e.NodeAddress
	}
	return e.Address
}

func (h *Handler) nodeOfEntry(e *registry.Entry) node {
	addr := nodeAddress(e)
	return node{
		ID:              e.NodeID,
		Node:            e.Node,
		Address:         addr,
		Datacenter:      h.dc,
		TaggedAddresses: map[string]string{"lan": addr, "wan": addr},
		Meta:            map[string]string{},
		CreateIndex:     e.CreateIndex,
		ModifyIndex:     e.ModifyIndex,
	}
}

func (h *Handler) nodeOf(n registry.Node, eps []*registry.Entry) node {
	addr := n.Address
	if addr == "" && len(eps) > 0 {
		addr = eps[0].Address
	}
	return node{
		ID:              n.ID,
		Node:            n.Name,
		Address:         addr,
		Datacenter:      h.dc,
		TaggedAddresses: map[string]string{"lan": addr, "wan": addr},
		Meta:            map[string]string{},
		CreateIndex:     n.Index,
		ModifyIndex:     n.Index,
	}
}

func tagsOf(e *registry.Entry) []string {
	if e.Tags == nil {
		return []string{}
	}
	return e.Tags
}

// metaOf is the service metadata Strata adds: where the registration comes
// from, as Nomad's do, and the allocation that runs the instance.
func metaOf(e *registry.Entry) map[string]string {
	m := map[string]string{"external-source": "strata"}
	if e.AllocID != "" {
		m["alloc_id"] = e.AllocID
	}
	return m
}

func (h *Handler) catalogServiceOf(e *registry.Entry) catalogService {
	addr := nodeAddress(e)
	return catalogService{
		ID:              e.NodeID,
		Node:            e.Node,
		Address:         addr,
		Datacenter:      h.dc,
		TaggedAddresses: map[string]string{"lan": addr, "wan": addr},
		NodeMeta:        map[string]string{},
		ServiceID:       e.ID,
		ServiceName:     e.Service,
		ServiceAddress:  e.Address,
		ServiceTags:     tagsOf(e),
		ServiceMeta:     metaOf(e),
		ServicePort:     e.Port,
		ServiceWeights:  weights{Passing: 1, Warning: 1},
		CreateIndex:     e.CreateIndex,
		ModifyIndex:     e.ModifyIndex,
	}
}

func agentServiceOf(e *registry.Entry, dc string) agentService {
	return agentService{
		ID:          e.ID,
		Service:     e.Service,
		Tags:        tagsOf(e),
		Meta:        metaOf(e),
		Port:        e.Port,
		Address:     e.Address,
		Weights:     weights{Passing: 1, Warning: 1},
		CreateIndex: e.CreateIndex,
		ModifyIndex: e.ModifyIndex,
		Datacenter:  dc,
	}
}

// checkOf is the one check Strata reports per instance: the aggregate of the
// task's health checks, as the agent reports it.
func checkOf(e *registry.Entry) healthCheck {
	return healthCheck{
		Node:        e.Node,
		CheckID:     "service:" + e.ID,
		Name:        "Service '" + e.Service + "' check",
		Status:      e.Health.String(),
		ServiceID:   e.ID,
		ServiceName: e.Service,
		ServiceTags: tagsOf(e),
		Type:        "strata",
		CreateIndex: e.CreateIndex,
		ModifyIndex: e.ModifyIndex,
	}
}
