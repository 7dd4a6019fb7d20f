package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/spec"
	"github.com/strata-run/strata/wasmhost"
)

// registrar takes jobs and modules: what the HTTP API's writes (and the
// Server's own methods) call, validated here and committed through Raft.
// A job's module references are pinned to digests before it is
// committed, so a job version is immutable.
type registrar struct {
	store *state.Store
	blobs *blobStore
	apply applyFunc
}

// ErrNotFound is returned for a job, evaluation, node, token or module
// that does not exist (the state's sentinel: its refusals wrap it too).
var ErrNotFound = state.ErrNotFound

// ErrModuleExists is returned when a module version is pushed again with
// different bytes: versions are immutable.
var ErrModuleExists = state.ErrModuleExists

func newEvalID() string { return fsutil.NewID() }

// registerJob validates a job, pins every module reference to a digest,
// and commits it with an evaluation when it changed (and a deployment
// when the new version changes what a group runs). With enforce, it is
// committed only if the job's modify index is still modifyIndex.
func (s *registrar) registerJob(job *spec.Job, enforce bool, modifyIndex uint64) (*structs.JobRegisterResponse, error) {
	digests, err := s.prepared(job)
	if err != nil {
		return nil, err
	}
	return s.commit(&state.JobRegister{Job: job, EnforceIndex: enforce, JobModifyIndex: modifyIndex, Modules: digests})
}

// prepare canonicalizes and validates a job and pins its modules.
func (s *registrar) prepare(job *spec.Job) error {
	_, err := s.prepared(job)
	return err
}

// prepared is prepare, returning the digests it resolved from module
// versions: the registration is refused if one was deleted meanwhile.
func (s *registrar) prepared(job *spec.Job) ([]string, error) {
	if job == nil {
		return nil, badRequest{errors.New("request has no Job")}
	}
	spec.Canonicalize(job)
	if err := spec.Validate(job); err != nil {
		return nil, badRequest{fmt.Errorf("invalid job: %w", err)}
	}
	digests, err := s.resolveModules(job)
	if err != nil {
		return nil, badRequest{err}
	}
	return digests, nil
}

// commit stamps a registration's time and IDs and commits it.
func (s *registrar) commit(c *state.JobRegister) (*structs.JobRegisterResponse, error) {
	c.SubmitTime, c.EvalID, c.DeploymentID = time.Now().UnixNano(), newEvalID(), newEvalID()
	res, idx, err := s.apply(c)
	if err != nil {
		return nil, err
	}
	r := res.(*state.JobRegisterResult)
	return &structs.JobRegisterResponse{JobID: c.Job.ID, Version: r.Version, Changed: r.Changed, EvalID: r.EvalID,
		DeploymentID: r.DeploymentID, Index: idx}, nil
}

// resolveModules fills ModuleDigest of every wasm task from the module
// registry and returns the digests it read from module versions; a
// reference to a module that was never pushed is an error.
func (s *registrar) resolveModules(job *spec.Job) ([]string, error) {
	var errs []error
	var fromVersions []string
	for _, g := range job.Groups {
		for _, t := range g.Tasks {
			if t.Driver != "wasm" {
				continue
			}
			name, version, digest, err := spec.ParseModuleRef(t.Config.Module)
			if err != nil {
				errs = append(errs, fmt.Errorf("group %q task %q: %w", g.Name, t.Name, err))
				continue
			}
			if digest == "" {
				m, err := s.store.Module(name, version)
				if err != nil {
					return nil, err
				}
				if m == nil {
					errs = append(errs, fmt.Errorf("group %q task %q: module %s@%s does not exist; push it first with `strata module push FILE -name %s -version %s`",
						g.Name, t.Name, name, version, name, version))
					continue
				}
				digest = m.Digest
				if !slices.Contains(fromVersions, digest) {
					fromVersions = append(fromVersions, digest)
				}
			} else if m, err := s.store.ModuleByDigest(digest); err != nil {
				return nil, err
			} else if m == nil && !s.blobs.Has(digest) {
				errs = append(errs, fmt.Errorf("group %q task %q: no module with digest %s has been pushed", g.Name, t.Name, digest))
				continue
			}
			t.Config.ModuleDigest = digest
		}
	}
	return fromVersions, errors.Join(errs...)
}

// pushModule validates and stores a module version. Versions are
// immutable: the same name@version with other bytes is refused.
func (s *registrar) pushModule(ctx context.Context, name, version string, b []byte) (*structs.Module, uint64, error) {
	return s.pushModuleFrom(ctx, name, version, bytes.NewReader(b))
}

