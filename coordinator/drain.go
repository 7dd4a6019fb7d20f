package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// drainer drains nodes: the operator's write that starts or ends a drain
// (drain), and the leader duty that moves a draining node's allocations
// a few at a time (Run, step).
type drainer struct {
	store  *state.Store
	apply  applyFunc
	log    *slog.Logger
	ticker time.Duration // how often Run steps the drains
}

// drain starts (enable) or ends a drain of a node, by ID or name, at
// now. A deadline > 0 stops whatever is left on the node when it passes.
func (d *drainer) drain(idOrName string, enable bool, deadline time.Duration, now time.Time) (*structs.NodeRecord, error) {
	n, err := findNode(d.store, idOrName)
	if err != nil {
		return nil, err
	}
	c := &state.NodeDrain{NodeID: n.ID, Eligible: !enable}
	if enable {
		c.Drain = &structs.Drain{Started: now.UnixNano()}
		if deadline > 0 {
			c.Drain.Deadline = now.Add(deadline).UnixNano()
		}
	}
	if _, _, err := d.apply(c); err != nil {
		return nil, err
	}
	return d.store.Node(n.ID)
}

// findNode finds a node by ID, or by name if the name is unique.
func findNode(store *state.Store, idOrName string) (*structs.NodeRecord, error) {
	nodes, err := store.Nodes()
	if err != nil {
		return nil, err
	}
	var found *structs.NodeRecord
	for _, n := range nodes {
		if n.ID == idOrName {
			return n, nil
		}
		if n.Name == idOrName {
			if found != nil {
				return nil, fmt.Errorf("more than one node is named %q: give its ID", idOrName)
			}
			found = n
		}
	}
	if found == nil {
		return nil, fmt.Errorf("node %q: %w", idOrName, ErrNotFound)
	}
	return found, nil
}

// Run is a leader duty: it steps the drains until ctx ends.
func (d *drainer) Run(ctx context.Context) {
	tick := time.NewTicker(d.ticker)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if err := d.step(now); err != nil {
				d.log.Error("draining nodes", "err", err)
			}
		}
	}
}

// step, at now, stops allocations of every draining node a few at a
// time, so that no group has more than its update.max_parallel copies
// not running, and stops all that is left once the deadline passes. The
// scheduler places the replacements on eligible nodes. A node with
// nothing left finishes its drain and stays ineligible.
func (d *drainer) step(now time.Time) error {
	var errs []error
	for _, id := range d.store.DrainingNodes() {
		n, err := d.store.Node(id)
		if err != nil {
			return err
		}
		if n != nil && n.Drain != nil {
			errs = append(errs, d.drainNode(n, now))
		}
	}
	return errors.Join(errs...)
}

type groupKey struct{ job, group string }

func (d *drainer) drainNode(n *structs.NodeRecord, now time.Time) error {
	allocs, err := d.store.NodeAllocs(n.ID)
	if err != nil {
		return err
	}
	var live []*structs.Alloc
	for _, a := range allocs {
		if !a.Terminal() {
			live = append(live, a)
		}
	}
	if len(live) == 0 {
		d.log.Info("node drain complete", "node", n.Name)
		_, _, err := d.apply(&state.NodeDrain{NodeID: n.ID, Eligible: false})
		return err
	}
	pastDeadline := n.Drain.Deadline > 0 && now.UnixNano() > n.Drain.Deadline
	desc := "node drain"
	if pastDeadline {
		desc = "node drain deadline"
	}
	budget := map[groupKey]int{}
	byJob := map[string][]state.AllocStop{}
	var order []string
	for _, a := range live {
		k := groupKey{a.JobID, a.Group}
		if !pastDeadline {
			if _, ok := budget[k]; !ok {
				b, err := d.migrationBudget(a)
				if err != nil {
					return err
				}
				budget[k] = b
			}
			if budget[k] <= 0 {
				continue
			}
			budget[k]--
		}
		if _, ok := byJob[a.JobID]; !ok {
			order = append(order, a.JobID)
		}
		byJob[a.JobID] = append(byJob[a.JobID], state.AllocStop{ID: a.ID, Desc: desc})
	}
	// Each job's stops commit with the evaluation that replaces them, so
	// the scheduler sees the stops when it runs.
	for _, job := range order {
		d.log.Info("draining", "node", n.Name, "job", job, "stopping", len(byJob[job]))
		e := &structs.Eval{ID: newEvalID(), JobID: job, TriggeredBy: "node-drain", Status: structs.EvalPending}
		if _, _, err := d.apply(&state.PlanApply{Stop: byJob[job], Eval: e}); err != nil {
			return err
		}
	}
	return nil
}

// migrationBudget is how many more of a's group may stop now: the group's
// max_parallel minus the copies not running (migrations in flight).
func (d *drainer) migrationBudget(a *structs.Alloc) (int, error) {
	rec, err := d.store.Job(a.JobID)
	if err != nil || rec == nil || rec.Stopped {
		return 0, err
	}
	g := rec.Job.Lookup(a.Group)
	if g == nil {
		return 0, nil
	}
	allocs, err := d.store.JobAllocs(a.JobID)
	if err != nil {
		return 0, err
	}
	running := 0
	for _, o := range allocs {
		if o.Group == a.Group && o.JobVersion == rec.Version && o.DesiredStatus == sched.DesiredRun && o.ClientStatus == sched.ClientRunning {
			running++
		}
	}
	return maxParallel(rec.Job, g) - (g.Count - running), nil
}

// maxParallel is the group's update.max_parallel, else the job's, else 1.
func maxParallel(j *spec.Job, g *spec.Group) int {
	switch {
	case g.Update != nil && g.Update.MaxParallel > 0:
		return g.Update.MaxParallel
	case j.Update != nil && j.Update.MaxParallel > 0:
		return j.Update.MaxParallel
	}
	return 1
}
