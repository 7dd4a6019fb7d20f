package state

import (
	"fmt"
	"slices"
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// Nodes join in any order; snapshots list them sorted by ID, and each
// node's later changes land on its own entry.
func TestUsageIndexKeepsNodesSorted(t *testing.T) {
	u := usageIndex{pos: map[string]int{}, draining: map[string]bool{}, byNode: map[string]idList{}}
	for i, id := range []string{"c", "a", "d", "b"} {
		u.publish(map[string]*usageDelta{id: {node: &sched.Node{ID: id, Name: id}, res: sched.Resources{CPU: i + 1}}})
	}
	u.publish(map[string]*usageDelta{"a": {res: sched.Resources{CPU: 10}}, "d": {res: sched.Resources{CPU: 10}}})
	var got []string
	for _, ns := range u.snapshot() {
		got = append(got, fmt.Sprintf("%s:%d", ns.Node.ID, ns.Used.CPU))
	}
	if want := []string{"a:12", "b:4", "c:1", "d:13"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot %v, want %v", got, want)
	}
	if ns := u.get("b"); ns == nil || ns.Used.CPU != 4 {
		t.Fatalf("get(b) = %+v", ns)
	}
}

// The allocation cache drops its oldest entries past allocCacheMax.
func TestAllocCacheDropsOldest(t *testing.T) {
	c := allocCache{m: map[string]*structs.Alloc{}}
	for i := range allocCacheMax + 10 {
		id := fmt.Sprint(i)
		c.publish(map[string]pendingAlloc{id: {a: &structs.Alloc{Allocation: sched.Allocation{ID: id}}}})
	}
	c.publish(map[string]pendingAlloc{"15": {a: &structs.Alloc{}}}) // an update keeps its place
	if len(c.m) != allocCacheMax {
		t.Fatalf("%d entries, want %d", len(c.m), allocCacheMax)
	}
	for _, id := range []string{"0", "9"} {
		if c.get(id) != nil {
			t.Fatalf("%s should have been dropped", id)
		}
	}
	for _, id := range []string{"10", "15", fmt.Sprint(allocCacheMax + 9)} {
		if c.get(id) == nil {
			t.Fatalf("%s should still be cached", id)
		}
	}
}

// An allocation placed and finished in the same batch (a follower or a
// restarted server applies many entries at once) leaves its port free,
// as applying the entries one at a time does.
func TestUsageIndexPortPlacedAndFreedInOneBatch(t *testing.T) {
	h := newHarness(t)
	h.must(&NodeRegister{Node: testNode("n1", 1000, 1024)})
	a := testAlloc("a1", "web", "n1")
	a.Ports = []sched.PortMapping{{Label: "http", Value: 24000}}
	b := testAlloc("a2", "web", "n1")
	b.Ports = []sched.PortMapping{{Label: "http", Value: 24001}}
	h.must(&PlanApply{Place: []*sched.Allocation{b}})
	h.must(
		&PlanApply{Place: []*sched.Allocation{a}},
		&AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientComplete}}},
		&AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "a2", ClientStatus: sched.ClientFailed}}},
	)
	if used := h.st.NodeState("n1").UsedPorts; len(used) != 0 {
		t.Fatalf("ports still used after their allocations finished in the batch that placed one: %v", used)
	}
}
