package coordinator

import "github.com/strata-run/strata/coordinator/structs"

// Transitional: the records moved to package structs.
type (
	JobRecord           = structs.JobRecord
	Drain               = structs.Drain
	Module              = structs.Module
	NodeRecord          = structs.NodeRecord
	Alloc               = structs.Alloc
	Eval                = structs.Eval
	TaskState           = structs.TaskState
	TaskEvent           = structs.TaskEvent
	LogRequest          = structs.LogRequest
	APIError            = structs.APIError
	JobListEntry        = structs.JobListEntry
	JobRegisterResponse = structs.JobRegisterResponse
	JobRegisterRequest  = structs.JobRegisterRequest
	JobAllocsResponse   = structs.JobAllocsResponse
	DrainRequest        = structs.DrainRequest
	JoinToken           = structs.JoinToken
	JoinTokenRequest    = structs.JoinTokenRequest
	NewJoinToken        = structs.NewJoinToken
	HeartbeatStats      = structs.HeartbeatStats
	Peer                = structs.Peer
)

const (
	EvalPending  = structs.EvalPending
	EvalComplete = structs.EvalComplete
	EvalBlocked  = structs.EvalBlocked
)
