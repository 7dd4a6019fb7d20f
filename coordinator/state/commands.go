package state

import (
	"encoding/json"
	"errors"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// CmdType is a command's type: the first byte of its Raft log entry,
// followed by its payload (JSON; a plan: the binary form of codec.go).
// Values are persisted in the log: never renumber.
type CmdType byte

// Command types.
const (
	CmdJobRegister       CmdType = 1
	CmdJobStop           CmdType = 2
	CmdModuleRegister    CmdType = 3
	CmdNodeRegister      CmdType = 4
	cmdPlanApplyJSON     CmdType = 5 // retired: plans are binary (CmdPlanApply)
	CmdAllocUpdate       CmdType = 6
	CmdEvalUpsert        CmdType = 7
	CmdNodeStatus        CmdType = 8
	CmdNodeDrain         CmdType = 9
	CmdCASet             CmdType = 10
	CmdTokenCreate       CmdType = 11
	CmdTokenUse          CmdType = 12
	CmdTokenRevoke       CmdType = 13
	CmdPlanApply         CmdType = 14
	CmdDeploymentPromote CmdType = 15
	CmdDeploymentUpdate  CmdType = 16
	CmdACLBootstrap      CmdType = 17
	CmdACLPolicySet      CmdType = 18
	CmdACLPolicyDel      CmdType = 19
	CmdACLTokenSet       CmdType = 20
	CmdACLTokenDel       CmdType = 21
	CmdNodeEligibility   CmdType = 22
	CmdModuleDelete      CmdType = 23
	CmdSystemGC          CmdType = 24
	CmdPeriodicLaunch    CmdType = 28
	CmdJobDispatch       CmdType = 29
)

// Command is a change to the state: one Raft log entry. Applying it must
// be deterministic, so the proposer stamps every ID and timestamp into
// the command; Apply reads nothing but the command and the state.
type Command interface {
	Type() CmdType
	// apply applies the command in batch b and returns its result for
	// the proposer. A *refusal error refuses the command: it must be
	// returned before anything is written. Any other error is a storage
	// failure and fails the whole batch.
	apply(b *batch) (any, error)
}

// commandTypes makes an empty command of each JSON-encoded type, for
// decoding.
var commandTypes = map[CmdType]func() Command{
	CmdJobRegister:       func() Command { return new(JobRegister) },
	CmdJobStop:           func() Command { return new(JobStop) },
	CmdModuleRegister:    func() Command { return new(ModuleRegister) },
	CmdNodeRegister:      func() Command { return new(NodeRegister) },
	CmdAllocUpdate:       func() Command { return new(AllocUpdate) },
	CmdEvalUpsert:        func() Command { return new(EvalUpsert) },
	CmdNodeStatus:        func() Command { return new(NodeStatus) },
	CmdNodeDrain:         func() Command { return new(NodeDrain) },
	CmdCASet:             func() Command { return new(CASet) },
	CmdTokenCreate:       func() Command { return new(TokenCreate) },
	CmdTokenUse:          func() Command { return new(TokenUse) },
	CmdTokenRevoke:       func() Command { return new(TokenRevoke) },
	CmdDeploymentPromote: func() Command { return new(DeploymentPromote) },
	CmdDeploymentUpdate:  func() Command { return new(DeploymentUpdate) },
	CmdACLBootstrap:      func() Command { return new(ACLBootstrap) },
	CmdACLPolicySet:      func() Command { return new(ACLPolicySet) },
	CmdACLPolicyDel:      func() Command { return new(ACLPolicyDelete) },
	CmdACLTokenSet:       func() Command { return new(ACLTokenCreate) },
	CmdACLTokenDel:       func() Command { return new(ACLTokenDelete) },
	CmdNodeEligibility:   func() Command { return new(NodeEligibility) },
	CmdModuleDelete:      func() Command { return new(ModuleDelete) },
	CmdSystemGC:          func() Command { return new(SystemGC) },
	CmdPeriodicLaunch:    func() Command { return new(PeriodicLaunch) },
	CmdJobDispatch:       func() Command { return new(JobDispatch) },
}

// Encode is a command as a Raft log entry's data: its type byte, then its
// payload. Data[1:] is what Payload returns.
func Encode(c Command) ([]byte, error) {
	if p, ok := c.(*PlanApply); ok {
		return appendPlanCmd([]byte{byte(CmdPlanApply)}, p)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(c.Type())}, payload...), nil
}

// decodeCommand decodes a log entry's data. An entry that does not
// decode is refused, naming its command type.
func decodeCommand(data []byte) (Command, error) {
	if len(data) == 0 {
		return nil, refuse("state: empty command")
	}
	t, payload := CmdType(data[0]), data[1:]
	switch t {
	case CmdPlanApply:
		c, err := decodePlanCmd(payload)
		if err != nil {
			return nil, refuse("state: malformed command %d: %v", t, err)
		}
		return c, nil
	case cmdPlanApplyJSON:
		return nil, refuse("state: command %d is a plan in the retired JSON encoding", t)
	}
	newCmd, ok := commandTypes[t]
	if !ok {
		return nil, refuse("state: unknown command type %d", t)
	}
	c := newCmd()
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, refuse("state: malformed command %d: %v", t, err)
	}
	return c, nil
}

