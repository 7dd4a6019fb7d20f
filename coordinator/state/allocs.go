package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
)

// Alloc returns an allocation, or nil.
func (s *Store) Alloc(id string) (*structs.Alloc, error) {
	var a *structs.Alloc
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		a, err = getAlloc(tx, []byte(id))
		return err
	})
	return a, err
}

// AllocsByPrefix returns the allocations whose ID starts with prefix
// (every one for ""), or, if none does, those whose ID ends with it,
// sorted by ID. Allocation IDs are time-ordered, so allocations created
// in the same minute share their first characters; the CLI shows and
// people type the last ones, which are random.
func (s *Store) AllocsByPrefix(prefix string) ([]*structs.Alloc, error) {
	var out []*structs.Alloc
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAllocs).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			a, err := decodeAllocRecord(v)
			if err != nil {
				return fmt.Errorf("%w: allocation %q: %v", ErrCorruptState, k, err)
			}
			out = append(out, a)
		}
		if len(out) > 0 || prefix == "" {
			return nil
		}
		for _, id := range s.usage.allocsWithSuffix(prefix) {
			a, err := getAlloc(tx, []byte(id))
			if err != nil {
				return err
			}
			if a != nil {
				out = append(out, a)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

func getAlloc(tx *bolt.Tx, id []byte) (*structs.Alloc, error) {
	raw := tx.Bucket(bucketAllocs).Get(id)
	if raw == nil {
		return nil, nil
	}
	a, err := decodeAllocRecord(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: allocation %q: %v", ErrCorruptState, id, err)
	}
	return a, nil
}

// JobAllocs returns a job's allocations sorted by name then creation.
func (s *Store) JobAllocs(jobID string) ([]*structs.Alloc, error) {
	var out []*structs.Alloc
	prefix := append([]byte(jobID), 0)
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAllocsByJob).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			a, err := getAlloc(tx, k[len(prefix):])
			if err != nil {
				return err
			}
			if a == nil {
				return fmt.Errorf("%w: index %s lists missing allocation %q", ErrCorruptState, bucketAllocsByJob, k[len(prefix):])
			}
			out = append(out, a)
		}
		return nil
	})
	sortAllocs(out)
	return out, err
}

// NodeAllocs returns a node's allocations (listed by the in-memory
// index, which holds committed allocations only; one that garbage
// collection deleted since the index was read is skipped).
func (s *Store) NodeAllocs(nodeID string) ([]*structs.Alloc, error) {
	ids := s.usage.nodeAllocs(nodeID)
	out := make([]*structs.Alloc, 0, len(ids))
	err := s.view(func(tx *bolt.Tx) error {
		for _, id := range ids {
			a, err := getAlloc(tx, []byte(id))
			if err != nil {
				return err
			}
			if a != nil {
				out = append(out, a)
			}
		}
		return nil
	})
	sortAllocs(out)
	return out, err
}

func sortAllocs(as []*structs.Alloc) {
	sort.Slice(as, func(i, j int) bool {
		if as[i].Name != as[j].Name {
			return as[i].Name < as[j].Name
		}
		return as[i].CreateIndex < as[j].CreateIndex
	})
}

// Endpoints implements registry.Catalog: every endpoint of service, in
// a stable order; service names match case-insensitively.
func (s *Store) Endpoints(service string) []registry.Endpoint {
	var out []registry.Endpoint
	prefix := append([]byte(strings.ToLower(service)), 0)
	s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketServices).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e registry.Endpoint
			if json.Unmarshal(v, &e) == nil {
				out = append(out, e)
			}
		}
		return nil
	})
	return out
}

// Services returns every service name with its endpoint count.
func (s *Store) Services() map[string]int {
	out := map[string]int{}
	s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketServices).ForEach(func(k, _ []byte) error {
			if i := bytes.IndexByte(k, 0); i > 0 {
				out[string(k[:i])]++
			}
			return nil
		})
	})
	return out
}

var _ registry.Catalog = (*Store)(nil)
