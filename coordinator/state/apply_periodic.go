package state

import (
	"fmt"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// PeriodicLaunch launches the child of periodic job JobID for the tick
// Tick (unix seconds): the child job <JobID>/periodic-<Tick> is
// registered with the evaluation EvalID, and the parent's PeriodicLast
// becomes Tick. It is idempotent: a tick at or before PeriodicLast, or
// whose child exists, launches nothing, so a leader that proposes a tick
// twice (a retry, a new leader) launches it once.
//
// Skip records the tick as done without a child (prohibit_overlap while
// a child runs). Force (`job periodic force`) launches a child now
// whatever the schedule says, and leaves PeriodicLast alone.
type PeriodicLaunch struct {
	JobID      string `json:"JobID"`
	Tick       int64  `json:"Tick"`
	Skip       bool   `json:"Skip,omitempty"`
	Force      bool   `json:"Force,omitempty"`
	EvalID     string `json:"EvalID"`
	SubmitTime int64  `json:"SubmitTime"` // unix nanoseconds
}

// PeriodicLaunchResult says which child a PeriodicLaunch registered, if
// any.
type PeriodicLaunchResult struct {
	ChildID  string
	Launched bool
	EvalID   string
}

// Type implements Command.
func (*PeriodicLaunch) Type() CmdType { return CmdPeriodicLaunch }

func (c *PeriodicLaunch) apply(b *batch) (any, error) {
	jobs := b.tx.Bucket(bucketJobs)
	var rec structs.JobRecord
	ok, err := getJSON(jobs, []byte(c.JobID), &rec)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		return nil, &refusal{fmt.Errorf("job %q: %w", c.JobID, ErrNotFound)}
	case rec.Stopped:
		return nil, refuse("job %q is stopped: it launches nothing", c.JobID)
	case rec.Job == nil || rec.Job.Periodic == nil:
		return nil, refuse("job %q is not periodic", c.JobID)
	}
	tick := time.Unix(c.Tick, 0).UTC()
	res := &PeriodicLaunchResult{ChildID: spec.PeriodicChildID(c.JobID, tick)}
	if !c.Force && c.Tick <= rec.PeriodicLast {
		return res, nil
	}
	exists, err := getJSON(jobs, []byte(res.ChildID), &structs.JobRecord{})
	if err != nil {
		return nil, err
	}
	if !exists && !c.Skip {
		child, err := rec.Job.PeriodicChild(tick)
		if err != nil {
			return nil, err
		}
		reg := &JobRegister{Job: child, SubmitTime: c.SubmitTime, EvalID: c.EvalID}
		if _, err := reg.apply(b); err != nil {
			return nil, err
		}
		res.Launched, res.EvalID = true, c.EvalID
	}
	if c.Force {
		return res, nil
	}
	rec.PeriodicLast = c.Tick
	return res, putJSON(jobs, []byte(c.JobID), &rec)
}

// JobDispatch launches a child of parameterized job JobID: ChildID
// (stamped by the proposer) with the meta and payload, registered with
// the evaluation EvalID. A dispatch the parent does not accept (meta,
// payload), or whose child exists, is refused.
type JobDispatch struct {
	JobID      string            `json:"JobID"`
	ChildID    string            `json:"ChildID"`
	Meta       map[string]string `json:"Meta,omitempty"`
	Payload    []byte            `json:"Payload,omitempty"`
	EvalID     string            `json:"EvalID"`
	SubmitTime int64             `json:"SubmitTime"` // unix nanoseconds
}

// Type implements Command.
func (*JobDispatch) Type() CmdType { return CmdJobDispatch }

func (c *JobDispatch) apply(b *batch) (any, error) {
	jobs := b.tx.Bucket(bucketJobs)
	var rec structs.JobRecord
	ok, err := getJSON(jobs, []byte(c.JobID), &rec)
	if err != nil {
		return nil, err
	}
	switch {
	case !ok:
		return nil, &refusal{fmt.Errorf("job %q: %w", c.JobID, ErrNotFound)}
	case rec.Stopped:
		return nil, refuse("job %q is stopped: it cannot be dispatched", c.JobID)
	}
	if err := rec.Job.CheckDispatch(c.Meta, c.Payload); err != nil {
		return nil, &refusal{err}
	}
	exists, err := getJSON(jobs, []byte(c.ChildID), &structs.JobRecord{})
	if err != nil {
		return nil, err
	}
	if exists {
		return nil, refuse("job %q exists already", c.ChildID)
	}
	child, err := rec.Job.DispatchChild(c.ChildID, c.Meta, c.Payload)
	if err != nil {
		return nil, err
	}
	return (&JobRegister{Job: child, SubmitTime: c.SubmitTime, EvalID: c.EvalID}).apply(b)
}