// JobRegister registers a job version; EvalID names the evaluation
// created if the job changed.
type JobRegister struct {
	Job        *spec.Job `json:"Job"`
	SubmitTime int64     `json:"SubmitTime"`
	EvalID     string    `json:"EvalID"`
	// EnforceIndex refuses the registration unless the job's modify index
	// is JobModifyIndex (0: the job must not exist).
	EnforceIndex   bool   `json:"EnforceIndex,omitempty"`
	JobModifyIndex uint64 `json:"JobModifyIndex,omitempty"`
	// DeploymentID is the ID of the deployment this registration starts
	// if the new version needs one (stamped by the proposer).
	DeploymentID string `json:"DeploymentID,omitempty"`
	// RevertOf is set when the registration is the automatic revert of
	// that version's failed deployment.
	RevertOf *uint64 `json:"RevertOf,omitempty"`
	// Modules are the module digests the proposer resolved from module
	// versions: the registration is refused if one no longer names a
	// module version (deleted since it was resolved), so no job version
	// commits a module that `module delete` removed.
	Modules []string `json:"Modules,omitempty"`
}

// JobRegisterResult is JobRegister's result: the job's version, whether
// this registration changed it, and the evaluation created if it did.
type JobRegisterResult struct {
	Version uint64
	Changed bool
	EvalID  string
	// DeploymentID is the deployment the new version started, if any.
	DeploymentID string
	// ModifyIndex is the job's modify index after the registration.
	ModifyIndex uint64
}

// JobStop stops a job, with the evaluation that stops its allocations.
// With Purge the job is removed with its history (versions, deployments,
// finished allocations and evaluations); what still runs is stopped by
// the evaluation, and keeps the versions it runs until `system gc`
// collects it once finished.
type JobStop struct {
	JobID  string `json:"JobID"`
	EvalID string `json:"EvalID"`
	Purge  bool   `json:"Purge,omitempty"`
}

// ModuleRegister records a module version (pushed once, immutable).
type ModuleRegister struct {
	Module structs.Module `json:"Module"`
}

// NodeRegister writes a node as its agent registered it.
type NodeRegister struct {
	Node sched.Node `json:"Node"`
	Time int64      `json:"Time"`
}

// PlanApply commits a plan the applier checked: its stops, its
// placements (IDs stamped by the applier) and its evaluation's new status.
type PlanApply struct {
	Place []*sched.Allocation `json:"Place"`
	Stop  []AllocStop         `json:"Stop,omitempty"`
	// InPlace moves allocations to a new job version without a restart.
	InPlace []AllocMove   `json:"InPlace,omitempty"`
	Eval    *structs.Eval `json:"Eval"`
	// Time is when the applier proposed the plan (unix nanoseconds): a
	// deployment's batch starts then.
	Time int64 `json:"Time,omitempty"`
	// FollowUps are delayed evaluations of the plan's job that reschedule
	// failed allocations when due (sched.Plan.FollowUps).
	FollowUps []FollowUp `json:"FollowUps,omitempty"`

	// records, when the command was decoded, holds the placements'
	// records with Place[i] pointing at records[i].Allocation: applying
	// it stores them as they are instead of copying each one.
	records []structs.Alloc
}

// FollowUp is a delayed evaluation: pending, due at WaitUntil (unix
// nanoseconds), and the failed allocations it will reschedule, which
// are marked with its ID.
type FollowUp struct {
	EvalID    string   `json:"EvalID"`
	WaitUntil int64    `json:"WaitUntil"`
	AllocIDs  []string `json:"AllocIDs"`
}

// AllocMove moves one allocation to JobVersion in place.
type AllocMove struct {
	ID         string `json:"ID"`
	JobVersion uint64 `json:"JobVersion"`
}

// AllocStop stops one allocation, saying why.
type AllocStop struct {
	ID   string `json:"ID"`
	Desc string `json:"Desc"`
}

// AllocUpdate records what a node's agent reported about its allocations
// (or what the leader decided about them, for a lost node).
type AllocUpdate struct {
	NodeID  string         `json:"NodeID"`
	Time    int64          `json:"Time,omitempty"` // stamped by the proposer
	Updates []ClientUpdate `json:"Updates"`
}

// ClientUpdate is one allocation's client status.
type ClientUpdate struct {
	AllocID      string              `json:"AllocID"`
	ClientStatus string              `json:"ClientStatus"`
	Description  string              `json:"Description,omitempty"`
	Endpoints    []registry.Endpoint `json:"Endpoints,omitempty"`
	// TaskStates replaces the allocation's task states when set; an
	// update without them (a node marked down) keeps the last reported.
	TaskStates map[string]*structs.TaskState `json:"TaskStates,omitempty"`
	// Health is the allocation's deployment health, once its agent
	// decided it (HealthTime: when the agent observed it). It is set
	// once: a later report never changes it.
	Health     sched.Health `json:"Health,omitempty"`
	HealthTime int64        `json:"HealthTime,omitempty"`
}

