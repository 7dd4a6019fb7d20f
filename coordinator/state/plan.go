package state

import (
	"fmt"
	"maps"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// CheckPlan is the plan applier's re-check (optimistic concurrency, as
// Nomad's plan applier): the scheduler planned on a snapshot, and other
// plans or node changes may have used the capacity since. Every
// placement is checked, with sched's feasibility check (sched.Checker)
// for the job version it was planned for, against its node as it is now:
// the committed state, plus what inflight adds (the placements of plans
// proposed but not yet applied; nil for none), minus what the plan's own
// stops release (so a destructive update on a full node can replace in
// place), plus the plan's placements accepted before it.
//
// It returns the command to commit: the plan's stops, the placements
// that still fit (their IDs left for the applier to stamp), and the
// evaluation with its new status: pending when a placement was rejected
// (it is planned again on a fresh snapshot), blocked when the plan
// itself found no node for some copies, complete otherwise. Each rejected
// placement has an error saying why (a *sched.FitError for one that no
// longer fits).
func (s *Store) CheckPlan(plan *sched.Plan, eval *structs.Eval, inflight func(*sched.NodeState)) (*PlanApply, []error, error) {
	cmd := &PlanApply{}
	v := planView{nodes: map[string]*sched.NodeState{}, store: s, inflight: inflight}
	for _, a := range plan.Stop {
		cmd.Stop = append(cmd.Stop, AllocStop{ID: a.ID, Desc: a.DesiredDesc})
	}
	for _, a := range plan.InPlace {
		cmd.InPlace = append(cmd.InPlace, AllocMove{ID: a.ID, JobVersion: a.JobVersion})
	}
	if err := v.releaseStops(plan.Stop); err != nil {
		return nil, nil, err
	}
	place, rejected, err := v.checkPlacements(eval.JobID, plan.Place)
	if err != nil {
		return nil, nil, err
	}
	cmd.Place = place
	for _, f := range plan.FollowUps {
		cmd.FollowUps = append(cmd.FollowUps, FollowUp{EvalID: f.EvalID, WaitUntil: f.WaitUntil, AllocIDs: f.AllocIDs})
	}
	done := *eval
	done.Status, done.Failed = structs.EvalComplete, plan.Failed
	if len(plan.Failed) > 0 {
		done.Status = structs.EvalBlocked
	}
	if len(rejected) > 0 {
		done.Status = structs.EvalPending
	}
	cmd.Eval = &done
	return cmd, rejected, nil
}

// planView holds private copies of the nodes a plan touches.
type planView struct {
	nodes    map[string]*sched.NodeState // nil: the node is not registered
	store    *Store
	inflight func(*sched.NodeState)
}

// node returns the plan's copy of a node, made on first use.
func (v *planView) node(id string) *sched.NodeState {
	if ns, ok := v.nodes[id]; ok {
		return ns
	}
	var c *sched.NodeState
	if ns := v.store.usage.get(id); ns != nil {
		cp := *ns
		cp.UsedPorts = maps.Clone(ns.UsedPorts)
		if cp.UsedPorts == nil {
			cp.UsedPorts = map[int]bool{}
		}
		if v.inflight != nil {
			v.inflight(&cp)
		}
		c = &cp
	}
	v.nodes[id] = c
	return c
}

// releaseStops gives back to the view what the stopped allocations hold
// in the current state (an allocation already terminal holds nothing).
func (v *planView) releaseStops(stops []*sched.Allocation) error {
	if len(stops) == 0 {
		return nil
	}
	return v.store.view(func(tx *bolt.Tx) error {
		for _, a := range stops {
			n := v.node(a.NodeID)
			if n == nil {
				continue
			}
			cur, err := getAlloc(tx, []byte(a.ID))
			if err != nil {
				return err
			}
			if !holds(cur) {
				continue
			}
			n.Used = sched.Resources{CPU: n.Used.CPU - cur.Resources.CPU, MemoryMB: n.Used.MemoryMB - cur.Resources.MemoryMB}
			for _, port := range cur.Ports {
				delete(n.UsedPorts, port.Value)
			}
		}
		return nil
	})
}

// checkPlacements returns the placements that fit, in order, each
// counted on its node before the next is checked, and why the others do
// not.
func (v *planView) checkPlacements(jobID string, place []*sched.Allocation) ([]*sched.Allocation, []error, error) {
	if len(place) == 0 {
		return nil, nil, nil
	}
	version := place[0].JobVersion
	job, err := v.store.JobVersion(jobID, version)
	if err != nil {
		return nil, nil, err
	}
	var check *sched.Checker
	if job != nil {
		if check, err = sched.NewChecker(job); err != nil {
			return nil, nil, fmt.Errorf("state: checking a plan of job %s v%d: %w", jobID, version, err)
		}
	}
	var fit []*sched.Allocation
	var rejected []error
	for _, p := range place {
		n := v.node(p.NodeID)
		switch {
		case check == nil:
			rejected = append(rejected, fmt.Errorf("state: placement %s: job %s version %d is not in the state", p.Name, jobID, version))
			continue
		case p.JobID != jobID || p.JobVersion != version:
			rejected = append(rejected, fmt.Errorf("state: placement %s is for job %s v%d in a plan for %s v%d", p.Name, p.JobID, p.JobVersion, jobID, version))
			continue
		case n == nil:
			rejected = append(rejected, &sched.FitError{NodeID: p.NodeID, Reason: "node unknown"})
			continue
		}
		if err := check.Fits(n, p); err != nil {
			rejected = append(rejected, err)
			continue
		}
		n.Used = n.Used.Add(p.Resources)
		for _, port := range p.Ports {
			n.UsedPorts[port.Value] = true
		}
		fit = append(fit, p)
	}
	return fit, rejected, nil
}
