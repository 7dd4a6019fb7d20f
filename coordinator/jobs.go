package coordinator

import (
	"context"
	"errors"
	"fmt"
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
	if err := s.prepare(job); err != nil {
		return nil, err
	}
	return s.commit(&state.JobRegister{Job: job, EnforceIndex: enforce, JobModifyIndex: modifyIndex})
}

// prepare canonicalizes and validates a job and pins its modules.
func (s *registrar) prepare(job *spec.Job) error {
	if job == nil {
		return badRequest{errors.New("request has no Job")}
	}
	spec.Canonicalize(job)
	if err := spec.Validate(job); err != nil {
		return badRequest{fmt.Errorf("invalid job: %w", err)}
	}
	if err := s.resolveModules(job); err != nil {
		return badRequest{err}
	}
	return nil
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
// registry; a reference to a module that was never pushed is an error.
func (s *registrar) resolveModules(job *spec.Job) error {
	var errs []error
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
					return err
				}
				if m == nil {
					errs = append(errs, fmt.Errorf("group %q task %q: module %s@%s does not exist; push it first with `strata module push FILE -name %s -version %s`",
						g.Name, t.Name, name, version, name, version))
					continue
				}
				digest = m.Digest
			} else if m, err := s.store.ModuleByDigest(digest); err != nil {
				return err
			} else if m == nil && !s.blobs.Has(digest) {
				errs = append(errs, fmt.Errorf("group %q task %q: no module with digest %s has been pushed", g.Name, t.Name, digest))
				continue
			}
			t.Config.ModuleDigest = digest
		}
	}
	return errors.Join(errs...)
}

// pushModule validates and stores a module version. Versions are
// immutable: the same name@version with other bytes is refused.
func (s *registrar) pushModule(ctx context.Context, name, version string, b []byte) (*structs.Module, uint64, error) {
	if err := spec.ValidModuleName(name); err != nil {
		return nil, 0, badRequest{err}
	}
	if err := spec.ValidVersion(version); err != nil {
		return nil, 0, badRequest{err}
	}
	digest := Digest(b)
	if old, err := s.store.Module(name, version); err != nil {
		return nil, 0, err
	} else if old != nil && old.Digest != digest {
		return nil, 0, fmt.Errorf("%w: %s@%s is %s, the pushed file is %s; versions are immutable, push it as a new version",
			ErrModuleExists, name, version, old.Digest, digest)
	} else if old != nil {
		return old, s.store.Index(), nil
	}
	if err := wasmhost.Validate(ctx, b); err != nil {
		return nil, 0, badRequest{fmt.Errorf("%s@%s is not a module Strata can run: %w", name, version, err)}
	}
	if _, err := s.blobs.Put(b); err != nil {
		return nil, 0, err
	}
	m := structs.Module{Name: name, Version: version, Digest: digest, Size: int64(len(b)), PushTime: time.Now().UnixNano()}
	_, idx, err := s.apply(&state.ModuleRegister{Module: m})
	if err != nil {
		return nil, 0, err
	}
	stored, err := s.store.Module(name, version)
	return stored, idx, err
}

// stopJob stops a job, with the evaluation that stops its allocations.
func (s *registrar) stopJob(id string) (evalID string, index uint64, err error) {
	evalID = newEvalID()
	_, index, err = s.apply(&state.JobStop{JobID: id, EvalID: evalID})
	return evalID, index, err
}
