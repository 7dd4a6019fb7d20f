package coordinator

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/strata-run/strata/coordinator/deploy"
	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// deployOps are the operations on job versions and deployments that
// people start: plan (what a registration would do, committing nothing),
// revert, promote, fail. The watcher drives the rest.
type deployOps struct {
	store *state.Store
	jobs  *registrar
	apply applyFunc
	now   func() time.Time
}

// plan computes what registering job would do: the diff from the
// registered version (modules resolved, so a new module version shows
// with its digest), and the scheduler's dry run on the current state.
func (o *deployOps) plan(job *spec.Job) (*structs.JobPlanResponse, error) {
	if err := o.jobs.prepare(job); err != nil {
		return nil, err
	}
	rec, err := o.store.Job(job.ID)
	if err != nil {
		return nil, err
	}
	out := &structs.JobPlanResponse{Groups: map[string]*structs.PlanGroupSummary{}}
	req := &sched.Request{EvalID: "plan-" + job.ID, Job: job, Nodes: o.store.NodeStates()}
	if rec != nil {
		out.JobModifyIndex, out.Version, out.NewVersion = rec.ModifyIndex, rec.Version, rec.Version
		out.Diff = spec.Diff(rec.Job, job)
		if !reflect.DeepEqual(rec.Job, job) {
			out.NewVersion = rec.Version + 1
		}
		req.Versions = map[uint64]*spec.Job{rec.Version: rec.Job}
		allocs, err := o.store.JobAllocs(job.ID)
		if err != nil {
			return nil, err
		}
		for _, a := range allocs {
			c := a.Allocation
			req.Existing = append(req.Existing, &c)
			if c.JobVersion != rec.Version && !c.Terminal() && req.Versions[c.JobVersion] == nil {
				if req.Versions[c.JobVersion], err = o.store.JobVersion(job.ID, c.JobVersion); err != nil {
					return nil, err
				}
			}
		}
	}
	req.JobVersion = out.NewVersion
	if out.NewVersion != out.Version || rec == nil || rec.Stopped {
		if out.Deployment, err = o.store.WouldDeploy(job); err != nil {
			return nil, err
		}
	}
	if out.Deployment {
		req.Deployment = &sched.Deployment{ID: "plan", Active: true}
	} else if d, err := o.store.LatestDeployment(job.ID); err == nil && d != nil && d.JobVersion == out.NewVersion {
		req.Deployment = &sched.Deployment{ID: d.ID, Active: d.Active(), Groups: map[string]*sched.DeploymentGroup{}}
		for n, g := range d.Groups {
			req.Deployment.Groups[n] = &sched.DeploymentGroup{Promoted: g.Promoted, Hold: deploy.Hold(g, o.now().UnixNano())}
		}
	}
	p, err := sched.Schedule(req)
	if err != nil {
		return nil, badRequest{fmt.Errorf("planning job %q: %w", job.ID, err)}
	}
	summarize(out, job, req, p)
	return out, nil
}

// summarize counts the plan's changes per group.
func summarize(out *structs.JobPlanResponse, job *spec.Job, req *sched.Request, p *sched.Plan) {
	group := func(name string) *structs.PlanGroupSummary {
		if out.Groups[name] == nil {
			out.Groups[name] = &structs.PlanGroupSummary{}
		}
		return out.Groups[name]
	}
	for _, g := range job.Groups {
		group(g.Name)
	}
	changed := map[string]bool{}
	type slot struct {
		group string
		index int
	}
	outdated := map[slot]bool{}
	for _, a := range req.Existing {
		if !a.Terminal() && a.JobVersion != req.JobVersion {
			outdated[slot{a.Group, a.Index}] = true
		}
	}
	for _, a := range p.Place {
		s := group(a.Group)
		s.Place++
		switch {
		case a.Canary:
			s.Canary++
		case outdated[slot{a.Group, a.Index}]:
			s.Replace++
		}
	}
	for _, a := range p.Stop {
		group(a.Group).Stop++
		changed[a.ID] = true
	}
	for _, a := range p.InPlace {
		group(a.Group).InPlace++
		changed[a.ID] = true
	}
	for _, a := range req.Existing {
		if a.Terminal() || changed[a.ID] {
			continue
		}
		g := job.Lookup(a.Group)
		if a.JobVersion != req.JobVersion && g != nil && (req.Versions[a.JobVersion] == nil || spec.GroupNeedsReplace(req.Versions[a.JobVersion].Lookup(a.Group), g)) {
			group(a.Group).Destructive++
			continue
		}
		group(a.Group).Ignore++
	}
	out.FailedTGAllocs = p.Failed
}