// registerModule validates an ingested module (data: its bytes, mapped)
// and stores it: the blob under its digest, the version in the state.
func (s *registrar) registerModule(ctx context.Context, name, version string, u *upload, data []byte) (*structs.Module, uint64, error) {
	digest := u.digest
	if old, err := s.store.Module(name, version); err != nil {
		return nil, 0, err
	} else if old != nil && old.Digest != digest {
		return nil, 0, fmt.Errorf("%w: %s@%s is %s, the pushed file is %s; versions are immutable, push it as a new version",
			ErrModuleExists, name, version, old.Digest, digest)
	} else if old != nil {
		return old, s.store.Index(), nil
	}
	if err := wasmhost.Validate(ctx, data); err != nil {
		return nil, 0, badRequest{fmt.Errorf("%s@%s is not a module Strata can run: %w", name, version, err)}
	}
	// The blob is held from before it is written until this server's
	// state names it, so a blob collection in between keeps it.
	release := s.blobs.hold(digest)
	defer release()
	if err := s.blobs.adopt(u); err != nil {
		return nil, 0, err
	}
	m := structs.Module{Name: name, Version: version, Digest: digest, Size: u.size, PushTime: time.Now().UnixNano()}
	_, idx, err := s.apply(&state.ModuleRegister{Module: m})
	if err != nil {
		return nil, 0, err
	}
	waitApplied(s.store, idx, 10*time.Second)
	stored, err := s.store.Module(name, version)
	return stored, idx, err
}

// waitApplied waits (at most max) until this server's state has applied
// index: a write committed through the leader is then readable here.
func waitApplied(store *state.Store, index uint64, max time.Duration) {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	for {
		ch := store.Watch()
		if store.Index() >= index {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		}
	}
}

// deleteModule deletes a module version; the state refuses it while a
// stored job version uses it. Every server then deletes the blobs no
// module version names (blobGC).
func (s *registrar) deleteModule(name, version string) (uint64, error) {
	if err := spec.ValidModuleName(name); err != nil {
		return 0, badRequest{err}
	}
	if err := spec.ValidVersion(version); err != nil {
		return 0, badRequest{err}
	}
	_, idx, err := s.apply(&state.ModuleDelete{Name: name, Version: version})
	return idx, err
}

// stopJob stops a job, with the evaluation that stops its allocations;
// with purge it removes the job and its history (state.JobStop).
func (s *registrar) stopJob(id string, purge bool) (*structs.JobDeregisterResponse, error) {
	evalID := newEvalID()
	res, index, err := s.apply(&state.JobStop{JobID: id, EvalID: evalID, Purge: purge})
	if err != nil {
		return nil, err
	}
	out := &structs.JobDeregisterResponse{JobID: id, EvalID: evalID, Index: index}
	if r, ok := res.(*state.GCResult); ok {
		out.Purged = r
	}
	return out, nil
}

// scaleJob sets a group's count, as a new job version that changes
// nothing else: the state starts no deployment for a count-only change,
// so the scheduler scales in place. group "" is the job's only group. The
// version is registered only if the job has not changed since it was
// read.
func (s *registrar) scaleJob(id, group string, count int) (*structs.JobRegisterResponse, error) {
	switch {
	case count < 0:
		return nil, badRequest{fmt.Errorf("field Count %d: a group's count cannot be negative", count)}
	case count > spec.MaxCount:
		return nil, badRequest{fmt.Errorf("field Count %d: a group's count is at most %d", count, spec.MaxCount)}
	}
	rec, err := s.store.Job(id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	if rec.Stopped {
		return nil, badRequest{fmt.Errorf("job %q is stopped: run it again before scaling it", id)}
	}
	job, err := copyJob(rec.Job)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, g := range job.Groups {
		names = append(names, g.Name)
	}
	if group == "" {
		if len(job.Groups) != 1 {
			return nil, badRequest{fmt.Errorf("job %q has groups %s: name the one to scale", id, strings.Join(names, ", "))}
		}
		group = job.Groups[0].Name
	}
	g := job.Lookup(group)
	if g == nil {
		return nil, fmt.Errorf("job %q has no group %q (its groups: %s): %w", id, group, strings.Join(names, ", "), ErrNotFound)
	}
	if g.Count == count {
		return &structs.JobRegisterResponse{JobID: id, Version: rec.Version, Index: s.store.Index()}, nil
	}
	g.Count = count
	return s.registerJob(job, true, rec.ModifyIndex)
}

// copyJob is a deep copy of a stored job, through its JSON form.
func copyJob(j *spec.Job) (*spec.Job, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	var out spec.Job
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
