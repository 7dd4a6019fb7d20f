package structs

import "github.com/strata-run/strata/spec"

// NotAppliedHeader is set ("true") on a 503 answering a write the server
// refused before proposing it (no leader known, not the leader): a client
// may send that write again, to this server or another.
const NotAppliedHeader = "X-Strata-Not-Applied"

// APIError is the body of every error response.
type APIError struct {
	Error string `json:"error"`
}

// JobListEntry is one row of GET /v1/jobs.
type JobListEntry struct {
	ID      string         `json:"ID"`
	Version uint64         `json:"Version"`
	Status  string         `json:"Status"`  // running, pending, dead
	Summary map[string]int `json:"Summary"` // client status -> count, non-stopped allocs
}

// JobRegisterResponse answers a job registration.
type JobRegisterResponse struct {
	JobID   string `json:"JobID"`
	Version uint64 `json:"Version"`
	Changed bool   `json:"Changed"`
	EvalID  string `json:"EvalID,omitempty"`
	// DeploymentID is the deployment the new version started, if any.
	DeploymentID string `json:"DeploymentID,omitempty"`
	Index        uint64 `json:"Index"`
}

// JobRegisterRequest is the body of PUT /v1/jobs.
type JobRegisterRequest struct {
	Job *spec.Job `json:"Job"`
	// EnforceIndex refuses the registration unless the job's modify index
	// is JobModifyIndex (0: the job must not exist): `strata run
	// -check-index` after `strata plan`.
	EnforceIndex   bool   `json:"EnforceIndex,omitempty"`
	JobModifyIndex uint64 `json:"JobModifyIndex,omitempty"`
}

// JobAllocsResponse is GET /v1/job/{id}/allocations: the allocations and
// the latest evaluation (whose FailedTGAllocs explain unplaced copies).
type JobAllocsResponse struct {
	Allocations []*Alloc `json:"Allocations"`
	LatestEval  *Eval    `json:"LatestEval,omitempty"`
	Stopped     bool     `json:"Stopped"`
	Version     uint64   `json:"Version"`
}

// DrainRequest is the body of PUT /v1/node/{id}/drain.
type DrainRequest struct {
	Enable   bool   `json:"Enable"`
	Deadline string `json:"Deadline,omitempty"` // Go duration; "" or "0": no deadline
}

// JoinToken is a stored join token. The secret is never stored, only its
// SHA-256 (SecretHash, not shown by the API).
type JoinToken struct {
	ID          string `json:"ID"`
	SecretHash  string `json:"SecretHash,omitempty"`
	Reusable    bool   `json:"Reusable"`
	Description string `json:"Description,omitempty"`
	CreateTime  int64  `json:"CreateTime"`           // unix nanoseconds
	ExpireTime  int64  `json:"ExpireTime,omitempty"` // unix nanoseconds; 0 = never
	Uses        int    `json:"Uses"`
	// LastNodeID is the node that last joined with the token.
	LastNodeID string `json:"LastNodeID,omitempty"`
}

// JoinTokenRequest asks for a new token.
type JoinTokenRequest struct {
	Reusable    bool   `json:"Reusable"`
	TTL         string `json:"TTL,omitempty"` // a duration, e.g. "24h"; "" = never expires
	Description string `json:"Description,omitempty"`
}

// NewJoinToken is a created token with its secret, shown once.
type NewJoinToken struct {
	JoinToken
	// Secret is "<id>.<secret>": what `strata agent -join-token` takes.
	Secret string `json:"Secret"`
	// Servers are the agent (QUIC) addresses an agent can dial.
	Servers []string `json:"Servers"`
	// CAPin is the cluster CA pin the agent must use.
	CAPin string `json:"CAPin"`
}

// HeartbeatStats is what a leader saw of the agents' heartbeats, over
// every term it led since the server started.
type HeartbeatStats struct {
	// Beats counts heartbeats that re-armed a node's deadline.
	Beats uint64 `json:"Beats"`
	// NodesDown counts nodes marked down for missing their deadline.
	NodesDown uint64 `json:"NodesDown"`
	// MinMarginMillis is the least time that was left before a node's
	// deadline when its next heartbeat arrived; negative means one came
	// late (after its node was due to be marked down).
	MinMarginMillis int64 `json:"MinMarginMillis"`
	// TTLMillis is the TTL agents are currently given, GraceMillis what is
	// added to it before a node is marked down.
	TTLMillis   int64 `json:"TTLMillis"`
	GraceMillis int64 `json:"GraceMillis"`
}

// Peer is one server of the Raft configuration.
type Peer struct {
	ID      string `json:"ID"`
	Address string `json:"Address"`
	Voter   bool   `json:"Voter"`
	Leader  bool   `json:"Leader"`
}

// PeriodicForceResponse answers PUT /v1/job/{id}/periodic/force: the
// child launched and its evaluation (Launched false: a child of this
// second exists already).
type PeriodicForceResponse struct {
	JobID    string `json:"JobID"`
	Launched bool   `json:"Launched"`
	EvalID   string `json:"EvalID,omitempty"`
	Index    uint64 `json:"Index"`
}

// JobDispatchRequest is the body of POST /v1/job/{id}/dispatch (Nomad's):
// the payload (base64 in JSON) and meta of the child.
type JobDispatchRequest struct {
	Payload []byte            `json:"Payload,omitempty"`
	Meta    map[string]string `json:"Meta,omitempty"`
}

// JobDispatchResponse answers a dispatch: the child job and its
// evaluation.
type JobDispatchResponse struct {
	DispatchedJobID string `json:"DispatchedJobID"`
	EvalID          string `json:"EvalID"`
	Index           uint64 `json:"Index"`
}
