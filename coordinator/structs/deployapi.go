package structs

import (
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// JobPlanRequest is the body of PUT /v1/job/{id}/plan: the job as it
// would be registered.
type JobPlanRequest struct {
	Job *spec.Job `json:"Job"`
}

// JobPlanResponse is what registering the job would do, computed on the
// server's current state without changing it.
type JobPlanResponse struct {
	// JobModifyIndex is the registered job's modify index (0: no such
	// job); `strata run -check-index` passes it back to refuse a stale
	// apply.
	JobModifyIndex uint64 `json:"JobModifyIndex"`
	// Version is the registered version; NewVersion the one the job would
	// become (the same when the job is unchanged).
	Version    uint64 `json:"Version"`
	NewVersion uint64 `json:"NewVersion"`
	// Diff lists the changed fields; module references are resolved, so a
	// new module version shows as a changed module and digest.
	Diff []spec.FieldDiff `json:"Diff,omitempty"`
	// Groups summarises, per group, what the scheduler would do.
	Groups map[string]*PlanGroupSummary `json:"Groups"`
	// FailedTGAllocs explains placements that would find no node.
	FailedTGAllocs map[string]*sched.Explanation `json:"FailedTGAllocs,omitempty"`
	// Deployment: the new version would start a deployment.
	Deployment bool `json:"Deployment"`
}

// PlanGroupSummary counts one group's planned changes (Nomad's
// DesiredUpdates).
type PlanGroupSummary struct {
	Place       int `json:"Place"`       // new allocations, replacements and canaries included
	Canary      int `json:"Canary"`      // of Place, canaries
	Replace     int `json:"Replace"`     // of Place, replacements of older-version allocations
	Destructive int `json:"Destructive"` // allocations the new version replaces, now or in later batches
	Stop        int `json:"Stop"`        // stopped by this evaluation
	InPlace     int `json:"InPlace"`     // moved to the new version without a restart
	Ignore      int `json:"Ignore"`      // unchanged
}

// JobVersion is one stored version of a job.
type JobVersion struct {
	Version uint64 `json:"Version"`
	// Stable: a deployment of this version completed successfully (or the
	// version needed none and was registered as is); auto_revert goes back
	// to the latest stable version.
	Stable     bool      `json:"Stable"`
	SubmitTime int64     `json:"SubmitTime"` // unix nanoseconds
	Job        *spec.Job `json:"Job"`
}

// JobVersionsResponse is GET /v1/job/{id}/versions, newest first. With
// ?diffs=true, Diffs[i] is the change from Versions[i+1] to Versions[i].
type JobVersionsResponse struct {
	Versions []*JobVersion      `json:"Versions"`
	Diffs    [][]spec.FieldDiff `json:"Diffs,omitempty"`
}

// JobRevertRequest is the body of PUT /v1/job/{id}/revert: register
// version JobVersion's spec again, as a new version. With
// EnforcePriorVersion the revert is refused unless the job is at that
// version.
type JobRevertRequest struct {
	JobVersion          uint64  `json:"JobVersion"`
	EnforcePriorVersion *uint64 `json:"EnforcePriorVersion,omitempty"`
}

// DeploymentPromoteRequest is the body of PUT /v1/deployment/promote/{id}:
// promote the canaries of the named groups, or of every group with All.
type DeploymentPromoteRequest struct {
	Groups []string `json:"Groups,omitempty"`
	All    bool     `json:"All,omitempty"`
}

// DeploymentUpdateResponse answers a promotion or a failure.
type DeploymentUpdateResponse struct {
	DeploymentID string `json:"DeploymentID"`
	EvalID       string `json:"EvalID,omitempty"`
	// RevertedJobVersion is set when failing the deployment reverted the
	// job: the version it went back to.
	RevertedJobVersion *uint64 `json:"RevertedJobVersion,omitempty"`
	Index              uint64  `json:"Index"`
}
