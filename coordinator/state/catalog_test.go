package state

import (
	"slices"
	"testing"

	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
)

// catalogFollower applies every batch's Effects.Catalog to a Holder, as
// the coordinator does, and checks after each batch that the Holder
// holds what the state's CatalogSnapshot says: a stream of deltas and a
// rebuild never disagree.
type catalogFollower struct {
	h      *harness
	holder *registry.Holder
}

func (f *catalogFollower) must(t *testing.T, cmds ...Command) *registry.Delta {
	t.Helper()
	fx := f.h.must(cmds...)
	if fx.Catalog != nil {
		if fx.Catalog.Index != fx.Index {
			t.Fatalf("delta at %d, batch at %d", fx.Catalog.Index, fx.Index)
		}
		if _, err := f.holder.Apply(*fx.Catalog); err != nil {
			t.Fatalf("delta %+v refused: %v", fx.Catalog, err)
		}
	}
	want, err := f.h.st.CatalogSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	got := f.holder.Snapshot()
	if got.Len() != want.Len() || !slices.Equal(got.Services(), want.Services()) {
		t.Fatalf("deltas give %v (%d), the state %v (%d)", got.Services(), got.Len(), want.Services(), want.Len())
	}
	for _, svc := range want.Services() {
		for _, e := range want.Instances(svc, "") {
			g, ok := got.Instance(e.ID)
			if !ok || g.Port != e.Port || g.NodeAddress != e.NodeAddress || g.Health != e.Health || g.Canary != e.Canary || !slices.Equal(g.Tags, e.Tags) {
				t.Fatalf("instance %s: deltas give %+v, the state %+v", e.ID, g, e.Instance)
			}
		}
	}
	return fx.Catalog
}

func TestCatalogDeltas(t *testing.T) {
	h := newHarness(t)
	f := &catalogFollower{h: h, holder: registry.NewHolder(nil)}
	n1 := testNode("n1", 4000, 4000)
	n1.Address = "10.0.0.1"
	f.must(t, &NodeRegister{Node: n1}, &PlanApply{Place: []*sched.Allocation{testAlloc("a1", "web", "n1"), testAlloc("a2", "web", "n1")}})

	ep := func(alloc string, port int, tags ...string) registry.Endpoint {
		return registry.Endpoint{Service: "Web", Tags: tags, AllocID: alloc, NodeID: "n1", NodeName: "n1", Address: "10.0.0.1", Port: port, Healthy: true}
	}
	report := func(alloc string, eps ...registry.Endpoint) *AllocUpdate {
		return &AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: alloc, ClientStatus: sched.ClientRunning, Endpoints: eps}}}
	}
	d := f.must(t, report("a1", ep("a1", 20001, "prod"), registry.Endpoint{Service: "metrics", AllocID: "a1", NodeID: "n1", NodeName: "n1", Address: "10.0.0.1", Port: 9100, Healthy: true}))
	if d == nil || len(d.Upserts) != 2 || len(d.Deletes) != 0 {
		t.Fatalf("first report: delta %+v, want two upserts", d)
	}
	if in := d.Upserts[0]; in.ID != "a1/Web/0" || in.NodeAddress != "10.0.0.1" || in.Node != "n1" || in.AllocID != "a1" || in.Health != registry.HealthPassing {
		t.Fatalf("instance %+v", in)
	}
	if d.Upserts[1].ID != "a1/metrics/1" {
		t.Fatalf("second instance %q, want a1/metrics/1", d.Upserts[1].ID)
	}

	// The same endpoints again (a new description): no delta.
	again := report("a1", ep("a1", 20001, "prod"), registry.Endpoint{Service: "metrics", AllocID: "a1", NodeID: "n1", NodeName: "n1", Address: "10.0.0.1", Port: 9100, Healthy: true})
	again.Updates[0].Description = "still running"
	if d := f.must(t, again); d != nil {
		t.Fatalf("an unchanged report made delta %+v", d)
	}

	// Two allocations in one batch, one of them twice: one delta with the last.
	d = f.must(t, report("a2", ep("a2", 20002)), report("a2", ep("a2", 20003, "canary")))
	if d == nil || len(d.Upserts) != 1 || d.Upserts[0].Port != 20003 {
		t.Fatalf("delta %+v, want a2 on 20003 only", d)
	}

	// Health turns critical, then the endpoint list shrinks.
	sick := ep("a2", 20003, "canary")
	sick.Healthy = false
	if d = f.must(t, report("a2", sick)); d == nil || d.Upserts[0].Health != registry.HealthCritical {
		t.Fatalf("delta %+v, want a2 critical", d)
	}
	if d = f.must(t, report("a1", ep("a1", 20001, "prod"))); d == nil || !slices.Equal(d.Deletes, []string{"a1/metrics/1"}) || len(d.Upserts) != 0 {
		t.Fatalf("delta %+v, want a1/metrics/1 deleted and nothing upserted", d)
	}

	// The node re-registers at another address: its instances follow.
	n1.Address = "10.0.0.7"
	d = f.must(t, &NodeRegister{Node: n1})
	if d == nil || len(d.Upserts) != 2 || d.Upserts[0].NodeAddress != "10.0.0.7" || d.Upserts[1].NodeAddress != "10.0.0.7" {
		t.Fatalf("delta %+v, want both instances at the node's new address", d)
	}
	if d := f.must(t, &NodeRegister{Node: n1}); d != nil {
		t.Fatalf("a re-registration at the same address made delta %+v", d)
	}

	// A stop and a failure take their instances out.
	d = f.must(t, &PlanApply{Stop: []AllocStop{{ID: "a1", Desc: "stopped"}}}, &AllocUpdate{NodeID: "n1", Updates: []ClientUpdate{{AllocID: "a2", ClientStatus: sched.ClientFailed}}})
	if d == nil || !slices.Equal(d.Deletes, []string{"a1/Web/0", "a2/Web/0"}) || f.holder.Snapshot().Len() != 0 {
		t.Fatalf("delta %+v, %d left, want both deleted", d, f.holder.Snapshot().Len())
	}
}