// revert registers an earlier version's spec again, as the job's new
// version (its modules pinned as they were, so it runs the same bytes).
// With enforcePrior, the job must still be at that version.
func (o *deployOps) revert(jobID string, version uint64, enforcePrior *uint64) (*structs.JobRegisterResponse, error) {
	rec, err := o.store.Job(jobID)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("job %q: %w", jobID, ErrNotFound)
	}
	if enforcePrior != nil && rec.Version != *enforcePrior {
		return nil, fmt.Errorf("%w: job %q is at version %d, not %d", state.ErrIndexMismatch, jobID, rec.Version, *enforcePrior)
	}
	if version == rec.Version {
		return nil, badRequest{fmt.Errorf("job %q is at version %d already: nothing to revert", jobID, version)}
	}
	old, err := o.store.JobVersion(jobID, version)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return nil, fmt.Errorf("job %q version %d: %w (see `strata job history %s`)", jobID, version, ErrNotFound, jobID)
	}
	return o.jobs.commit(&state.JobRegister{Job: old})
}

// deployment finds a deployment by ID.
func (o *deployOps) deployment(id string) (*structs.Deployment, error) {
	d, err := o.store.Deployment(id)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("deployment %q: %w", id, ErrNotFound)
	}
	return d, nil
}

// promote promotes the canaries of groups (all when none are named).
func (o *deployOps) promote(id string, groups []string) (*structs.DeploymentUpdateResponse, error) {
	d, err := o.deployment(id)
	if err != nil {
		return nil, err
	}
	ev := newEval(d.JobID, "deployment-promotion")
	_, idx, err := o.apply(&state.DeploymentPromote{ID: id, Groups: groups, Time: o.now().UnixNano(), Eval: ev})
	if err != nil {
		return nil, err
	}
	return &structs.DeploymentUpdateResponse{DeploymentID: id, EvalID: ev.ID, Index: idx}, nil
}

// fail marks a running deployment failed; with auto_revert (and unless it
// is itself a revert) the job goes back to its latest stable version.
func (o *deployOps) fail(id string) (*structs.DeploymentUpdateResponse, error) {
	d, err := o.deployment(id)
	if err != nil {
		return nil, err
	}
	if !d.Active() {
		return nil, fmt.Errorf("%w: deployment %s is %s", state.ErrDeploymentEnded, id, d.Status)
	}
	now := o.now()
	cmd := &state.DeploymentUpdate{ID: id, Status: structs.DeploymentFailed, Description: deploy.DescFailedByUser,
		Time: now.UnixNano(), Eval: newEval(d.JobID, "deployment-watcher")}
	autoRevert := false
	for _, g := range d.Groups {
		autoRevert = autoRevert || g.AutoRevert
	}
	out := &structs.DeploymentUpdateResponse{DeploymentID: id, EvalID: cmd.Eval.ID}
	if autoRevert && d.RevertOf == nil {
		v, err := revertCommand(o.store, cmd, d, now)
		if err != nil {
			return nil, err
		}
		out.RevertedJobVersion = v
	}
	_, out.Index, err = o.apply(cmd)
	return out, err
}

// revertCommand adds to a failure the registration of the job's latest
// stable version before the failed one, as a new version, and says so in
// its description. It returns the version reverted to, nil when there is
// no stable version.
func revertCommand(store *state.Store, cmd *state.DeploymentUpdate, d *structs.Deployment, now time.Time) (*uint64, error) {
	v, job, ok, err := store.LatestStable(d.JobID, d.JobVersion)
	if err != nil {
		return nil, err
	}
	if !ok {
		cmd.Description += " - " + deploy.DescNoStable
		return nil, nil
	}
	failed := d.JobVersion
	cmd.Description += deploy.RollingBack(v)
	cmd.Revert = &state.JobRegister{Job: job, SubmitTime: now.UnixNano(), EvalID: newEvalID(),
		DeploymentID: newEvalID(), RevertOf: &failed}
	return &v, nil
}

var errNoDeployment = errors.New("coordinator: job has no deployment")
