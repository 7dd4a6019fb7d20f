package deploy

import (
	"slices"
	"strconv"

	"github.com/strata-run/strata/coordinator/structs"
)

// Status descriptions, Nomad's words.
const (
	DescRunning          = "Deployment is running"
	DescNeedsPromotion   = "Deployment is running but requires manual promotion"
	DescSuccessful       = "Deployment completed successfully"
	DescUnhealthy        = "Failed due to unhealthy allocations"
	DescProgressDeadline = "Failed due to progress deadline"
	DescCancelled        = "Cancelled due to newer version of job"
	DescFailedByUser     = "Deployment marked as failed"
	DescNoStable         = "no stable job version to roll back to"
)

// RollingBack is the suffix of a failure that reverts the job.
func RollingBack(version uint64) string {
	return " - rolling back to job version " + strconv.FormatUint(version, 10)
}

// Decision is what the watcher must do with a deployment now.
type Decision struct {
	// Status, when set, ends the deployment (successful or failed) with
	// Description. Description alone updates a running deployment's.
	Status      string
	Description string
	// Revert: the job goes back to its latest stable version (the
	// deployment failed, a group has auto_revert, and it is not itself
	// the deployment of a revert).
	Revert bool
	// Promote lists the groups whose canaries are promoted now.
	Promote []string
	// Evaluate: the job needs an evaluation (stop what healthy
	// replacements replaced, start the next batch).
	Evaluate bool
	// WakeAt is when to step the deployment again although nothing was
	// reported (unix nanoseconds): its earliest progress deadline or end
	// of stagger still ahead. 0: only on the next report.
	WakeAt int64
}

// Step decides what to do with d at now (unix nanoseconds).
func Step(d *structs.Deployment, now int64) Decision {
	if !d.Active() {
		return Decision{}
	}
	names := groupNames(d)
	if fail, why := failure(d, names, now); fail {
		dec := Decision{Status: structs.DeploymentFailed, Description: why, Evaluate: true}
		dec.Revert = d.RevertOf == nil && slices.ContainsFunc(names, func(n string) bool { return d.Groups[n].AutoRevert })
		return dec
	}
	dec := Decision{Evaluate: true, Promote: autoPromote(d, names)}
	done, waiting := true, false
	for _, n := range names {
		g := d.Groups[n]
		promoted := !needsPromotion(g) || slices.Contains(dec.Promote, n)
		if !promoted && g.HealthyCanaries >= g.DesiredCanaries {
			waiting = true
		}
		if !promoted || g.HealthyAllocs < g.DesiredTotal {
			done = false
		}
	}
	switch {
	case done:
		dec.Status, dec.Description = structs.DeploymentSuccessful, DescSuccessful
		return dec
	case waiting && d.StatusDescription != DescNeedsPromotion:
		dec.Description = DescNeedsPromotion
	case !waiting && d.StatusDescription == DescNeedsPromotion:
		dec.Description = DescRunning
	}
	dec.WakeAt = wakeAt(d, names, dec.Promote, now)
	return dec
}

// failure reports whether d failed by now, and why.
func failure(d *structs.Deployment, names []string, now int64) (bool, string) {
	for _, n := range names {
		if d.Groups[n].UnhealthyAllocs > 0 {
			return true, DescUnhealthy
		}
	}
	for _, n := range names {
		g := d.Groups[n]
		if g.RequireProgressBy > 0 && now >= g.RequireProgressBy && !awaitingPromotion(g) && g.HealthyAllocs < g.DesiredTotal {
			return true, DescProgressDeadline
		}
	}
	return false, ""
}

// needsPromotion: the group has canaries to promote before its rollout
// goes on. A group whose every instance already runs the new version
// without a canary placed (moved in place: a revert to the version that
// runs) has none.
func needsPromotion(g *structs.DeploymentGroup) bool {
	return g.DesiredCanaries > 0 && !g.Promoted && !(len(g.PlacedCanaries) == 0 && g.HealthyAllocs >= g.DesiredTotal)
}

// awaitingPromotion: every canary is healthy and a person must promote
// them; the progress deadline does not run out meanwhile.
func awaitingPromotion(g *structs.DeploymentGroup) bool {
	return needsPromotion(g) && g.HealthyCanaries >= g.DesiredCanaries
}

// autoPromote returns the groups to promote now: with auto_promote, once
// every unpromoted canary of every group is healthy (Nomad promotes all
// groups together).
func autoPromote(d *structs.Deployment, names []string) []string {
	var out []string
	for _, n := range names {
		g := d.Groups[n]
		if !needsPromotion(g) {
			continue
		}
		if !g.AutoPromote || g.HealthyCanaries < g.DesiredCanaries {
			return nil
		}
		out = append(out, n)
	}
	return out
}

// wakeAt is the earliest deadline or end of stagger after now; the
// groups being promoted count as promoted.
func wakeAt(d *structs.Deployment, names, promoting []string, now int64) int64 {
	var at int64
	earliest := func(t int64) {
		if t > now && (at == 0 || t < at) {
			at = t
		}
	}
	for _, n := range names {
		g := d.Groups[n]
		if !awaitingPromotion(g) || slices.Contains(promoting, n) {
			earliest(g.RequireProgressBy)
		}
		if g.LastBatchAt > 0 {
			earliest(g.LastBatchAt + g.Stagger)
		}
	}
	return at
}

// Hold reports whether group g's next batch must wait at now: its stagger
// has not passed since its last batch started.
func Hold(g *structs.DeploymentGroup, now int64) bool {
	return g != nil && g.LastBatchAt > 0 && now < g.LastBatchAt+g.Stagger
}

func groupNames(d *structs.Deployment) []string {
	names := make([]string, 0, len(d.Groups))
	for n := range d.Groups {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
