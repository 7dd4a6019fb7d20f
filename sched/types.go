package sched

import (
	"fmt"

	"github.com/strata-run/strata/spec"
)

// Resources is a quantity of node capacity.
type Resources struct {
	CPU      int `json:"CPU"`      // MHz
	MemoryMB int `json:"MemoryMB"` // MB
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{CPU: r.CPU + o.CPU, MemoryMB: r.MemoryMB + o.MemoryMB}
}

// Node status values.
const (
	NodeReady = "ready"
	NodeDown  = "down"
)

// Node is an agent as the scheduler sees it.
type Node struct {
	ID         string            `json:"ID"`
	Name       string            `json:"Name"`
	Datacenter string            `json:"Datacenter"`
	Address    string            `json:"Address"` // IP its tasks listen on and advertise
	Drivers    map[string]bool   `json:"Drivers"` // driver name -> healthy
	Capacity   Resources         `json:"Capacity"`
	Attributes map[string]string `json:"Attributes,omitempty"`
	Meta       map[string]string `json:"Meta,omitempty"`
	Status     string            `json:"Status"`
	Eligible   bool              `json:"Eligible"`
	// Class is the node's class (Nomad's node_class), read by constraints
	// as ${node.class}; empty when the agent declares none.
	Class string `json:"Class,omitempty"`
	// ComputedClass is ComputeClass(node), kept up to date by the
	// coordinator when the node registers or changes. Schedule checks
	// constraints once per computed class; empty: once per node.
	ComputedClass string `json:"ComputedClass,omitempty"`
	// HostVolumes are the directories the agent's operator lets jobs
	// mount, by name (strata agent -host-volume NAME=PATH[:ro]). They are
	// not part of the computed class: checked per node, as Nomad does.
	HostVolumes map[string]HostVolume `json:"HostVolumes,omitempty"`
}

// HostVolume is a directory an agent offers under a name.
type HostVolume struct {
	Path     string `json:"Path"` // on the node
	ReadOnly bool   `json:"ReadOnly,omitempty"`
}

// Desired statuses of an allocation (set by the coordinator).
const (
	DesiredRun  = "run"
	DesiredStop = "stop"
)

// Client statuses of an allocation (reported by the agent).
const (
	ClientPending  = "pending"
	ClientRunning  = "running"
	ClientComplete = "complete"
	ClientFailed   = "failed"
	ClientLost     = "lost"
	// ClientUnknown: the node is down but the group has a disconnect
	// block, so the allocation may still be running; it is not terminal.
	ClientUnknown = "unknown"
)

// PortMapping is a port assigned to an allocation on its node.
type PortMapping struct {
	Label string `json:"Label"`
	Value int    `json:"Value"` // port on the node
	To    int    `json:"To,omitempty"`
}

// Allocation is one placed copy of a task group.
type Allocation struct {
	ID         string `json:"ID"`
	EvalID     string `json:"EvalID"`
	Name       string `json:"Name"` // "<job>.<group>[<index>]"
	JobID      string `json:"JobID"`
	JobVersion uint64 `json:"JobVersion"`
	Group      string `json:"Group"`
	Index      int    `json:"Index"`
	NodeID     string `json:"NodeID"`
	NodeName   string `json:"NodeName"`

	// Resources is the sum over the group's tasks; Ports every port of
	// every task, assigned on the node.
	Resources Resources     `json:"Resources"`
	Ports     []PortMapping `json:"Ports,omitempty"`

	// DeploymentID is the deployment that placed the allocation, if any;
	// Canary marks a canary of that deployment not yet promoted.
	DeploymentID string `json:"DeploymentID,omitempty"`
	Canary       bool   `json:"Canary,omitempty"`
	// Health is the deployment health its agent reported: HealthUnknown
	// until it was healthy or unhealthy for its deployment (HealthTime,
	// unix nanoseconds, says when the agent observed it).
	Health     Health `json:"DeploymentHealth,omitempty"`
	HealthTime int64  `json:"DeploymentHealthTime,omitempty"`

	DesiredStatus     string `json:"DesiredStatus"`
	DesiredDesc       string `json:"DesiredDescription,omitempty"`
	ClientStatus      string `json:"ClientStatus"`
	ClientDescription string `json:"ClientDescription,omitempty"`

	// CreateIndex and ModifyIndex are Raft indexes stamped by the store.
	CreateIndex uint64 `json:"CreateIndex"`
	ModifyIndex uint64 `json:"ModifyIndex"`

	// Rescheduling (reschedule.go). PreviousAllocation is the failed
	// allocation this one replaces, NextAllocation the one that replaced
	// it (set by the store when the replacement is placed), and
	// RescheduleTracker the reschedules of the chain so far, this one's
	// included. FollowupEvalID is the delayed evaluation that will
	// reschedule this failed allocation when its delay has passed.
	// FinishedAt is when a report made its client status final (unix
	// nanoseconds, stamped by the proposer): a reschedule delay counts
	// from there.
	PreviousAllocation string             `json:"PreviousAllocation,omitempty"`
	NextAllocation     string             `json:"NextAllocation,omitempty"`
	RescheduleTracker  *RescheduleTracker `json:"RescheduleTracker,omitempty"`
	FollowupEvalID     string             `json:"FollowupEvalID,omitempty"`
	FinishedAt         int64              `json:"FinishedAt,omitempty"`
}

