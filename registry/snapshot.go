package registry

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"unique"
)

// Health is an instance's aggregated check status, as Consul names it. The zero
// value is HealthCritical: an instance whose health nobody reported is never served.
type Health uint8

const (
	HealthCritical Health = iota
	HealthWarning
	HealthPassing
)

func (h Health) String() string {
	switch h {
	case HealthPassing:
		return "passing"
	case HealthWarning:
		return "warning"
	case HealthCritical:
		return "critical"
	}
	return fmt.Sprintf("Health(%d)", uint8(h))
}

// Instance is one registered service instance: what a Snapshot holds and what
// deltas upsert. Service and node names are case-insensitive: a Snapshot keeps
// them lowercased.
type Instance struct {
	ID          string   // unique in a catalog; deltas upsert and delete by it (e.g. "<alloc>/<service>/<n>")
	Service     string   // service name
	Tags        []string // in the order registered
	Address     string   // the instance's IP address (v4 or v6), no port
	Port        int      // 0..65535; 0 = no port (no SRV record)
	Node        string   // node name
	NodeID      string   // node ID
	NodeAddress string   // the node's IP address; "" if unknown
	AllocID     string   // the allocation that runs it, "" if none
	Health      Health
	// Canary marks an unpromoted canary: only a query for one of its tags
	// finds it; the untagged name does not (Nomad's canary_tags).
	Canary bool
}

// Entry is an Instance as a Snapshot holds it, with the Raft-like indexes at which
// it was registered and last changed. Entries are shared between snapshots: they
// must never be modified.
type Entry struct {
	Instance
	CreateIndex uint64
	ModifyIndex uint64

	addr     netip.Addr // Address parsed (unmapped, no zone); invalid if it is not an IP
	nodeAddr netip.Addr // NodeAddress parsed likewise

	// dns caches what a DNSServer derives from the entry (its SRV target and
	// the target's address record), filled on first use: entries are shared by
	// successive snapshots, so the work is done once per instance version.
	dns atomic.Pointer[entryDNS]
}

// Addr is the parsed instance address (IPv4-mapped IPv6 unmapped, zone dropped);
// ok is false when Address is not an IP address.
func (e *Entry) Addr() (netip.Addr, bool) { return e.addr, e.addr.IsValid() }

// Delta changes a catalog from one index to the next: Upserts replace or add
// instances by ID, Deletes remove instance IDs (unknown IDs are ignored, so a
// delta can be re-applied after a reconnect). An ID may not appear twice in a delta.
type Delta struct {
	Index   uint64 // the index of the snapshot the delta produces; must exceed the current one
	Upserts []Instance
	Deletes []string
}

var (
	// ErrStaleDelta is returned by Apply for a delta whose Index is not above the snapshot's.
	ErrStaleDelta = errors.New("registry: stale delta")
	// ErrInvalidInstance wraps every validation error of an Instance or a Delta.
	ErrInvalidInstance = errors.New("registry: invalid instance")
)

// Snapshot is an immutable catalog of instances at an Index, indexed for
// constant-time lookups by service, by (service, tag) and by node. It is safe for
// concurrent use and never changes: Apply returns a new Snapshot that shares every
// unchanged part with its parent. Slices returned by its methods are shared and
// must not be modified.
type Snapshot struct {
	index    uint64
	changed  uint64 // the index of the last delta that changed an instance
	byID     map[string]*Entry
	services map[string]*serviceEntries // lowercase service name
	nodes    map[string]*nodeEntries    // lowercase node name
	svcNames []string                   // sorted
	nodeList []string                   // sorted
}

// serviceEntries is one service's instances, pre-filtered for DNS and HTTP.
type serviceEntries struct {
	index      uint64              // the last index at which any of its instances changed
	all        []*Entry            // every instance, by ID
	passing    []*Entry            // HealthPassing only, by ID
	tagged     map[string][]*Entry // lowercase tag -> every instance carrying it, by ID
	tagPassing map[string][]*Entry // lowercase tag -> passing instances carrying it
	tags       []string            // distinct tags, sorted
}

// nodeEntries is one node: its identity (from its instances) and instances.
type nodeEntries struct {
	index   uint64
	name    string
	id      string
	address string
	addr    netip.Addr
	all     []*Entry // by ID
}

