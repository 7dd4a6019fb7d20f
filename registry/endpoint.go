package registry

import (
	"slices"
	"strings"
)

// Endpoint is one running instance of a service.
type Endpoint struct {
	Service  string   `json:"Service"`
	Tags     []string `json:"Tags,omitempty"`
	AllocID  string   `json:"AllocID"`
	NodeID   string   `json:"NodeID"`
	NodeName string   `json:"NodeName"`
	Address  string   `json:"Address"` // IP (v4 or v6), no port
	Port     int      `json:"Port"`
	Healthy  bool     `json:"Healthy"`
	// Canary marks an instance of an unpromoted canary: it carries its
	// service's canary tags, and only a query for one of those tags
	// finds it (the untagged name does not).
	Canary bool `json:"Canary,omitempty"`
}

// HasTag reports whether e carries tag, compared case-insensitively (DNS names
// are case-insensitive, and tags are looked up through them).
func (e Endpoint) HasTag(tag string) bool {
	for _, t := range e.Tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// Catalog is the read side of the registry. Implementations must be safe for concurrent use.
//
// The DNS server asks for lowercased service names (DNS is case-insensitive), so an
// implementation that stores mixed-case names should match them case-insensitively,
// as StaticCatalog does. Callers must treat the returned slice as read-only.
type Catalog interface {
	// Endpoints returns every endpoint of service (healthy or not), in a stable order; nil if none.
	Endpoints(service string) []Endpoint
}

// HealthyWithTag filters endpoints: healthy only, and carrying tag if tag != "";
// an unpromoted canary is found only by one of its tags, never by the untagged
// name (Nomad's canary_tags). Tags are compared case-insensitively. It keeps the input order, never modifies
// eps, and returns nil if no endpoint passes.
func HealthyWithTag(eps []Endpoint, tag string) []Endpoint {
	keep := func(e *Endpoint) bool {
		if tag == "" {
			return e.Healthy && !e.Canary
		}
		return e.Healthy && e.HasTag(tag)
	}
	n := 0
	for i := range eps {
		if keep(&eps[i]) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Endpoint, 0, n) // one exact allocation: Endpoint is large
	for i := range eps {
		if keep(&eps[i]) {
			out = append(out, eps[i])
		}
	}
	return out
}

// StaticCatalog is an immutable in-memory Catalog, for tests (here and in other
// packages) and for tools that serve a fixed set of endpoints. Service names are
// matched case-insensitively. It is safe for concurrent use.
type StaticCatalog struct {
	byService map[string][]Endpoint
}

// NewStaticCatalog returns a catalog holding eps, grouped by Endpoint.Service,
// each service keeping the order in which its endpoints were given.
func NewStaticCatalog(eps ...Endpoint) *StaticCatalog {
	c := &StaticCatalog{byService: make(map[string][]Endpoint)}
	for _, e := range eps {
		e.Tags = slices.Clone(e.Tags)
		k := strings.ToLower(e.Service)
		c.byService[k] = append(c.byService[k], e)
	}
	return c
}

// Endpoints implements Catalog. The returned slice is a copy; the Tags slices in it
// are shared and must not be modified.
func (c *StaticCatalog) Endpoints(service string) []Endpoint {
	if c == nil {
		return nil
	}
	return slices.Clone(c.byService[strings.ToLower(service)])
}

// Services returns the names of the services in the catalog (lowercased), sorted.
func (c *StaticCatalog) Services() []string {
	if c == nil {
		return nil
	}
	names := make([]string, 0, len(c.byService))
	for k := range c.byService {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Instance converts e into a catalog Instance with the given ID: Healthy maps to
// HealthPassing, anything else to HealthCritical. An Endpoint carries no node
// address: the caller sets NodeAddress when it knows it (SRV records then name
// the node, see doc.go).
func (e Endpoint) Instance(id string) Instance {
	h := HealthCritical
	if e.Healthy {
		h = HealthPassing
	}
	return Instance{
		ID:      id,
		Service: e.Service,
		Tags:    e.Tags,
		Address: e.Address,
		Port:    e.Port,
		Node:    e.NodeName,
		NodeID:  e.NodeID,
		AllocID: e.AllocID,
		Health:  h,
		Canary:  e.Canary,
	}
}
