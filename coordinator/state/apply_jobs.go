package state

import (
	"encoding/binary"
	"fmt"
	"reflect"

	"github.com/strata-run/strata/coordinator/structs"
)

// apply registers the job: a new job is version 0; a job whose
// definition changed gets the next version; registering the same
// definition again changes nothing (no version, no evaluation) unless
// the job was stopped. Every version is kept (job_versions).
func (c *JobRegister) apply(b *batch) (any, error) {
	if c.Job == nil || c.Job.ID == "" {
		return nil, refuse("state: job register without a job")
	}
	jobs := b.tx.Bucket(bucketJobs)
	var rec structs.JobRecord
	exists, err := getJSON(jobs, []byte(c.Job.ID), &rec)
	if err != nil {
		return nil, err
	}
	if c.EnforceIndex {
		var at uint64
		if exists {
			at = rec.ModifyIndex
		}
		if at != c.JobModifyIndex {
			return nil, &refusal{fmt.Errorf("%w: job %q is at modify index %d, not %d: it changed since you looked (run `strata plan` again)", ErrIndexMismatch, c.Job.ID, at, c.JobModifyIndex)}
		}
	}
	if err := b.checkModules(c.Modules); err != nil {
		return nil, err
	}
	prevVersion := rec.Version
	res := &JobRegisterResult{}
	switch {
	case !exists:
		rec = structs.JobRecord{Job: c.Job, Version: 0, CreateIndex: b.index}
		res.Changed = true
	case rec.Stopped || !reflect.DeepEqual(rec.Job, c.Job):
		if !reflect.DeepEqual(rec.Job, c.Job) {
			rec.Version++
		}
		rec.Job, rec.Stopped = c.Job, false
		res.Changed = true
	}
	res.Version = rec.Version
	if !res.Changed {
		res.ModifyIndex = rec.ModifyIndex
		return res, nil
	}
	rec.SubmitTime, rec.ModifyIndex = c.SubmitTime, b.index
	if c.EvalID != "" {
		rec.LatestEvalID = c.EvalID
		res.EvalID = c.EvalID
		if err := b.eval(&structs.Eval{ID: c.EvalID, JobID: c.Job.ID, TriggeredBy: "job-register", Status: structs.EvalPending}); err != nil {
			return nil, err
		}
	}
	if err := putJSON(b.tx.Bucket(bucketJobVersions), jobVersionKey(c.Job.ID, rec.Version), c.Job); err != nil {
		return nil, err
	}
	var err2 error
	if !c.Job.IsTemplate() { // a periodic job is never placed: no deployment
		if res.DeploymentID, err2 = b.startDeployment(c, &rec, exists, prevVersion); err2 != nil {
			return nil, err2
		}
	}
	res.ModifyIndex = rec.ModifyIndex
	b.touchJob(c.Job.ID, rec)
	return res, putJSON(jobs, []byte(c.Job.ID), &rec)
}

// jobVersionKey is job ID \x00 big-endian version: a job's versions sort
// oldest first.
func jobVersionKey(id string, version uint64) []byte {
	k := make([]byte, len(id)+9)
	copy(k, id)
	binary.BigEndian.PutUint64(k[len(id)+1:], version)
	return k
}

// apply marks the job stopped, with the evaluation that stops its
// allocations; with Purge it removes the job and its history instead
// (see JobStop) and returns a *GCResult. A job that does not exist is
// refused.
func (c *JobStop) apply(b *batch) (any, error) {
	jobs := b.tx.Bucket(bucketJobs)
	var rec structs.JobRecord
	ok, err := getJSON(jobs, []byte(c.JobID), &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &refusal{fmt.Errorf("job %q: %w", c.JobID, ErrNotFound)}
	}
	if c.Purge {
		gone := rec
		gone.Stopped, gone.ModifyIndex = true, b.index
		b.touchJob(c.JobID, gone)
		res, err := b.purge(c.JobID)
		if err != nil {
			return nil, err
		}
		if c.EvalID != "" {
			err = b.eval(&structs.Eval{ID: c.EvalID, JobID: c.JobID, TriggeredBy: "job-deregister", Status: structs.EvalPending})
		}
		return res, err
	}
	rec.Stopped, rec.ModifyIndex = true, b.index
	b.touchJob(c.JobID, rec)
	if c.EvalID != "" {
		rec.LatestEvalID = c.EvalID
		if err := b.eval(&structs.Eval{ID: c.EvalID, JobID: c.JobID, TriggeredBy: "job-deregister", Status: structs.EvalPending}); err != nil {
			return nil, err
		}
	}
	return nil, putJSON(jobs, []byte(c.JobID), &rec)
}

// apply records a module version. Versions are immutable: the same
// version with the same digest again is a no-op, with another digest it
// is refused.
func (c *ModuleRegister) apply(b *batch) (any, error) {
	mods := b.tx.Bucket(bucketModules)
	key := []byte(c.Module.Name + "@" + c.Module.Version)
	var old structs.Module
	ok, err := getJSON(mods, key, &old)
	if err != nil {
		return nil, err
	}
	if ok {
		if old.Digest != c.Module.Digest {
			return nil, &refusal{fmt.Errorf("%w: %s@%s is %s; push a new version instead", ErrModuleExists, old.Name, old.Version, old.Digest)}
		}
		return nil, nil
	}
	m := c.Module
	m.CreateIndex = b.index
	return nil, putJSON(mods, key, &m)
}

// apply writes the evaluations; pending and blocked ones go to the
// leader's queue.
func (c *EvalUpsert) apply(b *batch) (any, error) {
	for _, e := range c.Evals {
		if e == nil || e.ID == "" {
			return nil, refuse("state: evaluation without an ID")
		}
	}
	for _, e := range c.Evals {
		if err := b.eval(e); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// apply stores the cluster CA unless one exists: the first one wins.
func (c *CASet) apply(b *batch) (any, error) {
	meta := b.tx.Bucket(bucketMeta)
	if meta.Get(keyCA) != nil {
		return nil, nil
	}
	return nil, putJSON(meta, keyCA, &c.CA)
}
