package state

import (
	"maps"
	"slices"

	"github.com/strata-run/strata/coordinator/structs"
)

// Event topics, as Nomad names them.
const (
	TopicJob        = "Job"
	TopicAllocation = "Allocation"
	TopicDeployment = "Deployment"
	TopicNode       = "Node"
)

// Event is one change a committed command made, for the event stream:
// Nomad's event (Topic, Type, Key, Index and a payload naming the record
// as the command left it).
type Event struct {
	Topic   string       `json:"Topic"`
	Type    string       `json:"Type"`
	Key     string       `json:"Key"`
	Index   uint64       `json:"Index"`
	Payload EventPayload `json:"Payload"`
}

// EventPayload holds the one record an event is about, as Nomad's
// payloads do ({"Job": …}, {"Allocation": …}, …). Records are copies: a
// later command does not change them.
type EventPayload struct {
	Job        *structs.JobRecord  `json:"Job,omitempty"`
	Allocation *structs.Alloc      `json:"Allocation,omitempty"`
	Deployment *structs.Deployment `json:"Deployment,omitempty"`
	Node       *structs.NodeRecord `json:"Node,omitempty"`
}

// JobID is the job an event belongs to ("" for a node's).
func (e *Event) JobID() string {
	switch {
	case e.Payload.Job != nil:
		return e.Key
	case e.Payload.Allocation != nil:
		return e.Payload.Allocation.JobID
	case e.Payload.Deployment != nil:
		return e.Payload.Deployment.JobID
	}
	return ""
}

// entryEvents is what the entry being applied touched, in the order it
// touched it: after the entry, each becomes one event with the record's
// state at the end of the entry.
type entryEvents struct {
	allocs, deployments []string
	jobIDs              []string
	jobs                []*structs.JobRecord
	nodes               []*structs.NodeRecord
	seenDeployments     map[string]bool
}

func (b *batch) touchDeployment(id string) {
	if b.ev.seenDeployments[id] {
		return
	}
	if b.ev.seenDeployments == nil {
		b.ev.seenDeployments = map[string]bool{}
	}
	b.ev.seenDeployments[id] = true
	b.ev.deployments = append(b.ev.deployments, id)
}

// touchJob records the job's record as the entry wrote it (rec is a
// copy: the entry does not change it after).
func (b *batch) touchJob(id string, rec structs.JobRecord) {
	if i := slices.Index(b.ev.jobIDs, id); i >= 0 {
		b.ev.jobs[i] = &rec
		return
	}
	b.ev.jobIDs = append(b.ev.jobIDs, id)
	b.ev.jobs = append(b.ev.jobs, &rec)
}

// touchNode records a copy of the node's record as the entry wrote it.
func (b *batch) touchNode(rec *structs.NodeRecord) {
	c := *rec
	for i, n := range b.ev.nodes {
		if n.ID == c.ID {
			b.ev.nodes[i] = &c
			return
		}
	}
	b.ev.nodes = append(b.ev.nodes, &c)
}

// endEntry turns what the entry of command type t touched into events;
// a refused entry (ok false) touched nothing that stays.
func (b *batch) endEntry(t CmdType, ok bool) {
	ev := b.ev
	b.ev = entryEvents{}
	if !ok {
		return
	}
	b.fx.Events = slices.Grow(b.fx.Events, len(ev.jobs)+len(ev.deployments)+len(ev.allocs)+len(ev.nodes))
	add := func(topic, typ, key string, p EventPayload) {
		b.fx.Events = append(b.fx.Events, Event{Topic: topic, Type: typ, Key: key, Index: b.index, Payload: p})
	}
	for i, rec := range ev.jobs {
		typ := "JobRegistered"
		if t == CmdJobStop {
			typ = "JobDeregistered"
		}
		add(TopicJob, typ, ev.jobIDs[i], EventPayload{Job: rec})
	}
	for _, id := range ev.deployments {
		d := b.deployments[id]
		if d == nil {
			continue // deleted by the same entry
		}
		typ := "DeploymentStatusUpdate"
		if t == CmdDeploymentPromote {
			typ = "DeploymentPromotion"
		}
		add(TopicDeployment, typ, id, EventPayload{Deployment: cloneDeployment(d)})
	}
	for _, id := range ev.allocs {
		p, ok := b.pending[id]
		a := p.a
		if !ok {
			continue // deleted by the same entry
		}
		typ := "AllocationUpdated"
		if t == CmdPlanApply {
			typ = "PlanResult"
		}
		add(TopicAllocation, typ, id, EventPayload{Allocation: a}) // shared: see pendingAlloc
	}
	for _, n := range ev.nodes {
		add(TopicNode, nodeEventType(t), n.ID, EventPayload{Node: n})
	}
}

func nodeEventType(t CmdType) string {
	switch t {
	case CmdNodeRegister:
		return "NodeRegistration"
	case CmdNodeDrain:
		return "NodeDrain"
	case CmdNodeEligibility:
		return "NodeEligibility"
	}
	return "NodeEvent"
}

// cloneAlloc copies what a later command of the batch may change in place.
func cloneAlloc(a *structs.Alloc) *structs.Alloc {
	c := *a
	c.Ports = slices.Clone(a.Ports)
	c.Endpoints = slices.Clone(a.Endpoints)
	c.TaskStates = maps.Clone(a.TaskStates) // the states themselves are replaced, never changed
	return &c
}

func cloneDeployment(d *structs.Deployment) *structs.Deployment {
	c := *d
	c.Groups = make(map[string]*structs.DeploymentGroup, len(d.Groups))
	for name, g := range d.Groups {
		gc := *g
		gc.PlacedCanaries = slices.Clone(g.PlacedCanaries)
		c.Groups[name] = &gc
	}
	return &c
}
