package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// The operator's clean-up commands: a node's eligibility, deleting a
// module version, purging a job (JobStop.Purge) and the system's garbage
// collection. Everything they delete is history no other record needs:
// an allocation is deleted only once its agent reported it finished, a
// job version only once no such allocation runs it.

// NodeEligibility sets whether the scheduler may place allocations on a
// node. Making a draining node eligible is refused: the drain must end
// first (`node drain -disable`), as Nomad refuses it.
type NodeEligibility struct {
	NodeID   string `json:"NodeID"`
	Eligible bool   `json:"Eligible"`
}

// ModuleDelete removes a module version's record. It is refused while a
// stored job version references it: any version can be reverted to, so
// every stored one is in use until `system gc` trims it or `stop -purge`
// removes its job. The servers then delete blobs no module version names.
type ModuleDelete struct {
	Name    string `json:"Name"`
	Version string `json:"Version"`
}

// SystemGC collects the history nothing needs any more (Nomad's forced
// garbage collection, without its age thresholds):
//
//   - allocations their agent reported finished (complete, failed, lost)
//     that the scheduler no longer counts: stopped ones, those of an older
//     job version, and every one of a stopped or purged job. A finished
//     allocation of the current version that is still desired to run is
//     kept: a batch job's completions say what is done, a failure is the
//     history of its replacements;
//   - evaluations that are done (not pending or blocked), except each
//     job's latest;
//   - deployments that ended, except each job's latest and any of a
//     version an allocation still runs;
//   - stopped jobs with nothing left running and no evaluation to come;
//   - job versions beyond the newest KeepVersions, except the current
//     one, the latest stable one (what auto_revert goes back to) and any
//     an allocation that is not finished still runs.
type SystemGC struct {
	KeepVersions int `json:"KeepVersions"`
}

// GCResult counts what a SystemGC (or a purge) deleted.
type GCResult = structs.GCResult

// apply sets the node's eligibility; an unknown node is refused, and so
// is making a draining one eligible.
func (c *NodeEligibility) apply(b *batch) (any, error) {
	var rec structs.NodeRecord
	ok, err := getJSON(b.tx.Bucket(bucketNodes), []byte(c.NodeID), &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &refusal{fmt.Errorf("node %q: %w", c.NodeID, ErrNotFound)}
	}
	if c.Eligible && rec.Drain != nil {
		return nil, &refusal{fmt.Errorf("%w: node %s (%s) cannot be made eligible while it drains; end the drain with `strata node drain -disable %s`",
			ErrNodeDraining, rec.Name, short8(rec.ID), rec.Name)}
	}
	if err := b.updateNode(c.NodeID, func(r *structs.NodeRecord) { r.Eligible = c.Eligible }); err != nil {
		return nil, err
	}
	b.fx.Capacity = b.fx.Capacity || c.Eligible
	return nil, nil
}

// apply deletes the module version unless a stored job version
// references it (by name@version, or by its digest when no other module
// version has the same bytes).
func (c *ModuleDelete) apply(b *batch) (any, error) {
	mods := b.tx.Bucket(bucketModules)
	key := []byte(c.Name + "@" + c.Version)
	var m structs.Module
	ok, err := getJSON(mods, key, &m)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &refusal{fmt.Errorf("module %s@%s: %w", c.Name, c.Version, ErrNotFound)}
	}
	sameBytes := false
	err = mods.ForEach(func(k, v []byte) error {
		if bytes.Equal(k, key) {
			return nil
		}
		var o structs.Module
		if err := json.Unmarshal(v, &o); err != nil {
			return fmt.Errorf("%w: module %q: %v", ErrCorruptState, k, err)
		}
		sameBytes = sameBytes || o.Digest == m.Digest
		return nil
	})
	if err != nil {
		return nil, err
	}
	users, err := b.moduleUsers(string(key), m.Digest, sameBytes)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return nil, &refusal{fmt.Errorf("%w: %s@%s is used by job versions %s; stop and purge those jobs (`strata stop -purge JOB`) or trim old versions (`strata system gc`) first",
			ErrModuleInUse, c.Name, c.Version, strings.Join(users, ", "))}
	}
	b.fx.Modules = true
	return nil, mods.Delete(key)
}

