package sched

import (
	"errors"
	"math/rand/v2"
	"slices"
)

// randomPortAttempts bounds the random draws for a dynamic port before
// falling back to a linear scan of the range (Nomad uses 20 as well).
const randomPortAttempts = 20

var errPortsExhausted = errors.New("sched: dynamic port range exhausted after feasibility said otherwise")

// assignPorts returns the ports of one copy of g on the node: static ports
// as asked, dynamic ports drawn from the seeded generator, none of them in
// use on the node (including by earlier placements of this plan) and no
// two equal.
func assignPorts(r *rand.Rand, ns *NodeState, d *nodeDelta, g *groupAsk) ([]PortMapping, error) {
	if len(g.ports) == 0 {
		return nil, nil
	}
	out := make([]PortMapping, len(g.ports))
	for i, a := range g.ports {
		out[i] = PortMapping{Label: a.label, Value: a.static, To: a.to}
	}
	taken := func(v int) bool {
		// out holds the static ports and the dynamic ones picked so far;
		// the others are still 0, outside the range.
		return portInUse(ns, d, v) || slices.ContainsFunc(out, func(m PortMapping) bool { return m.Value == v })
	}
	for i, a := range g.ports {
		if a.static != 0 {
			continue
		}
		v, ok := pickDynamicPort(r, taken)
		if !ok {
			return nil, errPortsExhausted
		}
		out[i].Value = v
	}
	return out, nil
}

// pickDynamicPort draws a free port of the dynamic range at random, then
// scans the range in order so that a nearly full range still works.
func pickDynamicPort(r *rand.Rand, taken func(int) bool) (int, bool) {
	for range randomPortAttempts {
		if v := MinDynamicPort + r.IntN(dynamicPortCount); !taken(v) {
			return v, true
		}
	}
	for v := MinDynamicPort; v <= MaxDynamicPort; v++ {
		if !taken(v) {
			return v, true
		}
	}
	return 0, false
}
