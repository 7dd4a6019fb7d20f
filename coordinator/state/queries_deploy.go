package state

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// Deployment returns a deployment, or nil.
func (s *Store) Deployment(id string) (*structs.Deployment, error) {
	return get[structs.Deployment](s, bucketDeployments, []byte(id))
}

// Deployments returns the deployments whose ID starts with prefix (all
// for ""), newest first.
func (s *Store) Deployments(prefix string) ([]*structs.Deployment, error) {
	return s.deployments(func(d *structs.Deployment) bool { return strings.HasPrefix(d.ID, prefix) })
}

// JobDeployments returns a job's deployments, newest first.
func (s *Store) JobDeployments(jobID string) ([]*structs.Deployment, error) {
	return s.deployments(func(d *structs.Deployment) bool { return d.JobID == jobID })
}

// RunningDeployments returns the deployments still running, oldest first:
// the ones a new leader's watcher resumes.
func (s *Store) RunningDeployments() ([]*structs.Deployment, error) {
	ds, err := s.deployments((*structs.Deployment).Active)
	slices.Reverse(ds)
	return ds, err
}

func (s *Store) deployments(keep func(*structs.Deployment) bool) ([]*structs.Deployment, error) {
	all, err := list[structs.Deployment](s, bucketDeployments, "deployment")
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, d := range all {
		if keep(d) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *structs.Deployment) int {
		return cmp.Or(cmp.Compare(b.CreateIndex, a.CreateIndex), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// WouldDeploy reports whether registering job as a new version would
// start a deployment (the rule JobRegister applies): a group rolls and
// the job runs nothing yet, or runs a version whose group job changes.
func (s *Store) WouldDeploy(job *spec.Job) (bool, error) {
	if len(rollingGroups(job)) == 0 {
		return false, nil
	}
	var need bool
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		need, _, err = runsReplacedVersion(tx, func(id string) (*structs.Alloc, error) { return getAlloc(tx, []byte(id)) }, job)
		return err
	})
	return need, err
}

// LatestDeployment returns a job's newest deployment, or nil.
func (s *Store) LatestDeployment(jobID string) (*structs.Deployment, error) {
	rec, err := s.Job(jobID)
	if err != nil || rec == nil || rec.LatestDeployment == "" {
		return nil, err
	}
	return s.Deployment(rec.LatestDeployment)
}

// JobVersionInfo returns what the state keeps about each version of a
// job, by version.
func (s *Store) JobVersionInfo(jobID string) (map[uint64]VersionInfo, error) {
	out := map[uint64]VersionInfo{}
	prefix := append([]byte(jobID), 0)
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketVersionInfo).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("%w: job version info key %q", ErrCorruptState, k)
			}
			var vi VersionInfo
			if err := json.Unmarshal(v, &vi); err != nil {
				return fmt.Errorf("%w: job version info %q: %v", ErrCorruptState, k, err)
			}
			out[binary.BigEndian.Uint64(k[len(prefix):])] = vi
		}
		return nil
	})
	return out, err
}

// LatestStable returns a job's newest stable version below before, and
// its spec; ok is false when there is none.
func (s *Store) LatestStable(jobID string, before uint64) (version uint64, job *spec.Job, ok bool, err error) {
	infos, err := s.JobVersionInfo(jobID)
	if err != nil {
		return 0, nil, false, err
	}
	for v, vi := range infos {
		if vi.Stable && v < before && (!ok || v > version) {
			version, ok = v, true
		}
	}
	if !ok {
		return 0, nil, false, nil
	}
	job, err = s.JobVersion(jobID, version)
	if err != nil || job == nil {
		return 0, nil, false, err
	}
	return version, job, true, nil
}