// Node describes one node of the catalog, as known from its instances.
type Node struct {
	Name    string
	ID      string
	Address string
	Index   uint64 // the last index at which any of its instances changed
}

var emptySnapshot = &Snapshot{
	byID:     map[string]*Entry{},
	services: map[string]*serviceEntries{},
	nodes:    map[string]*nodeEntries{},
}

// NewSnapshot returns a snapshot of instances at index: every instance gets
// index as its CreateIndex and ModifyIndex. Instances are validated (see Delta)
// and copied; the caller keeps ownership of its slice.
func NewSnapshot(index uint64, instances []Instance) (*Snapshot, error) {
	if len(instances) == 0 {
		s := *emptySnapshot
		s.index, s.changed = index, index
		return &s, nil
	}
	s, err := emptySnapshot.apply(Delta{Index: index, Upserts: instances}, nil)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Index is the index of the last delta the snapshot contains.
func (s *Snapshot) Index() uint64 { return s.index }

// ChangeIndex is the index of the last delta that changed, added or removed an
// instance: a delta that changes nothing moves Index, not ChangeIndex.
func (s *Snapshot) ChangeIndex() uint64 { return s.changed }

// Len is the number of instances.
func (s *Snapshot) Len() int { return len(s.byID) }

// Instance returns the entry with the given ID.
func (s *Snapshot) Instance(id string) (*Entry, bool) {
	e, ok := s.byID[id]
	return e, ok
}

// Services returns the names of the services that have at least one instance, sorted.
func (s *Snapshot) Services() []string { return s.svcNames }

// ServiceIndex returns the index at which service last changed and whether it exists.
func (s *Snapshot) ServiceIndex(service string) (uint64, bool) {
	if e := s.service(service); e != nil {
		return e.index, true
	}
	return 0, false
}

// ServiceTags returns the distinct tags of a service's instances (any health), sorted.
func (s *Snapshot) ServiceTags(service string) []string {
	if e := s.service(service); e != nil {
		return e.tags
	}
	return nil
}

// Instances returns a service's instances of any health carrying tag (every
// instance if tag is ""), ordered by ID.
func (s *Snapshot) Instances(service, tag string) []*Entry {
	e := s.service(service)
	switch {
	case e == nil:
		return nil
	case tag == "":
		return e.all
	}
	return e.tagged[lowerASCII(tag)]
}

// Passing is Instances restricted to HealthPassing; with no tag it leaves out
// unpromoted canaries, which only their tags find.
func (s *Snapshot) Passing(service, tag string) []*Entry {
	e := s.service(service)
	switch {
	case e == nil:
		return nil
	case tag == "":
		return e.passing
	}
	return e.tagPassing[lowerASCII(tag)]
}

// Nodes returns the names of the nodes that have at least one instance, sorted.
func (s *Snapshot) Nodes() []string { return s.nodeList }

// Node returns a node by (case-insensitive) name.
func (s *Snapshot) Node(name string) (Node, bool) {
	n := s.nodes[lowerASCII(name)]
	if n == nil {
		return Node{}, false
	}
	return Node{Name: n.name, ID: n.id, Address: n.address, Index: n.index}, true
}

// NodeInstances returns the instances on a node, ordered by ID.
func (s *Snapshot) NodeInstances(name string) []*Entry {
	if n := s.nodes[lowerASCII(name)]; n != nil {
		return n.all
	}
	return nil
}

// nodeAddr returns the parsed address of a node (lowercase name), if known.
func (s *Snapshot) nodeAddr(lname string) (netip.Addr, bool) {
	if n := s.nodes[lname]; n != nil && n.addr.IsValid() {
		return n.addr, true
	}
	return netip.Addr{}, false
}

func (s *Snapshot) service(name string) *serviceEntries { return s.services[lowerASCII(name)] }

// Apply returns the snapshot that d produces from s; s is not modified. Instances
// that d upserts unchanged keep their ModifyIndex, so watchers of their service are
// not woken. Apply returns ErrStaleDelta if d.Index <= s.Index(), and an error
// wrapping ErrInvalidInstance for an invalid instance or a repeated ID.
func (s *Snapshot) Apply(d Delta) (*Snapshot, error) {
	if d.Index <= s.index {
		return nil, fmt.Errorf("%w: index %d, snapshot at %d", ErrStaleDelta, d.Index, s.index)
	}
	return s.apply(d, nil)
}

// apply builds the next snapshot. keep, when non-nil, gives the indexes to keep for
// entries (used by the decoder, which restores them).
func (s *Snapshot) apply(d Delta, restore func(id string) (create, modify uint64)) (*Snapshot, error) {
	if err := validateDelta(d); err != nil {
		return nil, err
	}
	byID := maps.Clone(s.byID)
	touchedSvc := map[string]bool{}
	touchedNode := map[string]bool{}
	for _, id := range d.Deletes {
		if old, ok := byID[id]; ok {
			delete(byID, id)
			touchedSvc[old.Service] = true
			touchedNode[old.Node] = old.Node != ""
		}
	}
	fresh := map[string][]*Entry{}     // service -> new entries
	freshNode := map[string][]*Entry{} // node -> new entries
	for i := range d.Upserts {
		e := newEntry(d.Upserts[i])
		old := byID[e.ID]
		if old != nil && sameInstance(&old.Instance, &e.Instance) {
			continue
		}
		e.CreateIndex, e.ModifyIndex = d.Index, d.Index
		if old != nil {
			e.CreateIndex = old.CreateIndex
			touchedSvc[old.Service] = true
			touchedNode[old.Node] = old.Node != ""
		}
		if restore != nil {
			e.CreateIndex, e.ModifyIndex = restore(e.ID)
		}
		byID[e.ID] = e
		touchedSvc[e.Service] = true
		fresh[e.Service] = append(fresh[e.Service], e)
		if e.Node != "" {
			touchedNode[e.Node] = true
			freshNode[e.Node] = append(freshNode[e.Node], e)
		}
	}

	next := &Snapshot{index: d.Index, changed: s.changed, byID: byID, services: s.services, nodes: s.nodes,
		svcNames: s.svcNames, nodeList: s.nodeList}
	if len(touchedSvc) == 0 && len(touchedNode) == 0 {
		return next, nil // an index bump only: share everything
	}
	next.changed = d.Index
	next.services = maps.Clone(s.services)
	namesChanged := false
	for name := range touchedSvc {
		var old []*Entry
		if prev := s.services[name]; prev != nil {
			old = prev.all
		}
		all := mergeEntries(old, fresh[name], byID)
		if len(all) == 0 {
			delete(next.services, name)
			namesChanged = true
			continue
		}
		if s.services[name] == nil {
			namesChanged = true
		}
		next.services[name] = buildService(d.Index, all)
	}
	if namesChanged {
		next.svcNames = slices.Sorted(maps.Keys(next.services))
	}
	next.nodes = maps.Clone(s.nodes)
	namesChanged = false
	for name, touched := range touchedNode {
		if !touched {
			continue
		}
		var old []*Entry
		if prev := s.nodes[name]; prev != nil {
			old = prev.all
		}
		all := mergeEntries(old, freshNode[name], byID)
		if len(all) == 0 {
			delete(next.nodes, name)
			namesChanged = true
			continue
		}
		if s.nodes[name] == nil {
			namesChanged = true
		}
		next.nodes[name] = buildNode(d.Index, all)
	}
	if namesChanged {
		next.nodeList = slices.Sorted(maps.Keys(next.nodes))
	}
	return next, nil
}

// mergeEntries returns old's entries still current in byID plus fresh, by ID.
func mergeEntries(old, fresh []*Entry, byID map[string]*Entry) []*Entry {
	out := make([]*Entry, 0, len(old)+len(fresh))
	for _, e := range old {
		if byID[e.ID] == e {
			out = append(out, e)
		}
	}
	out = append(out, fresh...)
	slices.SortFunc(out, func(a, b *Entry) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func buildService(index uint64, all []*Entry) *serviceEntries {
	se := &serviceEntries{index: index, all: all}
	for _, e := range all {
		pass := e.Health == HealthPassing
		if pass && !e.Canary {
			se.passing = append(se.passing, e)
		}
		for _, t := range e.Tags {
			lt := lowerASCII(t)
			if se.tagged == nil {
				se.tagged = map[string][]*Entry{}
				se.tagPassing = map[string][]*Entry{}
			}
			list := se.tagged[lt]
			if len(list) > 0 && list[len(list)-1] == e {
				continue // the same tag twice on one instance
			}
			if len(list) == 0 {
				se.tags = append(se.tags, t) // first spelling, in ID order
			}
			se.tagged[lt] = append(list, e)
			if pass {
				se.tagPassing[lt] = append(se.tagPassing[lt], e)
			}
		}
	}
	slices.Sort(se.tags)
	return se
}

// buildNode takes the node's identity from its entry with the smallest ID that
// names one (instances of one node should agree).
func buildNode(index uint64, all []*Entry) *nodeEntries {
	n := &nodeEntries{index: index, all: all, name: all[0].Node}
	for _, e := range all {
		if n.id == "" {
			n.id = e.NodeID
		}
		if n.address == "" && e.NodeAddress != "" {
			n.address, n.addr = e.NodeAddress, e.nodeAddr
		}
	}
	return n
}

// newEntry copies in, normalises names and interns the strings that repeat
// across instances (names, addresses, tags).
func newEntry(in Instance) *Entry {
	e := &Entry{Instance: in}
	e.Service = intern(lowerASCII(in.Service))
	e.Node = intern(lowerASCII(in.Node))
	e.NodeID = intern(in.NodeID)
	e.NodeAddress = intern(in.NodeAddress)
	e.Address = intern(in.Address)
	if len(in.Tags) > 0 {
		e.Tags = make([]string, len(in.Tags))
		for i, t := range in.Tags {
			e.Tags[i] = intern(t)
		}
	} else {
		e.Tags = nil
	}
	e.addr, _ = parseEndpointAddr(e.Address)
	e.nodeAddr, _ = parseEndpointAddr(e.NodeAddress)
	return e
}

func sameInstance(a, b *Instance) bool {
	return a.ID == b.ID && a.Service == b.Service && slices.Equal(a.Tags, b.Tags) &&
		a.Address == b.Address && a.Port == b.Port && a.Node == b.Node && a.NodeID == b.NodeID &&
		a.NodeAddress == b.NodeAddress && a.AllocID == b.AllocID && a.Health == b.Health &&
		a.Canary == b.Canary
}

func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// maxField bounds every string of an Instance: far above any real name, low
// enough that a hostile delta cannot make a snapshot huge per instance.
const maxField = 1024

// validateDelta checks every upsert and the uniqueness of IDs in d.
func validateDelta(d Delta) error {
	seen := make(map[string]bool, len(d.Upserts)+len(d.Deletes))
	for i := range d.Upserts {
		in := &d.Upserts[i]
		if err := validateInstance(in); err != nil {
			return err
		}
		if seen[in.ID] {
			return fmt.Errorf("%w: ID %q twice in one delta", ErrInvalidInstance, in.ID)
		}
		seen[in.ID] = true
	}
	for _, id := range d.Deletes {
		if id == "" || len(id) > maxField {
			return fmt.Errorf("%w: delete of an empty or oversized ID", ErrInvalidInstance)
		}
		if seen[id] {
			return fmt.Errorf("%w: ID %q twice in one delta", ErrInvalidInstance, id)
		}
		seen[id] = true
	}
	return nil
}

// Validate reports why in cannot be part of a Snapshot (an error wrapping
// ErrInvalidInstance), or nil: what NewSnapshot and Apply check of each
// instance, for a producer that leaves bad ones out instead of failing a
// whole delta.
func (in Instance) Validate() error { return validateInstance(&in) }

func validateInstance(in *Instance) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidInstance, in.ID, fmt.Sprintf(format, args...))
	}
	switch {
	case in.ID == "":
		return fmt.Errorf("%w: empty ID", ErrInvalidInstance)
	case in.Service == "":
		return bad("empty service name")
	case in.Port < 0 || in.Port > math.MaxUint16:
		return bad("port %d out of range", in.Port)
	case in.Health > HealthPassing:
		return bad("health %d unknown", in.Health)
	case len(in.Tags) > maxField:
		return bad("%d tags", len(in.Tags))
	}
	for _, f := range [...]string{in.ID, in.Service, in.Address, in.Node, in.NodeID, in.NodeAddress, in.AllocID} {
		if len(f) > maxField {
			return bad("field longer than %d bytes", maxField)
		}
	}
	for _, t := range in.Tags {
		if len(t) > maxField {
			return bad("tag longer than %d bytes", maxField)
		}
	}
	return nil
}

// lowerASCII lowercases ASCII letters, returning s itself (no allocation) when it
// has none: the DNS path asks with already-lowercased names.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
