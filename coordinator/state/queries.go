package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// Reads. Each opens its own read transaction (or reads the in-memory
// views); values returned are the caller's, except NodeStates and
// NodeState, which are shared and immutable.

// get reads one JSON record of a bucket, or nil.
func get[T any](s *Store, bucket, key []byte) (*T, error) {
	var out *T
	err := s.view(func(tx *bolt.Tx) error {
		var v T
		ok, err := getJSON(tx.Bucket(bucket), key, &v)
		if ok {
			out = &v
		}
		return err
	})
	return out, err
}

// list reads every JSON record of a bucket, in key order; what names the
// records in errors.
func list[T any](s *Store, bucket []byte, what string) ([]*T, error) {
	var out []*T
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var r T
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: %s %q: %v", ErrCorruptState, what, k, err)
			}
			out = append(out, &r)
			return nil
		})
	})
	return out, err
}

// Job returns a job record, or nil.
func (s *Store) Job(id string) (*structs.JobRecord, error) {
	return get[structs.JobRecord](s, bucketJobs, []byte(id))
}

// Jobs returns every job record sorted by ID.
func (s *Store) Jobs() ([]*structs.JobRecord, error) {
	return list[structs.JobRecord](s, bucketJobs, "job")
}

// JobVersions returns every stored version of a job, oldest first.
func (s *Store) JobVersions(id string) ([]*spec.Job, error) {
	var out []*spec.Job
	prefix := append([]byte(id), 0)
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobVersions).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var j spec.Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("%w: job version %q: %v", ErrCorruptState, k, err)
			}
			out = append(out, &j)
		}
		return nil
	})
	return out, err
}

// JobVersion returns one version of a job, or nil.
func (s *Store) JobVersion(id string, version uint64) (*spec.Job, error) {
	return get[spec.Job](s, bucketJobVersions, jobVersionKey(id, version))
}

// Module returns name@version, or nil.
func (s *Store) Module(name, version string) (*structs.Module, error) {
	return get[structs.Module](s, bucketModules, []byte(name+"@"+version))
}

// ModuleByDigest returns any module version with that digest, or nil.
func (s *Store) ModuleByDigest(digest string) (*structs.Module, error) {
	mods, err := s.Modules()
	for _, m := range mods {
		if m.Digest == digest {
			return m, err
		}
	}
	return nil, err
}

// Modules returns every module version, sorted by name then push order.
func (s *Store) Modules() ([]*structs.Module, error) {
	out, err := list[structs.Module](s, bucketModules, "module")
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].CreateIndex < out[j].CreateIndex
	})
	return out, err
}

// Node returns a node, or nil.
func (s *Store) Node(id string) (*structs.NodeRecord, error) {
	return get[structs.NodeRecord](s, bucketNodes, []byte(id))
}

// Nodes returns every node sorted by ID.
func (s *Store) Nodes() ([]*structs.NodeRecord, error) {
	return list[structs.NodeRecord](s, bucketNodes, "node")
}

// Eval returns an evaluation, or nil.
func (s *Store) Eval(id string) (*structs.Eval, error) {
	return get[structs.Eval](s, bucketEvals, []byte(id))
}

// Evals returns evaluations with the given status ("" = all), in creation
// order.
func (s *Store) Evals(status string) ([]*structs.Eval, error) {
	all, err := list[structs.Eval](s, bucketEvals, "eval")
	out := all[:0]
	for _, e := range all {
		if status == "" || e.Status == status {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out, err
}

// CA returns the cluster CA, or nil before a leader created it.
func (s *Store) CA() (*ClusterCA, error) {
	return get[ClusterCA](s, bucketMeta, keyCA)
}

// NodeStates returns every node with the resources and ports its
// non-terminal allocations hold: the scheduler's view of the cluster,
// from memory, sorted by node ID. The values are shared and immutable:
// copy before changing.
func (s *Store) NodeStates() []*sched.NodeState { return s.usage.snapshot() }

// NodeState returns one node's view, or nil (shared and immutable).
func (s *Store) NodeState(id string) *sched.NodeState { return s.usage.get(id) }

// NodeAllocChanges counts the committed batches that wrote allocations on
// a node (from memory; it restarts at 0 with the process).
func (s *Store) NodeAllocChanges(nodeID string) uint64 { return s.usage.allocChanges(nodeID) }

// NodeCount is the number of registered nodes (from memory).
func (s *Store) NodeCount() int { return s.usage.count() }

// LiveAllocs returns how many allocations hold resources (from memory).
func (s *Store) LiveAllocs() int { return s.usage.liveAllocs() }

// DrainingNodes returns the IDs of the nodes with a drain in progress,
// sorted (from memory).
func (s *Store) DrainingNodes() []string { return s.usage.drainingNodes() }
