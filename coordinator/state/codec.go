package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
)

// Allocations are the bulk of both the state file and the Raft log (a
// million of them in the C1M benchmark), so they have a compact binary
// form instead of JSON: varints, and length-prefixed strings. Stored
// allocations write their strings inline. A plan command writes the
// strings its allocations share (job, evaluation, group, node, statuses)
// once, in a table, and refers to them by number; the strings unique to
// each allocation (ID, name) stay inline.
//
// Every field is written, in declaration order; TestAllocCodecCoversEveryField
// fails when a field is added to sched.Allocation or structs.Alloc and not
// here.

// The first byte of a stored allocation is its version. V2 adds the
// deployment fields (DeploymentID, Canary, Health, HealthTime) and the
// endpoints' Canary flag; V1 records (written before deployments) still
// read, with those fields zero.
//
// V3 adds the reschedule fields (PreviousAllocation, NextAllocation,
// FollowupEvalID, FinishedAt, RescheduleTracker).
const (
	allocRecordV1 = 1
	allocRecordV2 = 2
	allocRecordV3 = 3
)

// The first byte of a binary plan command's payload is its version. V2
// adds the allocations' deployment fields, the in-place moves and the
// plan's time; V1 plans (in a Raft log written before) still apply.
// V3 adds the allocations' reschedule fields and the follow-up
// evaluations.
const (
	planCmdV1 = 1
	planCmdV2 = 2
	planCmdV3 = 3
)

// ErrCorruptRecord is wrapped by every decoding error of the binary forms.
var ErrCorruptRecord = errors.New("state: corrupt binary record")

type encoder struct {
	buf   []byte
	v     byte              // format version being written
	table map[string]uint64 // nil: strings inline
	strs  []string          // the table, in index order
}

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// shared writes a string many records of a plan repeat: inline without
// a table.
func (e *encoder) shared(s string) {
	if e.table == nil {
		e.str(s)
		return
	}
	i, ok := e.table[s]
	if !ok {
		i = uint64(len(e.strs))
		e.table[s] = i
		e.strs = append(e.strs, s)
	}
	e.uvarint(i)
}

func (e *encoder) allocation(a *sched.Allocation) {
	e.str(a.ID)
	e.shared(a.EvalID)
	e.str(a.Name)
	e.shared(a.JobID)
	e.uvarint(a.JobVersion)
	e.shared(a.Group)
	e.varint(int64(a.Index))
	e.shared(a.NodeID)
	e.shared(a.NodeName)
	e.varint(int64(a.Resources.CPU))
	e.varint(int64(a.Resources.MemoryMB))
	e.uvarint(uint64(len(a.Ports)))
	for _, p := range a.Ports {
		e.shared(p.Label)
		e.varint(int64(p.Value))
		e.varint(int64(p.To))
	}
	e.shared(a.DesiredStatus)
	e.shared(a.DesiredDesc)
	e.shared(a.ClientStatus)
	e.shared(a.ClientDescription)
	e.uvarint(a.CreateIndex)
	e.uvarint(a.ModifyIndex)
	if e.v >= 2 {
		e.shared(a.DeploymentID)
		e.bool(a.Canary)
		e.buf = append(e.buf, byte(a.Health))
		e.varint(a.HealthTime)
	}
	if e.v >= 3 {
		e.str(a.PreviousAllocation)
		e.str(a.NextAllocation)
		e.shared(a.FollowupEvalID)
		e.varint(a.FinishedAt)
		if a.RescheduleTracker == nil {
			e.uvarint(0)
		} else {
			e.uvarint(1 + uint64(len(a.RescheduleTracker.Events)))
			for _, ev := range a.RescheduleTracker.Events {
				e.varint(ev.RescheduleTime)
				e.str(ev.PrevAllocID)
				e.shared(ev.PrevNodeID)
				e.varint(int64(ev.Delay))
			}
		}
	}
}

func (e *encoder) bool(v bool) {
	b := byte(0)
	if v {
		b = 1
	}
	e.buf = append(e.buf, b)
}

