package sched

import (
	"errors"
	"testing"

	"github.com/strata-run/strata/spec"
)

func withVolume(name string, readOnly bool) func(*NodeState) {
	return func(ns *NodeState) {
		if ns.Node.HostVolumes == nil {
			ns.Node.HostVolumes = map[string]HostVolume{}
		}
		ns.Node.HostVolumes[name] = HostVolume{Path: "/srv/" + name, ReadOnly: readOnly}
	}
}

func volumeGroup(count int, vols ...*spec.Volume) *spec.Group {
	g := newGroup("g", count, newTask("t", "wasm", 100, 64))
	g.Volumes = vols
	return g
}

// A group with host volumes goes only where each is declared, writable
// where it asks to write; the others are counted by reason.
func TestHostVolumeFeasibility(t *testing.T) {
	nodes := []*NodeState{
		newNode("none"),
		newNode("other", withVolume("logs", false)),
		newNode("ro", withVolume("data", true)),
		newNode("rw", withVolume("data", false)),
	}
	for _, tc := range []struct {
		name     string
		readOnly bool
		want     []string // nodes that may take it
		reasons  map[string]int
	}{
		{"read-only request", true, []string{"ro", "rw"}, map[string]int{"missing host volume data": 2}},
		{"read-write request", false, []string{"rw"}, map[string]int{"missing host volume data": 2, "host volume data is read-only": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := newJob("j", volumeGroup(5, &spec.Volume{Name: "d", Type: "host", Source: "data", ReadOnly: tc.readOnly}))
			plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes})
			placed := map[string]bool{}
			for _, a := range plan.Place {
				placed[a.NodeID] = true
			}
			for _, n := range tc.want {
				if !placed[n] {
					t.Errorf("nothing placed on %s", n)
				}
			}
			if len(placed) != len(tc.want) {
				t.Errorf("placed on %v, want only %v", placed, tc.want)
			}
			// Five copies on a cluster with room: nothing fails.
			if len(plan.Place) != 5 || len(plan.Failed) != 0 {
				t.Fatalf("placed %d, failed %v", len(plan.Place), plan.Failed)
			}
		})
	}
	// Where no node has the volume, the copies stay unplaced, counted by reason.
	job := newJob("j", volumeGroup(2, &spec.Volume{Name: "d", Type: "host", Source: "certs"}))
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: nodes})
	e := plan.Failed["g"]
	if len(plan.Place) != 0 || e == nil || e.Missing != 2 || e.Reasons["missing host volume certs"] != 4 || e.NodesFeasible != 0 {
		t.Fatalf("placed %d, explanation %+v", len(plan.Place), e)
	}
}

// The plan applier's re-check refuses a node that lost the volume since
// the plan was made, with the scheduler's reason.
func TestHostVolumeChecker(t *testing.T) {
	job := newJob("j", volumeGroup(1, &spec.Volume{Name: "d", Type: "host", Source: "data"}))
	c, err := NewChecker(job)
	if err != nil {
		t.Fatal(err)
	}
	a := &Allocation{Group: "g", Resources: Resources{CPU: 100, MemoryMB: 64}}
	if err := c.Fits(newNode("rw", withVolume("data", false)), a); err != nil {
		t.Fatalf("node with the volume: %v", err)
	}
	var fe *FitError
	if err := c.Fits(newNode("ro", withVolume("data", true)), a); !errors.As(err, &fe) || fe.Reason != "host volume data is read-only" {
		t.Fatalf("read-only node: %v", err)
	}
	if err := c.Fits(newNode("gone"), a); !errors.As(err, &fe) || fe.Reason != "missing host volume data" {
		t.Fatalf("node without the volume: %v", err)
	}
}
