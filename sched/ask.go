package sched

import (
	"fmt"

	"github.com/strata-run/strata/spec"
)

// portAsk is one port a group asks for; static == 0 asks for a dynamic one.
type portAsk struct {
	label  string
	static int
	to     int
}

// groupAsk is what one copy of a group needs from a node, computed once
// per Schedule call, together with the per-node feasibility cache that
// depends only on the node and the group.
type groupAsk struct {
	index int // position in Job.Groups
	group *spec.Group
	res   Resources
	// drivers lists the tasks' drivers once each.
	drivers []string
	// ports is every port of every task, in task then declaration order.
	ports         []portAsk
	staticPorts   []int
	staticInRange int // static ports that fall inside the dynamic range
	dynamic       int // number of dynamic ports

	// static[i] is 1 + nodeStaticReason for node i, 0 when not computed yet.
	static []reasonID
}

// newGroupAsks validates the job's groups and sums what each copy asks.
func newGroupAsks(job *spec.Job) ([]*groupAsk, error) {
	asks := make([]*groupAsk, len(job.Groups))
	seen := make(map[string]bool, len(job.Groups))
	for i, g := range job.Groups {
		if g == nil {
			return nil, fmt.Errorf("%w: job %q: group %d is nil", ErrInvalidJob, job.ID, i)
		}
		if seen[g.Name] {
			return nil, fmt.Errorf("%w: job %q: group %q declared twice", ErrInvalidJob, job.ID, g.Name)
		}
		seen[g.Name] = true
		a, err := newGroupAsk(g)
		if err != nil {
			return nil, fmt.Errorf("%w: job %q: group %q: %v", ErrInvalidJob, job.ID, g.Name, err)
		}
		a.index = i
		asks[i] = a
	}
	return asks, nil
}

func newGroupAsk(g *spec.Group) (*groupAsk, error) {
	if g.Count < 0 {
		return nil, fmt.Errorf("count %d is negative", g.Count)
	}
	a := &groupAsk{group: g, drivers: groupDrivers(g)}
	owner := map[string]string{} // port label -> task
	for _, t := range g.Tasks {
		if t == nil {
			return nil, fmt.Errorf("nil task")
		}
		if t.Resources.CPU < 0 || t.Resources.MemoryMB < 0 {
			return nil, fmt.Errorf("task %q: negative resources", t.Name)
		}
		a.res = a.res.Add(Resources{CPU: t.Resources.CPU, MemoryMB: t.Resources.MemoryMB})
		for _, n := range t.Resources.Networks {
			if n == nil {
				return nil, fmt.Errorf("task %q: nil network", t.Name)
			}
			for _, p := range n.Ports {
				if err := a.addPort(t.Name, p, owner); err != nil {
					return nil, err
				}
			}
		}
	}
	return a, nil
}

func (a *groupAsk) addPort(task string, p *spec.Port, owner map[string]string) error {
	if p == nil {
		return fmt.Errorf("task %q: nil port", task)
	}
	if prev, dup := owner[p.Label]; dup {
		return fmt.Errorf("port label %q used by tasks %q and %q; labels must be unique in a group", p.Label, prev, task)
	}
	owner[p.Label] = task
	a.ports = append(a.ports, portAsk{label: p.Label, static: p.Static, to: p.To})
	switch {
	case p.Static < 0 || p.Static > 65535:
		return fmt.Errorf("task %q: port %q: static port %d out of range", task, p.Label, p.Static)
	case p.Static == 0:
		a.dynamic++
		return nil
	}
	for _, s := range a.staticPorts {
		if s == p.Static {
			return fmt.Errorf("task %q: port %q: static port %d asked twice", task, p.Label, p.Static)
		}
	}
	a.staticPorts = append(a.staticPorts, p.Static)
	if p.Static >= MinDynamicPort && p.Static <= MaxDynamicPort {
		a.staticInRange++
	}
	return nil
}
