package structs

import "github.com/strata-run/strata/internal/wire"

// The operator's API bodies: job summary and scaling, allocation
// lifecycle (stop, restart, signal, stats), node eligibility, server
// members, garbage collection. Names follow Nomad's API where it has the
// same operation.

// JobSummary is GET /v1/job/{id}/summary: each group's allocations by
// client status, and the copies the scheduler could not place yet
// (Queued), as Nomad's job summary.
type JobSummary struct {
	JobID       string                      `json:"JobID"`
	Summary     map[string]TaskGroupSummary `json:"Summary"`
	CreateIndex uint64                      `json:"CreateIndex"`
	ModifyIndex uint64                      `json:"ModifyIndex"`
}

// TaskGroupSummary counts one group's allocations by client status
// (pending ones are Starting), over every allocation the state keeps.
type TaskGroupSummary struct {
	Queued   int `json:"Queued"`
	Starting int `json:"Starting"`
	Running  int `json:"Running"`
	Failed   int `json:"Failed"`
	Complete int `json:"Complete"`
	Lost     int `json:"Lost"`
	Unknown  int `json:"Unknown"`
}

// JobScaleRequest is the body of POST /v1/job/{id}/scale: Nomad's
// scaling request, its Count and Target.Group ("" or absent: the job's
// only group). Nomad's other fields (Message, Meta, PolicyOverride) are
// refused.
type JobScaleRequest struct {
	Count  *int              `json:"Count"`
	Target map[string]string `json:"Target,omitempty"`
}

// JobDeregisterResponse answers DELETE /v1/job/{id}: the evaluation that
// stops the job's allocations and, with ?purge=true, what was removed.
type JobDeregisterResponse struct {
	JobID  string    `json:"JobID"`
	EvalID string    `json:"EvalID"`
	Index  uint64    `json:"Index"`
	Purged *GCResult `json:"Purged,omitempty"`
}

// GCResult counts what a garbage collection (PUT /v1/system/gc) or a
// purge removed.
type GCResult struct {
	Allocs      int `json:"Allocs"`
	Evals       int `json:"Evals"`
	Deployments int `json:"Deployments"`
	Jobs        int `json:"Jobs"`
	Versions    int `json:"Versions"`
}

// AllocStopResponse answers POST /v1/allocation/{id}/stop: the
// evaluation that places its replacement.
type AllocStopResponse struct {
	EvalID string `json:"EvalID"`
	Index  uint64 `json:"Index"`
}

// AllocSignalRequest is the body of POST
// /v1/client/allocation/{id}/signal (Nomad's): Task "" signals every
// task of the allocation.
type AllocSignalRequest struct {
	Signal string `json:"Signal"`
	Task   string `json:"Task,omitempty"`
}

// AllocRestartRequest is the body of POST
// /v1/client/allocation/{id}/restart (Nomad's): TaskName "" restarts
// every task that runs. Nomad's AllTasks (restart finished tasks too) is
// refused: an agent restarts running tasks only.
type AllocRestartRequest struct {
	TaskName string `json:"TaskName,omitempty"`
}

// AllocTasksResponse answers a signal or restart: the tasks it reached.
type AllocTasksResponse struct {
	Tasks []string `json:"Tasks"`
}

// TaskStats is a task's resource use as its driver measured it.
type TaskStats = wire.TaskStats

// What TaskStats.Measured may name.
const (
	MeasuredMemory    = wire.MeasuredMemory
	MeasuredCPU       = wire.MeasuredCPU
	MeasuredInstances = wire.MeasuredInstances
	MeasuredRequests  = wire.MeasuredRequests
)

// AllocStats is GET /v1/client/allocation/{id}/stats: each task's
// resource use (a task that is not running carries its Error).
type AllocStats struct {
	AllocID string      `json:"AllocID"`
	Tasks   []TaskStats `json:"Tasks"`
}

// NodeEligibilityRequest is the body of POST /v1/node/{id}/eligibility
// (Nomad's): "eligible" or "ineligible".
type NodeEligibilityRequest struct {
	Eligibility string `json:"Eligibility"`
}

// Node eligibilities (Nomad's words).
const (
	NodeEligible   = "eligible"
	NodeIneligible = "ineligible"
)

// ServerMember is one server of the Raft configuration as GET
// /v1/agent/members finds it: Status "alive" when it answered, "failed"
// when it did not (Error says why).
type ServerMember struct {
	ID        string `json:"ID"`
	RaftAddr  string `json:"RaftAddr"`
	HTTPAddr  string `json:"HTTPAddr,omitempty"`
	AgentAddr string `json:"AgentAddr,omitempty"`
	Status    string `json:"Status"`
	Leader    bool   `json:"Leader"`
	Voter     bool   `json:"Voter"`
	// LastIndex is the state index the server has applied, when it answered.
	LastIndex uint64 `json:"LastIndex,omitempty"`
	Error     string `json:"Error,omitempty"`
}

// Member statuses.
const (
	MemberAlive  = "alive"
	MemberFailed = "failed"
)

// ServerMembers is GET /v1/agent/members: the servers, from the one that
// answered (ServerID).
type ServerMembers struct {
	ServerID string         `json:"ServerID"`
	Members  []ServerMember `json:"Members"`
}
