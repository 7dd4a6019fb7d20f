package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
)

// The registry catalog as the state sees it: every endpoint an allocation
// reports (the services bucket) is one registry.Instance, whose ID is
// "<alloc>/<service>/<n>" (n: the endpoint's position in the allocation's
// report) and whose NodeAddress is its node's registered address (so DNS
// SRV targets name the node). A batch that changes endpoints reports the
// change as one registry.Delta (Effects.Catalog); CatalogSnapshot is the
// whole catalog at the applied index, for a server that starts or
// restores a snapshot.

// endpointChange is one allocation's endpoints before a batch and after
// it; moved: its node's address changed, so its instances change even if
// its endpoints did not.
type endpointChange struct {
	before, after []registry.Endpoint
	moved         bool
}

// catalogChanged records that the batch replaced an allocation's
// endpoints: old the first time it does, eps every time.
func (b *batch) catalogChanged(allocID string, old, eps []registry.Endpoint) {
	if b.catalog == nil {
		b.catalog = map[string]*endpointChange{}
	}
	c := b.catalog[allocID]
	if c == nil {
		c = &endpointChange{before: old}
		b.catalog[allocID] = c
	}
	c.after = eps
}

// nodeMoved records that a node registered with another address than
// before: its instances' NodeAddress changes.
func (b *batch) nodeMoved(nodeID string) {
	if b.movedNodes == nil {
		b.movedNodes = map[string]bool{}
	}
	b.movedNodes[nodeID] = true
}

// catalogDelta is the batch's change to the catalog, stamped with the
// batch's index; nil if no allocation's endpoints changed. It reads the
// nodes' addresses in the batch's transaction.
func (b *batch) catalogDelta() (*registry.Delta, error) {
	if len(b.movedNodes) > 0 {
		if err := b.catalogMovedNodes(); err != nil {
			return nil, err
		}
	}
	if len(b.catalog) == 0 {
		return nil, nil
	}
	d := &registry.Delta{Index: b.fx.Index}
	addrs := nodeAddresses{bucket: b.tx.Bucket(bucketNodes)}
	for _, id := range sortedKeys(b.catalog) {
		c := b.catalog[id]
		kept := make(map[string]bool, len(c.after))
		for i, e := range c.after {
			addr, err := addrs.of(e.NodeID)
			if err != nil {
				return nil, err
			}
			in := catalogInstance(id, i, e, addr)
			if in.Validate() != nil {
				continue // never servable: left out here as in CatalogSnapshot
			}
			kept[in.ID] = true
			if !c.moved && i < len(c.before) && sameEndpoint(c.before[i], e) {
				continue // unchanged: a reader sees no difference
			}
			d.Upserts = append(d.Upserts, in)
		}
		for i, e := range c.before {
			if iid := instanceID(id, e.Service, i); !kept[iid] {
				d.Deletes = append(d.Deletes, iid)
			}
		}
	}
	if len(d.Upserts) == 0 && len(d.Deletes) == 0 {
		return nil, nil
	}
	return d, nil
}

// catalogMovedNodes marks every allocation with endpoints on a node that
// moved as changed (a scan of the services bucket: a node's address
// changes rarely).
func (b *batch) catalogMovedNodes() error {
	allocs := map[string]bool{}
	err := b.tx.Bucket(bucketServices).ForEach(func(k, v []byte) error {
		allocID, _, ok := parseServiceKey(k)
		if !ok {
			return fmt.Errorf("%w: services key %q", ErrCorruptState, k)
		}
		var e registry.Endpoint
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("%w: services key %q: %v", ErrCorruptState, k, err)
		}
		if b.movedNodes[e.NodeID] {
			allocs[allocID] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for allocID := range allocs {
		if b.catalog[allocID] == nil {
			// Not changed by the batch: before and after are what the
			// allocation holds (the services bucket's positions).
			a, err := b.alloc(allocID)
			if err != nil {
				return err
			}
			if a == nil {
				continue
			}
			b.catalogChanged(allocID, a.Endpoints, a.Endpoints)
		}
		b.catalog[allocID].moved = true
	}
	return nil
}

// CatalogSnapshot returns the whole registry catalog at the applied
// index, read in one transaction: what a server's registry.Holder starts
// from, and is rebuilt from after a snapshot restore.
func (s *Store) CatalogSnapshot() (*registry.Snapshot, error) {
	var (
		index uint64
		ins   []registry.Instance
	)
	err := s.view(func(tx *bolt.Tx) error {
		index = appliedIndex(tx)
		addrs := nodeAddresses{bucket: tx.Bucket(bucketNodes)}
		return tx.Bucket(bucketServices).ForEach(func(k, v []byte) error {
			allocID, n, ok := parseServiceKey(k)
			if !ok {
				return fmt.Errorf("%w: services key %q", ErrCorruptState, k)
			}
			var e registry.Endpoint
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: services key %q: %v", ErrCorruptState, k, err)
			}
			addr, err := addrs.of(e.NodeID)
			if err != nil {
				return err
			}
			if in := catalogInstance(allocID, n, e, addr); in.Validate() == nil {
				ins = append(ins, in)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return registry.NewSnapshot(index, ins)
}

// catalogInstance is endpoint n of an allocation as a catalog instance.
func catalogInstance(allocID string, n int, e registry.Endpoint, nodeAddr string) registry.Instance {
	in := e.Instance(instanceID(allocID, e.Service, n))
	if in.AllocID == "" {
		in.AllocID = allocID
	}
	in.NodeAddress = nodeAddr
	return in
}

func instanceID(allocID, service string, n int) string {
	return allocID + "/" + service + "/" + strconv.Itoa(n)
}

// parseServiceKey splits a services key (serviceKey) into its allocation
// ID and endpoint position.
func parseServiceKey(k []byte) (allocID string, n int, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", 0, false
	}
	rest := k[i+1:]
	j := bytes.LastIndexByte(rest, 0)
	if j < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(string(rest[j+1:]))
	if err != nil || n < 0 {
		return "", 0, false
	}
	return string(rest[:j]), n, true
}

func sameEndpoint(a, b registry.Endpoint) bool {
	return a.Service == b.Service && slices.Equal(a.Tags, b.Tags) && a.AllocID == b.AllocID && a.NodeID == b.NodeID &&
		a.NodeName == b.NodeName && a.Address == b.Address && a.Port == b.Port && a.Healthy == b.Healthy && a.Canary == b.Canary
}

// nodeAddresses reads nodes' registered addresses, once per node.
type nodeAddresses struct {
	bucket *bolt.Bucket
	seen   map[string]string
}

func (a *nodeAddresses) of(nodeID string) (string, error) {
	if addr, ok := a.seen[nodeID]; ok {
		return addr, nil
	}
	var rec structs.NodeRecord
	if nodeID != "" {
		if _, err := getJSON(a.bucket, []byte(nodeID), &rec); err != nil {
			return "", err
		}
	}
	if a.seen == nil {
		a.seen = map[string]string{}
	}
	a.seen[nodeID] = rec.Address
	return rec.Address, nil
}
