package state

import (
	"bytes"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/deploy"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// VersionInfo is what the state keeps about each job version beside its
// spec: when it was submitted and whether it is stable (its deployment
// succeeded, or it needed none and the version before it was stable).
type VersionInfo struct {
	SubmitTime int64 `json:"SubmitTime"`
	Stable     bool  `json:"Stable"`
}

// DeploymentPromote promotes the canaries of a running deployment's
// groups (every group with canaries when Groups is empty), with the
// evaluation that rolls the rest out. It is refused unless every canary
// of those groups is healthy.
type DeploymentPromote struct {
	ID     string        `json:"ID"`
	Groups []string      `json:"Groups,omitempty"`
	Time   int64         `json:"Time"`
	Eval   *structs.Eval `json:"Eval,omitempty"`
}

// DeploymentUpdate changes a running deployment's status (successful,
// failed) or only its description, with the evaluation that follows and,
// for a failure with auto_revert, the registration of the job's latest
// stable version in the same entry, so no leader change can leave a
// failed deployment unreverted.
type DeploymentUpdate struct {
	ID          string        `json:"ID"`
	Status      string        `json:"Status"`
	Description string        `json:"Description"`
	Time        int64         `json:"Time"`
	Eval        *structs.Eval `json:"Eval,omitempty"`
	Revert      *JobRegister  `json:"Revert,omitempty"`
}

// deployment returns a deployment for the batch to change: its latest
// copy in the batch, else the stored one; nil if there is none.
func (b *batch) deployment(id string) (*structs.Deployment, error) {
	if d := b.deployments[id]; d != nil {
		return d, nil
	}
	var d structs.Deployment
	ok, err := getJSON(b.tx.Bucket(bucketDeployments), []byte(id), &d)
	if !ok || err != nil {
		return nil, err
	}
	return &d, nil
}

// putDeployment writes d and records it in the batch's effects.
func (b *batch) putDeployment(d *structs.Deployment) error {
	d.ModifyIndex = b.index
	if b.deployments == nil {
		b.deployments = map[string]*structs.Deployment{}
	}
	b.deployments[d.ID] = d
	b.touchDeployment(d.ID)
	return putJSON(b.tx.Bucket(bucketDeployments), []byte(d.ID), d)
}

func (b *batch) versionInfo(jobID string, version uint64) (VersionInfo, bool, error) {
	var vi VersionInfo
	ok, err := getJSON(b.tx.Bucket(bucketVersionInfo), jobVersionKey(jobID, version), &vi)
	return vi, ok, err
}

func (b *batch) putVersionInfo(jobID string, version uint64, vi VersionInfo) error {
	return putJSON(b.tx.Bucket(bucketVersionInfo), jobVersionKey(jobID, version), &vi)
}

// startDeployment is JobRegister's part for deployments: a newer version
// cancels the job's running deployment, and starts its own when some
// group rolls (update.max_parallel > 0, not a batch job) and the job has
// nothing running yet or runs a version whose group the new one changes
// (spec.GroupNeedsReplace: a count-only change scales in place). It
// returns the new deployment's ID, or "", and records the version's
// stability: a version without a deployment is as stable as the one
// before it.
func (b *batch) startDeployment(c *JobRegister, rec *structs.JobRecord, existed bool, prevVersion uint64) (string, error) {
	if rec.LatestDeployment != "" {
		d, err := b.deployment(rec.LatestDeployment)
		if err != nil {
			return "", err
		}
		if d.Active() && d.JobVersion != rec.Version {
			d.Status, d.StatusDescription, d.ModifyTime = structs.DeploymentCancelled, deploy.DescCancelled, c.SubmitTime
			if err := b.putDeployment(d); err != nil {
				return "", err
			}
		}
	}
	groups := rollingGroups(c.Job)
	need := c.DeploymentID != "" && len(groups) > 0
	var replaced map[string]bool
	if need {
		var err error
		if need, replaced, err = runsReplacedVersion(b.tx, b.alloc, c.Job); err != nil {
			return "", err
		}
	}
	if !need {
		// Nothing to roll out: as stable as the version it moves from in
		// place, or as the stable version an automatic revert registers.
		stable := !existed || c.RevertOf != nil
		if existed && !stable {
			prev, _, err := b.versionInfo(c.Job.ID, prevVersion)
			if err != nil {
				return "", err
			}
			stable = prev.Stable
		}
		return "", b.putVersionInfo(c.Job.ID, rec.Version, VersionInfo{SubmitTime: c.SubmitTime, Stable: stable})
	}
	if err := b.putVersionInfo(c.Job.ID, rec.Version, VersionInfo{SubmitTime: c.SubmitTime}); err != nil {
		return "", err
	}
	d := &structs.Deployment{
		ID: c.DeploymentID, JobID: c.Job.ID, JobVersion: rec.Version,
		Status: structs.DeploymentRunning, StatusDescription: deploy.DescRunning,
		RevertOf: c.RevertOf, Groups: map[string]*structs.DeploymentGroup{},
		CreateTime: c.SubmitTime, ModifyTime: c.SubmitTime, CreateIndex: b.index,
	}
	for _, g := range groups {
		dg := structs.NewDeploymentGroup(g)
		if !replaced[g.Name] {
			dg.DesiredCanaries = 0 // canaries run beside a version they replace: here there is none
		}
		d.Groups[g.Name] = dg
	}
	rec.LatestDeployment = d.ID
	return d.ID, b.putDeployment(d)
}

// rollingGroups are the groups of job that a deployment drives.
func rollingGroups(job *spec.Job) []*spec.Group {
	if job.Type == spec.JobTypeBatch {
		return nil
	}
	var out []*spec.Group
	for _, g := range job.Groups {
		if g.Update != nil && g.Update.MaxParallel > 0 {
			out = append(out, g)
		}
	}
	return out
}

// runsReplacedVersion reports whether the new job version needs a
// deployment: the job runs nothing (a first version, or a job run again
// after a stop: its placements are tracked), or some live allocation runs
// a version whose group the new one changes; replaced names those groups.
func runsReplacedVersion(tx *bolt.Tx, alloc func(id string) (*structs.Alloc, error), job *spec.Job) (need bool, replaced map[string]bool, err error) {
	versions := map[uint64]map[string]bool{} // live versions and their groups
	prefix := append([]byte(job.ID), 0)
	c := tx.Bucket(bucketAllocsByJob).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		a, err := alloc(string(k[len(prefix):]))
		if err != nil {
			return false, nil, err
		}
		if a != nil && !a.Terminal() {
			if versions[a.JobVersion] == nil {
				versions[a.JobVersion] = map[string]bool{}
			}
			versions[a.JobVersion][a.Group] = true
		}
	}
	if len(versions) == 0 {
		return true, nil, nil
	}
	replaced = map[string]bool{}
	for v, groups := range versions {
		var old spec.Job
		ok, err := getJSON(tx.Bucket(bucketJobVersions), jobVersionKey(job.ID, v), &old)
		if err != nil {
			return false, nil, err
		}
		for _, g := range job.Groups {
			if groups[g.Name] && (!ok || spec.GroupNeedsReplace(old.Lookup(g.Name), g)) {
				replaced[g.Name] = true
			}
		}
	}
	return len(replaced) > 0, replaced, nil
}

