package coordinator

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// DrainNode starts (enable) or ends a drain of a node, by ID or name. A
// deadline > 0 stops whatever is left on the node when it passes.
func (s *Server) DrainNode(idOrName string, enable bool, deadline time.Duration) (*structs.NodeRecord, error) {
	n, err := s.findNode(idOrName)
	if err != nil {
		return nil, err
	}
	c := &state.NodeDrain{NodeID: n.ID, Eligible: !enable}
	if enable {
		now := time.Now()
		c.Drain = &structs.Drain{Started: now.UnixNano()}
		if deadline > 0 {
			c.Drain.Deadline = now.Add(deadline).UnixNano()
		}
	}
	if _, _, err := s.apply(c); err != nil {
		return nil, err
	}
	return s.store.Node(n.ID)
}

func (s *Server) findNode(idOrName string) (*structs.NodeRecord, error) {
	nodes, err := s.store.Nodes()
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

// drainStep is a leader duty run on the node watcher's tick: for every
// draining node it stops allocations a few at a time, so that no group
// has more than its update.max_parallel copies not running, and stops
// all that is left once the deadline passes. The scheduler places the
// replacements on eligible nodes. A node with nothing left finishes its
// drain and stays ineligible.
func (s *Server) drainStep(now time.Time) error {
	var errs []error
	for _, id := range s.store.DrainingNodes() {
		n, err := s.store.Node(id)
		if err != nil {
			return err
		}
		if n != nil && n.Drain != nil {
			errs = append(errs, s.drainNode(n, now))
		}
	}
	return errors.Join(errs...)
}

type groupKey struct{ job, group string }

func (s *Server) drainNode(n *structs.NodeRecord, now time.Time) error {
	allocs, err := s.store.NodeAllocs(n.ID)
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
		s.log.Info("node drain complete", "node", n.Name)
		_, _, err := s.apply(&state.NodeDrain{NodeID: n.ID, Eligible: false})
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
				b, err := s.migrationBudget(a)
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
		s.log.Info("draining", "node", n.Name, "job", job, "stopping", len(byJob[job]))
		e := &structs.Eval{ID: newEvalID(), JobID: job, TriggeredBy: "node-drain", Status: structs.EvalPending}
		if _, _, err := s.apply(&state.PlanApply{Stop: byJob[job], Eval: e}); err != nil {
			return err
		}
	}
	return nil
}

// migrationBudget is how many more of a's group may stop now: the group's
// max_parallel minus the copies not running (migrations in flight).
func (s *Server) migrationBudget(a *structs.Alloc) (int, error) {
	rec, err := s.store.Job(a.JobID)
	if err != nil || rec == nil || rec.Stopped {
		return 0, err
	}
	g := rec.Job.Lookup(a.Group)
	if g == nil {
		return 0, nil
	}
	allocs, err := s.store.JobAllocs(a.JobID)
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