// decoder reads what encoder wrote. The first error sticks: later reads
// return zero values, and err names the field where it happened.
type decoder struct {
	what  string // "allocation" or "plan", for errors
	v     byte   // format version being read
	b     []byte
	off   int
	table []string // nil: strings inline
	err   error
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s at byte %d: %s", ErrCorruptRecord, d.what, field, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(field, "truncated or overlong varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(field, "truncated or overlong varint")
		return 0
	}
	d.off += n
	return v
}

// int reads a signed varint that must fit an int.
func (d *decoder) int(field string) int {
	v := d.varint(field)
	if int64(int(v)) != v {
		d.fail(field, "%d overflows int", v)
		return 0
	}
	return int(v)
}

// count reads a slice length; each element takes at least one byte, so
// a count beyond the bytes left is corrupt (and never allocated).
func (d *decoder) count(field string) int {
	at := d.off
	n := d.uvarint(field)
	if d.err == nil && n > uint64(len(d.b)-d.off) {
		left := len(d.b) - d.off
		d.off = at // report the field's offset
		d.fail(field, "count %d exceeds the %d bytes left", n, left)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(field string) []byte {
	n := d.count(field)
	if d.err != nil {
		return nil
	}
	v := d.b[d.off : d.off+n]
	d.off += n
	return v
}

func (d *decoder) str(field string) string { return string(d.bytes(field)) }

// shared reads what encoder.shared wrote.
func (d *decoder) shared(field string) string {
	if d.table == nil {
		return d.str(field)
	}
	at := d.off
	i := d.uvarint(field)
	if d.err != nil {
		return ""
	}
	if i >= uint64(len(d.table)) {
		d.off = at
		d.fail(field, "string %d not in the table of %d", i, len(d.table))
		return ""
	}
	return d.table[i]
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail(field, "truncated")
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

// end fails unless every byte was read.
func (d *decoder) end() {
	if d.err == nil && d.off != len(d.b) {
		d.fail("end", "%d trailing bytes", len(d.b)-d.off)
	}
}

func (d *decoder) allocation(a *sched.Allocation) {
	a.ID = d.str("ID")
	a.EvalID = d.shared("EvalID")
	a.Name = d.str("Name")
	a.JobID = d.shared("JobID")
	a.JobVersion = d.uvarint("JobVersion")
	a.Group = d.shared("Group")
	a.Index = d.int("Index")
	a.NodeID = d.shared("NodeID")
	a.NodeName = d.shared("NodeName")
	a.Resources.CPU = d.int("Resources.CPU")
	a.Resources.MemoryMB = d.int("Resources.MemoryMB")
	if n := d.count("Ports"); n > 0 {
		a.Ports = make([]sched.PortMapping, n)
		for i := range a.Ports {
			a.Ports[i] = sched.PortMapping{Label: d.shared("Ports.Label"), Value: d.int("Ports.Value"), To: d.int("Ports.To")}
		}
	}
	a.DesiredStatus = d.shared("DesiredStatus")
	a.DesiredDesc = d.shared("DesiredDesc")
	a.ClientStatus = d.shared("ClientStatus")
	a.ClientDescription = d.shared("ClientDescription")
	a.CreateIndex = d.uvarint("CreateIndex")
	a.ModifyIndex = d.uvarint("ModifyIndex")
	if d.v >= 2 {
		a.DeploymentID = d.shared("DeploymentID")
		a.Canary = d.bool("Canary")
		switch h := sched.Health(d.byte("Health")); h {
		case sched.HealthUnknown, sched.HealthHealthy, sched.HealthUnhealthy:
			a.Health = h
		default:
			d.fail("Health", "unknown health %d", h)
		}
		a.HealthTime = d.varint("HealthTime")
	}
	if d.v >= 3 {
		a.PreviousAllocation = d.str("PreviousAllocation")
		a.NextAllocation = d.str("NextAllocation")
		a.FollowupEvalID = d.shared("FollowupEvalID")
		a.FinishedAt = d.varint("FinishedAt")
		if n := d.count("RescheduleTracker"); n > 0 {
			a.RescheduleTracker = &sched.RescheduleTracker{}
			if n > 1 {
				a.RescheduleTracker.Events = make([]sched.RescheduleEvent, n-1)
				for i := range a.RescheduleTracker.Events {
					ev := &a.RescheduleTracker.Events[i]
					ev.RescheduleTime = d.varint("RescheduleTracker.RescheduleTime")
					ev.PrevAllocID = d.str("RescheduleTracker.PrevAllocID")
					ev.PrevNodeID = d.shared("RescheduleTracker.PrevNodeID")
					ev.Delay = time.Duration(d.varint("RescheduleTracker.Delay"))
				}
			}
		}
	}
}

// bool reads what encoder.bool wrote: 0 or 1.
func (d *decoder) bool(field string) bool {
	switch b := d.byte(field); b {
	case 0, 1:
		return b == 1
	default:
		d.fail(field, "boolean byte %d", b)
		return false
	}
}

// appendAllocRecord appends a's stored form to buf.
func appendAllocRecord(buf []byte, a *structs.Alloc) []byte {
	e := encoder{buf: append(buf, allocRecordV3), v: allocRecordV3}
	e.allocation(&a.Allocation)
	e.uvarint(uint64(len(a.Endpoints)))
	for _, ep := range a.Endpoints {
		e.str(ep.Service)
		e.uvarint(uint64(len(ep.Tags)))
		for _, t := range ep.Tags {
			e.str(t)
		}
		e.str(ep.AllocID)
		e.str(ep.NodeID)
		e.str(ep.NodeName)
		e.str(ep.Address)
		e.varint(int64(ep.Port))
		e.bool(ep.Healthy)
		e.bool(ep.Canary)
	}
	e.varint(a.UnknownSince)
	// Task states and events change rarely and are read by people, not
	// the scheduler: JSON inside the record, empty when there are none.
	var states []byte
	if len(a.TaskStates) > 0 {
		states, _ = json.Marshal(a.TaskStates) // maps of plain structs: cannot fail
	}
	e.str(string(states))
	return e.buf
}

// decodeAllocRecord decodes a stored allocation.
func decodeAllocRecord(b []byte) (*structs.Alloc, error) {
	if len(b) == 0 || b[0] < allocRecordV1 || b[0] > allocRecordV3 {
		if len(b) > 0 && b[0] == '{' {
			return nil, fmt.Errorf("%w: allocation is JSON (an older state format), want binary version %d", ErrCorruptRecord, allocRecordV3)
		}
		return nil, fmt.Errorf("%w: allocation record does not start with version byte %d to %d", ErrCorruptRecord, allocRecordV1, allocRecordV3)
	}
	d := decoder{what: "allocation", b: b, off: 1, v: b[0]}
	a := &structs.Alloc{}
	d.allocation(&a.Allocation)
	if n := d.count("Endpoints"); n > 0 {
		a.Endpoints = make([]registry.Endpoint, n)
		for i := range a.Endpoints {
			ep := &a.Endpoints[i]
			ep.Service = d.str("Endpoints.Service")
			if nt := d.count("Endpoints.Tags"); nt > 0 {
				ep.Tags = make([]string, nt)
				for j := range ep.Tags {
					ep.Tags[j] = d.str("Endpoints.Tags")
				}
			}
			ep.AllocID = d.str("Endpoints.AllocID")
			ep.NodeID = d.str("Endpoints.NodeID")
			ep.NodeName = d.str("Endpoints.NodeName")
			ep.Address = d.str("Endpoints.Address")
			ep.Port = d.int("Endpoints.Port")
			ep.Healthy = d.bool("Endpoints.Healthy")
			if d.v >= 2 {
				ep.Canary = d.bool("Endpoints.Canary")
			}
		}
	}
	a.UnknownSince = d.varint("UnknownSince")
	if states := d.bytes("TaskStates"); len(states) > 0 && d.err == nil {
		if err := json.Unmarshal(states, &a.TaskStates); err != nil {
			d.fail("TaskStates", "%v", err)
		}
	}
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return a, nil
}

// appendPlanCmd appends a plan command's payload to dst: version, string
// table, the evaluation (JSON: one per plan, and it carries the failure
// explanations), the stops, then the placements.
func appendPlanCmd(dst []byte, c *PlanApply) ([]byte, error) {
	var evalJSON []byte
	if c.Eval != nil {
		var err error
		if evalJSON, err = json.Marshal(c.Eval); err != nil {
			return nil, err
		}
	}
	body := encoder{buf: make([]byte, 0, 64+len(evalJSON)+128*len(c.Place)), table: make(map[string]uint64, 16+len(c.Place)), v: planCmdV3}
	body.varint(c.Time)
	body.uvarint(uint64(len(evalJSON)))
	body.buf = append(body.buf, evalJSON...)
	body.uvarint(uint64(len(c.Stop)))
	for _, s := range c.Stop {
		body.str(s.ID)
		body.shared(s.Desc)
	}
	body.uvarint(uint64(len(c.Place)))
	for _, a := range c.Place {
		body.allocation(a)
	}
	body.uvarint(uint64(len(c.InPlace)))
	for _, m := range c.InPlace {
		body.str(m.ID)
		body.uvarint(m.JobVersion)
	}
	body.uvarint(uint64(len(c.FollowUps)))
	for _, f := range c.FollowUps {
		body.str(f.EvalID)
		body.varint(f.WaitUntil)
		body.uvarint(uint64(len(f.AllocIDs)))
		for _, id := range f.AllocIDs {
			body.str(id)
		}
	}
	size := len(dst) + 1 + binary.MaxVarintLen64 + len(body.buf)
	for _, s := range body.strs {
		size += binary.MaxVarintLen64 + len(s)
	}
	out := encoder{buf: append(make([]byte, 0, size), dst...)}
	out.buf = append(out.buf, planCmdV3)
	out.uvarint(uint64(len(body.strs)))
	for _, s := range body.strs {
		out.str(s)
	}
	return append(out.buf, body.buf...), nil
}

// decodePlanCmd decodes appendPlanCmd's payload.
func decodePlanCmd(b []byte) (*PlanApply, error) {
	if len(b) == 0 || b[0] < planCmdV1 || b[0] > planCmdV3 {
		return nil, fmt.Errorf("%w: plan does not start with version byte %d to %d", ErrCorruptRecord, planCmdV1, planCmdV3)
	}
	d := decoder{what: "plan", b: b, off: 1, v: b[0]}
	n := d.count("strings")
	table := make([]string, 0, n)
	for range n {
		table = append(table, d.str("strings"))
	}
	d.table = table
	c := &PlanApply{}
	if d.v >= 2 {
		c.Time = d.varint("Time")
	}
	if ev := d.bytes("Eval"); len(ev) > 0 {
		c.Eval = &structs.Eval{}
		if err := json.Unmarshal(ev, c.Eval); err != nil {
			d.fail("Eval", "%v", err)
		}
	}
	if n := d.count("Stop"); n > 0 {
		c.Stop = make([]AllocStop, n)
		for i := range c.Stop {
			c.Stop[i] = AllocStop{ID: d.str("Stop.ID"), Desc: d.shared("Stop.Desc")}
		}
	}
	if n := d.count("Place"); n > 0 {
		c.Place = make([]*sched.Allocation, n)
		c.records = make([]structs.Alloc, n)
		for i := range c.Place {
			d.allocation(&c.records[i].Allocation)
			c.Place[i] = &c.records[i].Allocation
		}
	}
	if d.v >= 2 {
		if n := d.count("InPlace"); n > 0 {
			c.InPlace = make([]AllocMove, n)
			for i := range c.InPlace {
				c.InPlace[i] = AllocMove{ID: d.str("InPlace.ID"), JobVersion: d.uvarint("InPlace.JobVersion")}
			}
		}
	}
	if d.v >= 3 {
		if n := d.count("FollowUps"); n > 0 {
			c.FollowUps = make([]FollowUp, n)
			for i := range c.FollowUps {
				f := &c.FollowUps[i]
				f.EvalID = d.str("FollowUps.EvalID")
				f.WaitUntil = d.varint("FollowUps.WaitUntil")
				if m := d.count("FollowUps.AllocIDs"); m > 0 {
					f.AllocIDs = make([]string, m)
					for j := range f.AllocIDs {
						f.AllocIDs[j] = d.str("FollowUps.AllocIDs")
					}
				}
			}
		}
	}
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}