// placed counts a plan's placements in their deployments: placed (and
// canaries) per group; the group's batch starts at the plan's time, and
// its progress deadline runs from its first placement.
func (b *batch) placed(place []*sched.Allocation, now int64) error {
	// Each deployment is written once per plan, not once per placement:
	// a plan places up to a whole job's count in one deployment.
	var changed []*structs.Deployment
	for _, p := range place {
		if p.DeploymentID == "" {
			continue
		}
		d, err := b.deployment(p.DeploymentID)
		if err != nil {
			return err
		}
		if !d.Active() || d.Groups[p.Group] == nil {
			continue
		}
		g := d.Groups[p.Group]
		g.PlacedAllocs++
		if p.Canary {
			g.PlacedCanaries = append(g.PlacedCanaries, p.ID)
		}
		g.LastBatchAt = now
		if g.RequireProgressBy == 0 {
			g.RequireProgressBy = now + g.ProgressDeadline
		}
		d.ModifyTime = now
		if !slices.Contains(changed, d) {
			changed = append(changed, d)
			if b.deployments == nil {
				b.deployments = map[string]*structs.Deployment{}
			}
			b.deployments[d.ID] = d // the next placement counts on this copy
		}
	}
	for _, d := range changed {
		if err := b.putDeployment(d); err != nil {
			return err
		}
	}
	return nil
}

// keptInPlace counts an allocation moved in place to its job's new
// version in that version's running deployment: it runs what the version
// runs already, so it is placed and, running, healthy (a revert to the
// version that still runs needs no new instance to complete).
func (b *batch) keptInPlace(a *structs.Alloc, now int64) error {
	var rec structs.JobRecord
	ok, err := getJSON(b.tx.Bucket(bucketJobs), []byte(a.JobID), &rec)
	if err != nil || !ok || rec.LatestDeployment == "" {
		return err
	}
	d, err := b.deployment(rec.LatestDeployment)
	if err != nil || d == nil || !d.Active() || d.JobVersion != a.JobVersion || d.Groups[a.Group] == nil {
		return err
	}
	g := d.Groups[a.Group]
	g.PlacedAllocs++
	if a.ClientStatus == sched.ClientRunning {
		g.HealthyAllocs++
		if now > 0 {
			g.RequireProgressBy = now + g.ProgressDeadline
		}
	}
	d.ModifyTime = max(d.ModifyTime, now)
	return b.putDeployment(d)
}