// moduleUsers lists the stored job versions that reference a module
// version ("job@version", "(current)" marking a job's current version).
func (b *batch) moduleUsers(ref, digest string, sameBytes bool) ([]string, error) {
	current := map[string]uint64{}
	err := b.tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
		var rec structs.JobRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("%w: job %q: %v", ErrCorruptState, k, err)
		}
		current[string(k)] = rec.Version
		return nil
	})
	if err != nil {
		return nil, err
	}
	var users []string
	err = b.tx.Bucket(bucketJobVersions).ForEach(func(k, v []byte) error {
		id, version, ok := splitVersionKey(k)
		if !ok {
			return fmt.Errorf("%w: job version key %q", ErrCorruptState, k)
		}
		var j spec.Job
		if err := json.Unmarshal(v, &j); err != nil {
			return fmt.Errorf("%w: job version %q: %v", ErrCorruptState, k, err)
		}
		if !usesModule(&j, ref, digest, sameBytes) {
			return nil
		}
		u := fmt.Sprintf("%s@%d", id, version)
		if cur, ok := current[id]; ok && cur == version {
			u += " (current)"
		}
		users = append(users, u)
		return nil
	})
	return users, err
}

// usesModule reports whether a job's wasm tasks reference the module
// version ref ("name@version"), or its digest when no other module
// version keeps those bytes.
func usesModule(j *spec.Job, ref, digest string, sameBytes bool) bool {
	for _, g := range j.Groups {
		for _, t := range g.Tasks {
			if t.Driver != "wasm" {
				continue
			}
			if t.Config.Module == ref || (!sameBytes && t.Config.ModuleDigest == digest) {
				return true
			}
		}
	}
	return false
}

// splitVersionKey splits a job_versions or job_version_info key.
func splitVersionKey(k []byte) (id string, version uint64, ok bool) {
	if len(k) < 9 || k[len(k)-9] != 0 {
		return "", 0, false
	}
	return string(k[:len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:]), true
}

