package sched

import (
	"testing"

	"github.com/strata-run/strata/spec"
)

// Allocations on a down node whose group has a disconnect block are
// "unknown": replaced or not according to disconnect.replace, never
// stopped while the node is away, and on return the original is kept.
func TestDisconnectUnknownAllocations(t *testing.T) {
	f := false
	down := newNode("away", withNode(func(n *Node) { n.Status = NodeDown }))
	up := newNode("up")
	unknown := func() *Allocation {
		a := existing("orig", "web", "g", 0, 0, "away")
		a.ClientStatus, a.CreateIndex = ClientUnknown, 10
		return a
	}
	cases := []struct {
		name       string
		disconnect *spec.Disconnect
		wantPlace  int
	}{
		{"replace=false keeps the index, places nothing", &spec.Disconnect{LostAfter: spec.Duration(3600e9), Replace: &f}, 0},
		{"replace defaults to true: a replacement is placed", &spec.Disconnect{LostAfter: spec.Duration(3600e9)}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newGroup("g", 1, newTask("t", "wasm", 100, 64))
			g.Disconnect = c.disconnect
			plan := mustSchedule(t, &Request{EvalID: "e1", Job: newJob("web", g),
				Nodes: []*NodeState{down, up}, Existing: []*Allocation{unknown()}})
			if len(plan.Stop) != 0 {
				t.Fatalf("an unknown allocation was stopped: %+v", plan.Stop[0])
			}
			if len(plan.Place) != c.wantPlace {
				t.Fatalf("placed %d, want %d", len(plan.Place), c.wantPlace)
			}
			for _, p := range plan.Place {
				if p.NodeID != "up" || p.Index != 0 {
					t.Fatalf("replacement on %s index %d", p.NodeID, p.Index)
				}
			}
		})
	}

	// The node returns: the original reports running again next to its
	// replacement; one stops: the one disconnect.reconcile does not keep
	// (keep_original when it is not written).
	for _, c := range []struct{ reconcile, stopped string }{
		{"", "repl"},
		{spec.ReconcileKeepOriginal, "repl"},
		{spec.ReconcileKeepReplacement, "orig"},
	} {
		g := newGroup("g", 1, newTask("t", "wasm", 100, 64))
		g.Disconnect = &spec.Disconnect{LostAfter: spec.Duration(3600e9), Reconcile: c.reconcile}
		orig := unknown()
		orig.ClientStatus = ClientRunning
		orig.CreateIndex = 10
		repl := existing("repl", "web", "g", 0, 0, "up")
		repl.CreateIndex = 20
		back := newNode("away")
		plan := mustSchedule(t, &Request{EvalID: "e2", Job: newJob("web", g),
			Nodes: []*NodeState{back, up}, Existing: []*Allocation{repl, orig}})
		if len(plan.Stop) != 1 || plan.Stop[0].ID != c.stopped || len(plan.Place) != 0 {
			t.Fatalf("reconcile %q, after reconnect: stop %v place %d; want %s stopped and nothing placed", c.reconcile, plan.Stop, len(plan.Place), c.stopped)
		}
	}
}

// Without a disconnect block a down node's allocations are stopped and
// replaced (they were marked lost by the coordinator, or are about to be).
func TestDownNodeWithoutDisconnectReplaces(t *testing.T) {
	down := newNode("away", withNode(func(n *Node) { n.Status = NodeDown }))
	g := newGroup("g", 1, newTask("t", "wasm", 100, 64))
	lost := existing("orig", "web", "g", 0, 0, "away")
	lost.ClientStatus = ClientLost
	plan := mustSchedule(t, &Request{EvalID: "e1", Job: newJob("web", g),
		Nodes: []*NodeState{down, newNode("up")}, Existing: []*Allocation{lost}})
	if len(plan.Place) != 1 || plan.Place[0].NodeID != "up" {
		t.Fatalf("lost allocation not replaced on the live node: %+v", plan.Place)
	}
}