// Health is an allocation's deployment health.
type Health uint8

// Health values. Values are stored: never renumber.
const (
	HealthUnknown   Health = 0
	HealthHealthy   Health = 1
	HealthUnhealthy Health = 2
)

func (h Health) String() string {
	switch h {
	case HealthHealthy:
		return "healthy"
	case HealthUnhealthy:
		return "unhealthy"
	}
	return ""
}

// MarshalText writes the health as a word ("" when unknown).
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (h *Health) UnmarshalText(b []byte) error {
	switch string(b) {
	case "":
		*h = HealthUnknown
	case "healthy":
		*h = HealthHealthy
	case "unhealthy":
		*h = HealthUnhealthy
	default:
		return fmt.Errorf("sched: unknown deployment health %q", b)
	}
	return nil
}

// Terminal reports whether the allocation no longer holds resources: the
// coordinator asked it to stop, or the agent reported it finished.
func (a *Allocation) Terminal() bool {
	switch a.ClientStatus {
	case ClientComplete, ClientFailed, ClientLost:
		return true
	}
	return a.DesiredStatus == DesiredStop
}

// NodeState is a node together with what its non-terminal allocations
// already use. The coordinator keeps these up to date; the scheduler only
// reads them.
type NodeState struct {
	Node      *Node
	Used      Resources
	UsedPorts map[int]bool
}

// Request is everything one scheduling decision needs. Nothing else is read:
// no clock, no global randomness (shuffles and allocation IDs are seeded
// from EvalID and Attempt).
type Request struct {
	EvalID string
	// Attempt distinguishes re-plans of the same evaluation (the
	// coordinator passes its snapshot index): each draws fresh allocation
	// IDs, so a retry never reuses an ID an earlier attempt committed.
	Attempt    uint64
	Job        *spec.Job // nil or stopped: every allocation is stopped
	JobVersion uint64
	Stopped    bool
	Nodes      []*NodeState  // every node in the cluster
	Existing   []*Allocation // this job's allocations, terminal ones included
	// Versions holds the older versions of the job that Existing
	// allocations run. An allocation whose group changed from its version
	// only in count or strategy (spec.GroupNeedsReplace) moves to
	// JobVersion in place (Plan.InPlace); one whose version is missing
	// here is replaced.
	Versions map[uint64]*spec.Job
	// Deployment drives the replacement of changed allocations; nil
	// replaces them all at once.
	Deployment *Deployment
	// Now is the evaluation's time (unix nanoseconds), read by the
	// coordinator: a failed allocation is rescheduled once its delay has
	// passed by then, or a follow-up evaluation is asked for later.
	Now int64
}

// Deployment is what the scheduler needs of the job version's deployment.
type Deployment struct {
	ID string
	// Active is false once the deployment failed or was cancelled: no new
	// replacement starts (replaced allocations still stop once their
	// replacement is healthy).
	Active bool
	Groups map[string]*DeploymentGroup
}

// DeploymentGroup is one group's part of a deployment.
type DeploymentGroup struct {
	// Promoted: the group's canaries were promoted, so the rolling update
	// goes on past them.
	Promoted bool
	// Hold: the next batch must wait (update.stagger has not passed since
	// the last one started); the coordinator knows the time, not the
	// scheduler.
	Hold bool
}

// Plan is the scheduler's answer: what to place and what to stop.
type Plan struct {
	EvalID string
	// Place holds new allocations, NodeID and Ports filled in.
	Place []*Allocation
	// Stop holds existing allocations to stop, with DesiredDesc saying why.
	Stop []*Allocation
	// InPlace holds existing allocations moved to the job's version
	// without a restart: their group changed only in count or strategy.
	InPlace []*Allocation
	// Failed explains, per group, placements that found no node.
	Failed map[string]*Explanation
	// FollowUps are the delayed evaluations that reschedule failed
	// allocations whose delay has not passed yet (reschedule.go).
	FollowUps []*FollowUp
}

// Explanation says why a group's placements failed, with counts per reason.
type Explanation struct {
	Group          string         `json:"Group"`
	Missing        int            `json:"Missing"` // copies that could not be placed
	NodesEvaluated int            `json:"NodesEvaluated"`
	NodesFeasible  int            `json:"NodesFeasible"`
	Reasons        map[string]int `json:"Reasons"` // "missing driver docker" -> node count
}