// reportHealth records an allocation's deployment health in its
// deployment's counters; a healthy one is progress, so the deadline
// moves.
func (b *batch) reportHealth(a *structs.Alloc, now int64) error {
	d, err := b.deployment(a.DeploymentID)
	if err != nil || d == nil || !d.Active() || d.Groups[a.Group] == nil {
		return err
	}
	g := d.Groups[a.Group]
	if now == 0 {
		now = a.HealthTime // an update without its proposer's time: the agent's
	}
	switch a.Health {
	case sched.HealthHealthy:
		g.HealthyAllocs++
		if a.Canary {
			g.HealthyCanaries++
		}
		g.RequireProgressBy = now + g.ProgressDeadline
	case sched.HealthUnhealthy:
		g.UnhealthyAllocs++
	}
	d.ModifyTime = now
	return b.putDeployment(d)
}

// apply promotes the canaries of the deployment's groups.
func (c *DeploymentPromote) apply(b *batch) (any, error) {
	d, err := b.deployment(c.ID)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, &refusal{fmt.Errorf("deployment %q: %w", c.ID, ErrNotFound)}
	}
	if !d.Active() {
		return nil, &refusal{fmt.Errorf("%w: deployment %s is %s", ErrDeploymentEnded, c.ID, d.Status)}
	}
	names := c.Groups
	if len(names) == 0 {
		for n, g := range d.Groups {
			if g.DesiredCanaries > 0 && !g.Promoted {
				names = append(names, n)
			}
		}
		slices.Sort(names)
	}
	if len(names) == 0 {
		return nil, refuse("deployment %s has no canaries to promote", c.ID)
	}
	for _, n := range names {
		g := d.Groups[n]
		switch {
		case g == nil:
			return nil, refuse("deployment %s has no group %q", c.ID, n)
		case g.DesiredCanaries == 0:
			return nil, refuse("group %q of deployment %s has no canaries", n, c.ID)
		case g.HealthyCanaries < g.DesiredCanaries:
			return nil, refuse("group %q of deployment %s has %d of %d canaries healthy: promote once they all are", n, c.ID, g.HealthyCanaries, g.DesiredCanaries)
		}
	}
	for _, n := range names {
		g := d.Groups[n]
		if g.Promoted {
			continue
		}
		g.Promoted = true
		g.RequireProgressBy = c.Time + g.ProgressDeadline
		for _, id := range g.PlacedCanaries {
			if err := b.promoteAlloc(id); err != nil {
				return nil, err
			}
		}
	}
	d.ModifyTime = c.Time
	if err := b.putDeployment(d); err != nil {
		return nil, err
	}
	if c.Eval != nil {
		return nil, b.eval(c.Eval)
	}
	return nil, nil
}

// promoteAlloc clears a promoted canary's flag: its agent re-registers
// its services with their usual tags.
func (b *batch) promoteAlloc(id string) error {
	a, err := b.alloc(id)
	if err != nil || a == nil || !a.Canary {
		return err
	}
	a.Canary, a.ModifyIndex = false, b.index
	if err := b.putAlloc(a); err != nil {
		return err
	}
	b.wrote(a)
	return nil
}

// apply changes a running deployment's status or description; a
// successful one makes its job version stable; a failure may carry the
// revert's registration.
func (c *DeploymentUpdate) apply(b *batch) (any, error) {
	d, err := b.deployment(c.ID)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, &refusal{fmt.Errorf("deployment %q: %w", c.ID, ErrNotFound)}
	}
	if !d.Active() {
		return nil, &refusal{fmt.Errorf("%w: deployment %s is %s", ErrDeploymentEnded, c.ID, d.Status)}
	}
	switch c.Status {
	case structs.DeploymentRunning, structs.DeploymentSuccessful, structs.DeploymentFailed:
	default:
		return nil, refuse("state: deployment %s: cannot set status %q", c.ID, c.Status)
	}
	if c.Revert != nil && c.Status != structs.DeploymentFailed {
		return nil, refuse("state: deployment %s: a revert comes with a failure only", c.ID)
	}
	d.Status, d.StatusDescription, d.ModifyTime = c.Status, c.Description, c.Time
	if err := b.putDeployment(d); err != nil {
		return nil, err
	}
	if c.Status == structs.DeploymentSuccessful {
		vi, _, err := b.versionInfo(d.JobID, d.JobVersion)
		if err != nil {
			return nil, err
		}
		vi.Stable = true
		if err := b.putVersionInfo(d.JobID, d.JobVersion, vi); err != nil {
			return nil, err
		}
	}
	if c.Eval != nil {
		if err := b.eval(c.Eval); err != nil {
			return nil, err
		}
	}
	if c.Revert != nil {
		return c.Revert.apply(b)
	}
	return nil, nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
