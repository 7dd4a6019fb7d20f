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
// per Schedule call, together with the per-node caches that depend only
// on the node and the group.
type groupAsk struct {
	index int // position in Job.Groups
	group *spec.Group
	res   Resources
	// drivers lists the tasks' drivers once each; driverReasons holds the
	// interned "missing driver" and "unhealthy driver" reasons of each.
	drivers       []string
	driverReasons []reasonID
	// volumes are the host volumes the group needs (volumes.go).
	volumes []volumeAsk
	// ports is every port of the group: its own networks', then each
	// task's, in declaration order.
	ports         []portAsk
	staticPorts   []int
	staticInRange int // static ports that fall inside the dynamic range
	dynamic       int // number of dynamic ports

	// constraints are the job's (the first nJob) then the group's, without
	// distinct_hosts, which is distinct.
	constraints []constraintCheck
	nJob        int
	distinct    distinctHosts
	affinities  []affinityCheck
	affinitySum float64 // sum of |weight|
	spreads     []*spreadScorer
	// perNode: a constraint or affinity reads a value unique to a node, so
	// results cannot be shared per computed class.
	perNode bool
	limit   int // feasible nodes ranked per placement

	// static[i] is 1 + the node-only reason for node i, 0 when not
	// computed yet; affinity[i] is node i's affinity score, valid once
	// static[i] says feasible. Both are allocated on first use.
	static   []reasonID
	affinity []float64
	// byClass caches, per computed class, the constraint and driver checks
	// and the affinity score (when !perNode).
	byClass map[string]classResult
}

// classResult is what nodes of one computed class get from a group's
// class-level checks.
type classResult struct {
	reason   reasonID
	affinity float64
	spread   []int32 // bucket per spread, bucketUnknown when per node
}

// hasClassChecks reports whether the group has constraints or affinities:
// without them feasibility never looks at computed classes.
func (a *groupAsk) hasClassChecks() bool {
	return len(a.constraints) > 0 || len(a.affinities) > 0
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
		a, err := newGroupAsk(job, g)
		if err != nil {
			return nil, fmt.Errorf("%w: job %q: group %q: %v", ErrInvalidJob, job.ID, g.Name, err)
		}
		a.index = i
		asks[i] = a
	}
	return asks, nil
}

func newGroupAsk(job *spec.Job, g *spec.Group) (*groupAsk, error) {
	if g.Count < 0 {
		return nil, fmt.Errorf("count %d is negative", g.Count)
	}
	a := &groupAsk{group: g, drivers: groupDrivers(g)}
	owner := map[string]int{} // port label -> index of the task asking, -1 for the group
	for _, n := range g.Networks {
		if n == nil {
			return nil, fmt.Errorf("nil group network")
		}
		for _, p := range n.Ports {
			if err := a.addPort(g, -1, p, owner); err != nil {
				return nil, err
			}
		}
	}
	for ti, t := range g.Tasks {
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
				if err := a.addPort(g, ti, p, owner); err != nil {
					return nil, err
				}
			}
		}
	}
	a.constraints, a.nJob, a.distinct = compileConstraints(job, g)
	a.affinities, a.affinitySum = compileAffinities(job, g)
	a.spreads = newSpreadScorers(job, g)
	for i := range a.constraints {
		a.perNode = a.perNode || a.constraints[i].unique()
	}
	for i := range a.affinities {
		a.perNode = a.perNode || a.affinities[i].unique()
	}
	return a, nil
}

// addPort adds one port asked by task ti of g, or by the group's own
// networks when ti is -1.
func (a *groupAsk) addPort(g *spec.Group, ti int, p *spec.Port, owners map[string]int) error {
	if p == nil {
		return fmt.Errorf("%s: nil port", portOwner(g, ti))
	}
	if prev, dup := owners[p.Label]; dup {
		return fmt.Errorf("port label %q used by %s and %s; labels must be unique in a group", p.Label, portOwner(g, prev), portOwner(g, ti))
	}
	owners[p.Label] = ti
	a.ports = append(a.ports, portAsk{label: p.Label, static: p.Static, to: p.To})
	switch {
	case p.Static < 0 || p.Static > 65535:
		return fmt.Errorf("%s: port %q: static port %d out of range", portOwner(g, ti), p.Label, p.Static)
	case p.Static == 0:
		a.dynamic++
		return nil
	}
	for _, s := range a.staticPorts {
		if s == p.Static {
			return fmt.Errorf("%s: port %q: static port %d asked twice", portOwner(g, ti), p.Label, p.Static)
		}
	}
	a.staticPorts = append(a.staticPorts, p.Static)
	if p.Static >= MinDynamicPort && p.Static <= MaxDynamicPort {
		a.staticInRange++
	}
	return nil
}

// portOwner names who asks for a port, for errors: task ti of g, or the
// group's own networks when ti is -1.
func portOwner(g *spec.Group, ti int) string {
	if ti < 0 {
		return "group network"
	}
	return fmt.Sprintf("task %q", g.Tasks[ti].Name)
}
