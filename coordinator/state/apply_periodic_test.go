package state

import (
	"testing"

	"github.com/strata-run/strata/spec"
)

func periodicJob(id string) *spec.Job {
	j := testJob(id, "a@1.0.0")
	j.Type = "batch"
	j.Periodic = &spec.Periodic{Cron: "*/2 * * * * * *"}
	return j
}

func launched(t *testing.T, h *harness, c *PeriodicLaunch) *PeriodicLaunchResult {
	t.Helper()
	res, _ := h.apply(c)
	if res[0].Err != nil {
		t.Fatalf("launch refused: %v", res[0].Err)
	}
	return res[0].Value.(*PeriodicLaunchResult)
}

// A tick proposed twice (a retry, a new leader) launches one child; an
// older tick launches nothing; the parent keeps its last tick.
func TestPeriodicLaunchIdempotent(t *testing.T) {
	h := newHarness(t)
	h.must(&JobRegister{Job: periodicJob("cron"), SubmitTime: 1, EvalID: "e0"})
	r := launched(t, h, &PeriodicLaunch{JobID: "cron", Tick: 100, EvalID: "e1", SubmitTime: 2})
	if !r.Launched || r.ChildID != "cron/periodic-100" {
		t.Fatalf("first launch = %+v, want cron/periodic-100 launched", r)
	}
	if r := launched(t, h, &PeriodicLaunch{JobID: "cron", Tick: 100, EvalID: "e2", SubmitTime: 3}); r.Launched {
		t.Fatalf("the same tick again launched %+v", r)
	}
	if r := launched(t, h, &PeriodicLaunch{JobID: "cron", Tick: 98, EvalID: "e3", SubmitTime: 3}); r.Launched {
		t.Fatalf("an older tick launched %+v", r)
	}
	child, err := h.st.Job("cron/periodic-100")
	if err != nil || child == nil {
		t.Fatalf("child job: %v, %v", child, err)
	}
	if child.Job.ParentID != "cron" || child.Job.Periodic != nil || child.LatestEvalID != "e1" {
		t.Fatalf("child = parent %q periodic %v eval %q", child.Job.ParentID, child.Job.Periodic, child.LatestEvalID)
	}
	if e, _ := h.st.Eval("e2"); e != nil {
		t.Fatal("the repeated launch created an evaluation")
	}
	parent, _ := h.st.Job("cron")
	if parent.PeriodicLast != 100 {
		t.Fatalf("PeriodicLast = %d, want 100", parent.PeriodicLast)
	}
	// A skipped tick (prohibit_overlap) advances the last tick, no child.
	if r := launched(t, h, &PeriodicLaunch{JobID: "cron", Tick: 102, Skip: true, EvalID: "e4"}); r.Launched {
		t.Fatalf("a skipped tick launched %+v", r)
	}
	if c, _ := h.st.Job("cron/periodic-102"); c != nil {
		t.Fatal("a skipped tick registered a child")
	}
	// Force launches whatever the last tick, and leaves it.
	if r := launched(t, h, &PeriodicLaunch{JobID: "cron", Tick: 101, Force: true, EvalID: "e5"}); !r.Launched || r.ChildID != "cron/periodic-101" {
		t.Fatalf("force = %+v", r)
	}
	if parent, _ := h.st.Job("cron"); parent.PeriodicLast != 102 {
		t.Fatalf("PeriodicLast after force = %d, want 102", parent.PeriodicLast)
	}
}

func TestPeriodicLaunchRefused(t *testing.T) {
	h := newHarness(t)
	h.must(&JobRegister{Job: testJob("web", "a@1.0.0"), EvalID: "e0"})
	for _, c := range []*PeriodicLaunch{{JobID: "nope", Tick: 1}, {JobID: "web", Tick: 1}} {
		if err := h.refused(c); err == nil {
			t.Fatalf("%+v applied", c)
		}
	}
	h.must(&JobRegister{Job: periodicJob("cron"), EvalID: "e1"}, &JobStop{JobID: "cron", EvalID: "e2"})
	h.refused(&PeriodicLaunch{JobID: "cron", Tick: 1})
}

// A dispatch registers the child with the meta over the parent's and the
// payload; one the parent does not accept is refused, changing nothing.
func TestJobDispatch(t *testing.T) {
	h := newHarness(t)
	j := testJob("tc", "a@1.0.0")
	j.Type, j.Meta = "batch", map[string]string{"quality": "high"}
	j.Parameterized = &spec.Parameterized{Payload: spec.PayloadRequired, MetaRequired: []string{"input"}, MetaOptional: []string{"quality"}}
	h.must(&JobRegister{Job: j, EvalID: "e0"})
	for _, c := range []*JobDispatch{
		{JobID: "tc", ChildID: "tc/dispatch-1-aaaaaaaa", Payload: []byte("x"), EvalID: "e1"},                                                      // no meta input
		{JobID: "tc", ChildID: "tc/dispatch-1-aaaaaaaa", Meta: map[string]string{"input": "a"}, EvalID: "e1"},                                     // no payload
		{JobID: "tc", ChildID: "tc/dispatch-1-aaaaaaaa", Meta: map[string]string{"input": "a", "other": "b"}, Payload: []byte("x"), EvalID: "e1"}, // unknown meta
		{JobID: "nope", ChildID: "nope/dispatch-1-aaaaaaaa", EvalID: "e1"},
	} {
		h.refused(c)
	}
	if c, _ := h.st.Job("tc/dispatch-1-aaaaaaaa"); c != nil {
		t.Fatal("a refused dispatch registered a child")
	}
	h.must(&JobDispatch{JobID: "tc", ChildID: "tc/dispatch-1-aaaaaaaa", Meta: map[string]string{"input": "a.mp4"}, Payload: []byte("data"), EvalID: "e2"})
	c, err := h.st.Job("tc/dispatch-1-aaaaaaaa")
	if err != nil || c == nil {
		t.Fatalf("child: %v %v", c, err)
	}
	if c.Job.ParentID != "tc" || c.Job.Parameterized != nil || string(c.Job.Payload) != "data" ||
		c.Job.Meta["input"] != "a.mp4" || c.Job.Meta["quality"] != "high" || c.LatestEvalID != "e2" {
		t.Fatalf("child = %+v", c.Job)
	}
	h.refused(&JobDispatch{JobID: "tc", ChildID: "tc/dispatch-1-aaaaaaaa", Meta: map[string]string{"input": "b"}, Payload: []byte("x"), EvalID: "e3"})
}