// checkModules refuses a registration whose resolved module digests no
// longer name a module version (one was deleted after it was resolved).
func (b *batch) checkModules(digests []string) error {
	if len(digests) == 0 {
		return nil
	}
	have := map[string]bool{}
	err := b.tx.Bucket(bucketModules).ForEach(func(k, v []byte) error {
		var m structs.Module
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("%w: module %q: %v", ErrCorruptState, k, err)
		}
		have[m.Digest] = true
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range digests {
		if !have[d] {
			return &refusal{fmt.Errorf("module %s: %w: it was deleted while the job was submitted", d, ErrNotFound)}
		}
	}
	return nil
}

// apply collects the history nothing needs (see SystemGC).
func (c *SystemGC) apply(b *batch) (any, error) {
	if c.KeepVersions < 1 {
		return nil, refuse("state: garbage collection must keep at least one version per job, not %d", c.KeepVersions)
	}
	g, err := b.newCollector()
	if err != nil {
		return nil, err
	}
	for _, rec := range g.jobs {
		if err := g.collectJob(rec.Job.ID, rec, c.KeepVersions); err != nil {
			return nil, err
		}
	}
	// Purged jobs: no record, maybe allocations still finishing.
	for _, id := range g.orphans() {
		if err := g.collectJob(id, nil, 0); err != nil {
			return nil, err
		}
	}
	b.fx.Modules = true // sweep blobs left by a push that failed half-way, too
	return &g.res, nil
}

// collector is one SystemGC or purge: the state it reads once, and what
// it deleted.
type collector struct {
	b    *batch
	jobs []*structs.JobRecord
	// allocs, evals and deployments by job ID.
	allocs      map[string][]*structs.Alloc
	evals       map[string][]*structs.Eval
	deployments map[string][]*structs.Deployment
	versions    map[string][]uint64 // stored versions by job, ascending
	res         GCResult
}

func (b *batch) newCollector() (*collector, error) {
	g := &collector{b: b, allocs: map[string][]*structs.Alloc{}, evals: map[string][]*structs.Eval{},
		deployments: map[string][]*structs.Deployment{}, versions: map[string][]uint64{}}
	tx := b.tx
	err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
		var rec structs.JobRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("%w: job %q: %v", ErrCorruptState, k, err)
		}
		g.jobs = append(g.jobs, &rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketAllocsByJob).ForEach(func(k, _ []byte) error {
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			return fmt.Errorf("%w: %s key %q", ErrCorruptState, bucketAllocsByJob, k)
		}
		a, err := b.alloc(string(k[i+1:]))
		if err != nil {
			return err
		}
		if a != nil {
			g.allocs[a.JobID] = append(g.allocs[a.JobID], a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketEvals).ForEach(func(k, v []byte) error {
		var e structs.Eval
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("%w: evaluation %q: %v", ErrCorruptState, k, err)
		}
		g.evals[e.JobID] = append(g.evals[e.JobID], &e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketDeployments).ForEach(func(k, _ []byte) error {
		d, err := b.deployment(string(k))
		if err != nil || d == nil {
			return err
		}
		g.deployments[d.JobID] = append(g.deployments[d.JobID], d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketJobVersions).ForEach(func(k, _ []byte) error {
		id, v, ok := splitVersionKey(k)
		if !ok {
			return fmt.Errorf("%w: job version key %q", ErrCorruptState, k)
		}
		g.versions[id] = append(g.versions[id], v)
		return nil
	})
	return g, err
}

// orphans are the job IDs with history but no job record (purged),
// sorted.
func (g *collector) orphans() []string {
	known := map[string]bool{}
	for _, rec := range g.jobs {
		known[rec.Job.ID] = true
	}
	seen := map[string]bool{}
	for _, m := range []map[string]int{lens(g.allocs), lens(g.evals), lens(g.deployments), lens(g.versions)} {
		for id := range m {
			if !known[id] {
				seen[id] = true
			}
		}
	}
	return sortedKeys(seen)
}

func lens[V any](m map[string][]V) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

// collectable reports whether a finished allocation is history the
// scheduler no longer counts (rec nil: its job was purged).
func collectable(a *structs.Alloc, rec *structs.JobRecord) bool {
	if !clientTerminal(a.ClientStatus) {
		return false
	}
	return rec == nil || rec.Stopped || a.DesiredStatus != sched.DesiredRun || a.JobVersion != rec.Version
}

// collectJob collects one job's history; rec is nil for a purged job
// (then every finished allocation and ended deployment goes, and versions
// only finishing allocations run).
func (g *collector) collectJob(id string, rec *structs.JobRecord, keep int) error {
	b := g.b
	// Allocations, and the versions those left still run.
	running := map[uint64]bool{}
	left := 0
	for _, a := range g.allocs[id] {
		if collectable(a, rec) {
			if err := b.deleteAlloc(a); err != nil {
				return err
			}
			g.res.Allocs++
			continue
		}
		left++
		if !clientTerminal(a.ClientStatus) {
			running[a.JobVersion] = true
		}
	}
	waiting := false
	for _, e := range g.evals[id] {
		if e.Status == structs.EvalPending || e.Status == structs.EvalBlocked {
			waiting = true
		}
	}
	dead := rec == nil || (rec.Stopped && left == 0 && !waiting)
	// Evaluations.
	for _, e := range g.evals[id] {
		if e.Status == structs.EvalPending || e.Status == structs.EvalBlocked {
			continue
		}
		if rec != nil && !dead && e.ID == rec.LatestEvalID {
			continue
		}
		if err := b.tx.Bucket(bucketEvals).Delete([]byte(e.ID)); err != nil {
			return err
		}
		g.res.Evals++
	}
	// Versions.
	keepVersion := func(v uint64) bool { return running[v] }
	if rec != nil && !dead {
		stable, err := g.latestStable(id, rec.Version)
		if err != nil {
			return err
		}
		keepVersion = func(v uint64) bool {
			return running[v] || v == rec.Version || v+uint64(keep) > rec.Version || (stable != nil && v == *stable)
		}
	}
	kept := map[uint64]bool{}
	for _, v := range g.versions[id] {
		if keepVersion(v) {
			kept[v] = true
			continue
		}
		key := jobVersionKey(id, v)
		if err := b.tx.Bucket(bucketJobVersions).Delete(key); err != nil {
			return err
		}
		if err := b.tx.Bucket(bucketVersionInfo).Delete(key); err != nil {
			return err
		}
		g.res.Versions++
	}
	// Deployments.
	for _, d := range g.deployments[id] {
		if d.Active() && !dead {
			continue
		}
		if rec != nil && !dead && (d.ID == rec.LatestDeployment || kept[d.JobVersion] && running[d.JobVersion]) {
			continue
		}
		if err := b.deleteDeployment(d.ID); err != nil {
			return err
		}
		g.res.Deployments++
	}
	if rec != nil && dead {
		if err := b.tx.Bucket(bucketJobs).Delete([]byte(id)); err != nil {
			return err
		}
		g.res.Jobs++
	}
	return nil
}

// latestStable is a job's newest stable version below current, or nil.
func (g *collector) latestStable(id string, current uint64) (*uint64, error) {
	var best *uint64
	for _, v := range g.versions[id] {
		if v >= current {
			continue
		}
		vi, ok, err := g.b.versionInfo(id, v)
		if err != nil {
			return nil, err
		}
		if ok && vi.Stable {
			best = &v
		}
	}
	return best, nil
}

// deleteAlloc removes a finished allocation: its record, its place in the
// by-job index and, once the batch commits, the in-memory views.
func (b *batch) deleteAlloc(a *structs.Alloc) error {
	if err := b.setEndpoints(a.ID, a.Endpoints, nil); err != nil {
		return err
	}
	if err := b.tx.Bucket(bucketAllocs).Delete([]byte(a.ID)); err != nil {
		return err
	}
	key := append(append([]byte(a.JobID), 0), a.ID...)
	if err := b.tx.Bucket(bucketAllocsByJob).Delete(key); err != nil {
		return err
	}
	delete(b.pending, a.ID)
	if b.dropped == nil {
		b.dropped = map[string]bool{}
	}
	b.dropped[a.ID] = true
	d := b.delta(a.NodeID)
	d.delAllocs = append(d.delAllocs, a.ID)
	d.allocWritten = true // the agent's next set lacks it: it forgets its states
	return nil
}

// deleteDeployment removes a deployment record.
func (b *batch) deleteDeployment(id string) error {
	delete(b.deployments, id)
	return b.tx.Bucket(bucketDeployments).Delete([]byte(id))
}

// purge is JobStop's Purge: the job's record, its versions and their
// information, its deployments, its finished allocations and its done
// evaluations go; allocations still running keep the versions they run
// (the evaluation written after stops them; `system gc` collects them
// once finished).
func (b *batch) purge(id string) (*GCResult, error) {
	g, err := b.newCollector()
	if err != nil {
		return nil, err
	}
	if err := b.tx.Bucket(bucketJobs).Delete([]byte(id)); err != nil {
		return nil, err
	}
	if err := g.collectJob(id, nil, 0); err != nil {
		return nil, err
	}
	return &g.res, nil
}

func short8(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// remove returns a new list without the IDs in drop.
func (l idList) remove(drop map[string]bool) idList {
	var out idList
	for _, id := range l.ids() {
		if !drop[id] {
			out = out.add(id)
		}
	}
	return out
}

// drop removes deleted allocations from the cache.
func (c *allocCache) drop(ids map[string]bool) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range ids {
		delete(c.m, id)
	}
	// Below its bound the cache appends again; the ring's oldest-first
	// order is only an eviction heuristic.
	c.order = slices.DeleteFunc(c.order, func(id string) bool { return ids[id] })
	c.next = 0
}
