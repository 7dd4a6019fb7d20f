package state

import (
	"slices"
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// Allocation IDs are time-ordered, so people name an allocation by the
// random end of its ID as readily as by its start.
func TestAllocsByPrefixOrSuffix(t *testing.T) {
	h := newHarness(t)
	h.must(&PlanApply{Place: []*sched.Allocation{
		testAlloc("0190aaaa-0000-7000-8000-00000000beef", "web", "n1"),
		testAlloc("0190aaaa-0000-7000-8000-00000000cafe", "web", "n2"),
		testAlloc("0190bbbb-0000-7000-8000-0000000000ff", "db", "n2"),
	}})
	for q, want := range map[string][]string{
		"":         {"0190aaaa-0000-7000-8000-00000000beef", "0190aaaa-0000-7000-8000-00000000cafe", "0190bbbb-0000-7000-8000-0000000000ff"},
		"0190aaaa": {"0190aaaa-0000-7000-8000-00000000beef", "0190aaaa-0000-7000-8000-00000000cafe"},
		"beef":     {"0190aaaa-0000-7000-8000-00000000beef"},
		"00cafe":   {"0190aaaa-0000-7000-8000-00000000cafe"},
		"dead":     nil,
	} {
		got, err := h.st.AllocsByPrefix(q)
		var ids []string
		for _, a := range got {
			ids = append(ids, a.ID)
		}
		if err != nil || !slices.Equal(ids, want) {
			t.Errorf("AllocsByPrefix(%q) = %v, %v; want %v", q, ids, err, want)
		}
	}
}

func TestModulesAndEvalsAreOrdered(t *testing.T) {
	h := newHarness(t)
	for _, m := range []structs.Module{{Name: "b", Version: "2.0.0", Digest: "d1"}, {Name: "a", Version: "9.0.0", Digest: "d2"},
		{Name: "b", Version: "1.0.0", Digest: "d3"}} {
		h.must(&ModuleRegister{Module: m})
	}
	var got []string
	for _, m := range mustGet(h.st.Modules()) {
		got = append(got, m.Name+"@"+m.Version)
	}
	if want := []string{"a@9.0.0", "b@2.0.0", "b@1.0.0"}; !slices.Equal(got, want) {
		t.Fatalf("modules %v, want %v (by name, then push order)", got, want)
	}
	h.must(&EvalUpsert{Evals: []*structs.Eval{{ID: "z", Status: structs.EvalPending}}},
		&EvalUpsert{Evals: []*structs.Eval{{ID: "a", Status: structs.EvalBlocked}}},
		&EvalUpsert{Evals: []*structs.Eval{{ID: "m", Status: structs.EvalPending}}})
	if got := evalIDs(mustGet(h.st.Evals(structs.EvalPending))); !slices.Equal(got, []string{"z:pending", "m:pending"}) {
		t.Fatalf("pending evaluations %v, want creation order", got)
	}
	if got := evalIDs(mustGet(h.st.Evals(""))); !slices.Equal(got, []string{"z:pending", "a:blocked", "m:pending"}) {
		t.Fatalf("all evaluations %v", got)
	}
}