// NodeStatus marks a node down (or up) with what happens to its
// allocations and the evaluations that follow.
type NodeStatus struct {
	NodeID string          `json:"NodeID"`
	Status string          `json:"Status"`
	Time   int64           `json:"Time"`
	Allocs []ClientUpdate  `json:"Allocs,omitempty"`
	Evals  []*structs.Eval `json:"Evals,omitempty"`
}

// NodeDrain starts or ends a drain. Eligible is the node's scheduling
// eligibility afterwards (a finished drain leaves it ineligible, as Nomad
// does, until the operator says otherwise).
type NodeDrain struct {
	NodeID   string         `json:"NodeID"`
	Drain    *structs.Drain `json:"Drain,omitempty"`
	Eligible bool           `json:"Eligible"`
}

// ClusterCA is the cluster CA as stored: the first leader creates it and
// every server issues its agent endpoint certificate from it.
type ClusterCA struct {
	CertPEM []byte `json:"CertPEM"`
	KeyPEM  []byte `json:"KeyPEM"`
}

// CASet stores the cluster CA; the first one wins.
type CASet struct {
	CA ClusterCA `json:"CA"`
}

// EvalUpsert writes evaluations.
type EvalUpsert struct {
	Evals []*structs.Eval `json:"Evals"`
}

// TokenCreate stores a join token (its secret's hash only).
type TokenCreate struct {
	Token structs.JoinToken `json:"Token"`
}

// TokenUse spends a token for a node. Apply checks the token again (it
// may have been used or revoked since the proposer looked).
type TokenUse struct {
	ID         string `json:"ID"`
	SecretHash string `json:"SecretHash"`
	NodeID     string `json:"NodeID"`
	Time       int64  `json:"Time"`
}

// TokenRevoke deletes a token.
type TokenRevoke struct {
	ID string `json:"ID"`
}

func (*JobRegister) Type() CmdType       { return CmdJobRegister }
func (*JobStop) Type() CmdType           { return CmdJobStop }
func (*ModuleRegister) Type() CmdType    { return CmdModuleRegister }
func (*NodeRegister) Type() CmdType      { return CmdNodeRegister }
func (*PlanApply) Type() CmdType         { return CmdPlanApply }
func (*AllocUpdate) Type() CmdType       { return CmdAllocUpdate }
func (*NodeStatus) Type() CmdType        { return CmdNodeStatus }
func (*NodeDrain) Type() CmdType         { return CmdNodeDrain }
func (*CASet) Type() CmdType             { return CmdCASet }
func (*EvalUpsert) Type() CmdType        { return CmdEvalUpsert }
func (*TokenCreate) Type() CmdType       { return CmdTokenCreate }
func (*TokenUse) Type() CmdType          { return CmdTokenUse }
func (*TokenRevoke) Type() CmdType       { return CmdTokenRevoke }
func (*DeploymentPromote) Type() CmdType { return CmdDeploymentPromote }
func (*DeploymentUpdate) Type() CmdType  { return CmdDeploymentUpdate }
func (*NodeEligibility) Type() CmdType   { return CmdNodeEligibility }
func (*ModuleDelete) Type() CmdType      { return CmdModuleDelete }
func (*SystemGC) Type() CmdType          { return CmdSystemGC }

// Refusals. A refused command changes nothing; its error goes back to
// the proposer.
var (
	// ErrNotFound: the command names a job, node or token that does not
	// exist. Its text has no package prefix: it ends messages the API
	// shows, such as `job "web": not found`.
	ErrNotFound = errors.New("not found")
	// ErrModuleExists: a module version pushed again with different
	// bytes; versions are immutable.
	ErrModuleExists = errors.New("state: module version exists with a different digest")
	// ErrIndexMismatch: a registration with EnforceIndex found the job at
	// another modify index: it changed since the caller looked.
	ErrIndexMismatch = errors.New("state: job modify index mismatch")
	// ErrRefused matches every refusal: the command was not valid in the
	// state it met (Result.Err), so it changed nothing.
	ErrRefused = errors.New("state: command refused")
	// ErrDeploymentEnded: a promotion or status change of a deployment
	// that is no longer running.
	ErrDeploymentEnded = errors.New("state: deployment not running")
	// ErrModuleInUse: a module version that a stored job version
	// references cannot be deleted.
	ErrModuleInUse = errors.New("state: module version in use")
	// ErrNodeDraining: a draining node cannot be made eligible; its drain
	// must end first.
	ErrNodeDraining = errors.New("state: node is draining")
)

// refusal wraps an error that refuses one command without failing the batch.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// Is makes every refusal match ErrRefused.
func (r *refusal) Is(target error) bool { return target == ErrRefused }
