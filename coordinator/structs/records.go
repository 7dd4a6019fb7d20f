package structs

import (
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// JobRecord is a job as stored: its current version and life-cycle status.
type JobRecord struct {
	Job          *spec.Job `json:"Job"`
	Version      uint64    `json:"Version"`
	Stopped      bool      `json:"Stopped"`
	SubmitTime   int64     `json:"SubmitTime"` // unix nanoseconds, stamped by the proposer
	LatestEvalID string    `json:"LatestEvalID,omitempty"`
	// LatestDeployment is the ID of the job's newest deployment, if any.
	LatestDeployment string `json:"LatestDeployment,omitempty"`
	CreateIndex      uint64 `json:"CreateIndex"`
	ModifyIndex      uint64 `json:"ModifyIndex"`
	// PeriodicLast is a periodic job's last tick launched (or skipped),
	// unix seconds: the leader launches the ticks after it.
	PeriodicLast int64 `json:"PeriodicLast,omitempty"`
}

// Drain is a node drain in progress.
type Drain struct {
	Started  int64 `json:"Started"`            // unix nanoseconds
	Deadline int64 `json:"Deadline,omitempty"` // unix nanoseconds; 0: none
}

// Module is one immutable module version.
type Module struct {
	Name        string `json:"Name"`
	Version     string `json:"Version"`
	Digest      string `json:"Digest"`
	Size        int64  `json:"Size"`
	PushTime    int64  `json:"PushTime"`
	CreateIndex uint64 `json:"CreateIndex"`
}

// NodeRecord is a registered agent.
type NodeRecord struct {
	sched.Node
	// Drain is set while the node's allocations are being migrated off.
	Drain        *Drain `json:"Drain,omitempty"`
	LastRegister int64  `json:"LastRegister"`
	CreateIndex  uint64 `json:"CreateIndex"`
	ModifyIndex  uint64 `json:"ModifyIndex"`
}

// Alloc is an allocation with what its agent reported.
type Alloc struct {
	sched.Allocation
	Endpoints []registry.Endpoint `json:"Endpoints,omitempty"`
	// TaskStates is each task's state and recent events as its agent last
	// reported them (by task name).
	TaskStates map[string]*TaskState `json:"TaskStates,omitempty"`
	// UnknownSince is when the allocation's node was found disconnected
	// (unix nanoseconds); set while ClientStatus is "unknown".
	UnknownSince int64 `json:"UnknownSince,omitempty"`
}

// Eval statuses.
const (
	EvalPending  = "pending"
	EvalComplete = "complete"
	EvalBlocked  = "blocked" // some placements found no node; retried when capacity frees
)

// Eval is an evaluation: a request to reconcile one job.
type Eval struct {
	ID          string                        `json:"ID"`
	JobID       string                        `json:"JobID"`
	TriggeredBy string                        `json:"TriggeredBy"`
	Status      string                        `json:"Status"`
	Failed      map[string]*sched.Explanation `json:"FailedTGAllocs,omitempty"`
	// SnapshotIndex is the state index the scheduler planned at: a blocked
	// evaluation whose snapshot predates a capacity change retries at once.
	SnapshotIndex uint64 `json:"SnapshotIndex,omitempty"`
	// WaitUntil (unix nanoseconds) delays a pending evaluation: the
	// leader's broker holds it until then (a follow-up that reschedules
	// failed allocations after their delay).
	WaitUntil   int64  `json:"WaitUntil,omitempty"`
	CreateIndex uint64 `json:"CreateIndex"`
	ModifyIndex uint64 `json:"ModifyIndex"`
}

// TaskState is a task's state on its agent: pending, running or dead,
// whether it failed, its restarts, and its newest events (at most
// wire.MaxTaskEvents, oldest first). Times are unix nanoseconds.
type TaskState = wire.TaskState

// TaskEvent is one event of a task, with Nomad's event names (Received,
// Started, Terminated, Restarting, Not Restarting, Killed, Driver Failure).
type TaskEvent = wire.TaskEvent

// LogRequest asks for a task's stdout or stderr (see AllocLogs).
type LogRequest = wire.LogRequest
