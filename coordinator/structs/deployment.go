package structs

import "github.com/strata-run/strata/spec"

// Deployment statuses (Nomad's).
const (
	DeploymentRunning    = "running"
	DeploymentSuccessful = "successful"
	DeploymentFailed     = "failed"
	DeploymentCancelled  = "cancelled"
)

// Deployment is the roll-out of one job version: created with the job
// version that changes what a group runs (or with a job's first version),
// driven by the leader's deployment watcher, ended successful, failed or
// cancelled (by a newer version of the job). Its counters are kept by the
// state machine as allocations are placed and report their health, so the
// watcher reads one record per report, never the job's allocations.
type Deployment struct {
	ID         string `json:"ID"`
	JobID      string `json:"JobID"`
	JobVersion uint64 `json:"JobVersion"`
	Status     string `json:"Status"`
	// StatusDescription says why, for people: "Deployment completed
	// successfully", "Failed due to unhealthy allocations - rolling back to
	// job version 3", ...
	StatusDescription string `json:"StatusDescription"`
	// RevertOf is set on the deployment of a version registered by an
	// automatic revert: the version that failed. Such a deployment is
	// never reverted again.
	RevertOf *uint64                     `json:"RevertOf,omitempty"`
	Groups   map[string]*DeploymentGroup `json:"TaskGroups"`
	// CreateTime and ModifyTime are unix nanoseconds stamped by the proposer.
	CreateTime  int64  `json:"CreateTime"`
	ModifyTime  int64  `json:"ModifyTime"`
	CreateIndex uint64 `json:"CreateIndex"`
	ModifyIndex uint64 `json:"ModifyIndex"`
}

// Active reports whether the deployment still drives its job.
func (d *Deployment) Active() bool { return d != nil && d.Status == DeploymentRunning }

// DeploymentGroup is one group's part of a deployment, Nomad's
// DeploymentState.
type DeploymentGroup struct {
	AutoRevert      bool `json:"AutoRevert"`
	AutoPromote     bool `json:"AutoPromote"`
	Promoted        bool `json:"Promoted"`
	DesiredCanaries int  `json:"DesiredCanaries"`
	DesiredTotal    int  `json:"DesiredTotal"`
	// PlacedCanaries are the canary allocations placed, by ID.
	PlacedCanaries  []string `json:"PlacedCanaries,omitempty"`
	PlacedAllocs    int      `json:"PlacedAllocs"`
	HealthyAllocs   int      `json:"HealthyAllocs"`
	UnhealthyAllocs int      `json:"UnhealthyAllocs"`
	HealthyCanaries int      `json:"HealthyCanaries"`
	// ProgressDeadline and Stagger are the group's update settings
	// (nanoseconds), kept so the watcher needs no job.
	ProgressDeadline int64 `json:"ProgressDeadline"`
	Stagger          int64 `json:"Stagger"`
	// RequireProgressBy is when the deployment fails unless one more
	// allocation becomes healthy (unix nanoseconds; 0 until the first
	// placement).
	RequireProgressBy int64 `json:"RequireProgressBy,omitempty"`
	// LastBatchAt is when the group's last batch of replacements was
	// placed (unix nanoseconds): the next may start Stagger later.
	LastBatchAt int64 `json:"LastBatchAt,omitempty"`
}

// NewDeploymentGroup is a group's deployment state for its update strategy.
func NewDeploymentGroup(g *spec.Group) *DeploymentGroup {
	d := &DeploymentGroup{DesiredTotal: g.Count}
	if u := g.Update; u != nil {
		d.AutoRevert, d.AutoPromote = u.AutoRevert, u.AutoPromote
		d.DesiredCanaries = u.Canary
		d.ProgressDeadline = int64(u.ProgressDeadline)
		d.Stagger = int64(u.Stagger)
	}
	return d
}
