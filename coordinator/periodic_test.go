package coordinator

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

func cronJob(id, cron string) *spec.Job {
	return &spec.Job{ID: id, Type: spec.JobTypeBatch, Priority: 50, Periodic: &spec.Periodic{Cron: cron},
		Groups: []*spec.Group{{Name: "g", Count: 1, Tasks: []*spec.Task{{Name: "t", Driver: "wasm",
			Config: spec.TaskConfig{Module: "m@1.0.0", Mode: "command"}, Resources: spec.Resources{CPU: 100, MemoryMB: 64}}}}}}
}

// syncRecorder is a commandRecorder safe for the launcher's goroutine.
type syncRecorder struct {
	mu sync.Mutex
	r  *commandRecorder
}

func (s *syncRecorder) apply(c state.Command) (any, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.apply(c)
}

// children lists the child jobs of parent, sorted.
func children(t *testing.T, st *state.Store, parent string) []string {
	t.Helper()
	jobs, err := st.Jobs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, j := range jobs {
		if j.Job.ParentID == parent {
			out = append(out, j.Job.ID)
		}
	}
	slices.Sort(out)
	return out
}

func childIDs(parent string, ticks ...int64) []string {
	var out []string
	for _, tk := range ticks {
		out = append(out, spec.PeriodicChildID(parent, time.Unix(tk, 0)))
	}
	slices.Sort(out)
	return out
}

// runLauncher runs a launcher (a leader's term) until the returned stop
// is called.
func runLauncher(st *state.Store, rec *syncRecorder) (stop func()) {
	p := newPeriodicLauncher(st, rec.apply, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// The launcher launches one child per tick; a new leader after a gap
// launches the latest missed tick at once, once, then keeps the
// schedule; no tick is launched twice.
func TestPeriodicLauncherAcrossLeaders(t *testing.T) {
	st := openStore(t)
	synctest.Test(t, func(t *testing.T) {
		rec := &syncRecorder{r: &commandRecorder{t: t, store: st}}
		t0 := time.Now().Unix() // synctest's clock: 2000-01-01, a multiple of 2 s
		if _, _, err := rec.apply(&state.JobRegister{Job: cronJob("cron", "*/2 * * * * * *"), SubmitTime: time.Now().UnixNano(), EvalID: "e0"}); err != nil {
			t.Fatal(err)
		}
		stop := runLauncher(st, rec)
		testutil.Elapse(7 * time.Second)
		if got, want := children(t, st, "cron"), childIDs("cron", t0+2, t0+4, t0+6); !slices.Equal(got, want) {
			t.Fatalf("first leader launched %v, want %v", got, want)
		}
		stop() // leadership lost at t0+7: ticks t0+8 and t0+10 pass without a leader
		testutil.Elapse(4 * time.Second)
		stop = runLauncher(st, rec) // a new leader at t0+11
		synctest.Wait()
		if got, want := children(t, st, "cron"), childIDs("cron", t0+2, t0+4, t0+6, t0+10); !slices.Equal(got, want) {
			t.Fatalf("new leader launched %v, want %v (the latest missed tick, once)", got, want)
		}
		// Two leaders overlapping (an old one not yet stepped down) still
		// launch each tick once: the launch is keyed by job and tick.
		stop2 := runLauncher(st, rec)
		testutil.Elapse(4 * time.Second)
		stop()
		stop2()
		if got, want := children(t, st, "cron"), childIDs("cron", t0+2, t0+4, t0+6, t0+10, t0+12, t0+14); !slices.Equal(got, want) {
			t.Fatalf("launched %v, want %v", got, want)
		}
		parent, _ := st.Job("cron")
		if parent.PeriodicLast != t0+14 {
			t.Fatalf("PeriodicLast = %d, want %d", parent.PeriodicLast, t0+14)
		}
	})
}

// prohibit_overlap skips a tick while a child runs; disabled and stopped
// jobs launch nothing.
func TestPeriodicLauncherOverlapAndDisabled(t *testing.T) {
	st := openStore(t)
	synctest.Test(t, func(t *testing.T) {
		rec := &syncRecorder{r: &commandRecorder{t: t, store: st}}
		t0 := time.Now().Unix()
		j := cronJob("nightly", "*/2 * * * * * *")
		j.Periodic.ProhibitOverlap = true
		off := cronJob("off", "*/2 * * * * * *")
		no := false
		off.Periodic.Enabled = &no
		now := time.Now().UnixNano()
		for _, c := range []state.Command{
			&state.JobRegister{Job: j, SubmitTime: now, EvalID: "e0"},
			&state.JobRegister{Job: off, SubmitTime: now, EvalID: "e1"},
			&state.JobRegister{Job: cronJob("gone", "*/2 * * * * * *"), SubmitTime: now, EvalID: "e2"},
			&state.JobStop{JobID: "gone", EvalID: "e3"},
		} {
			if _, _, err := rec.apply(c); err != nil {
				t.Fatal(err)
			}
		}
		stop := runLauncher(st, rec)
		defer stop()
		testutil.Elapse(3 * time.Second)
		first := childIDs("nightly", t0+2)
		if got := children(t, st, "nightly"); !slices.Equal(got, first) {
			t.Fatalf("launched %v, want %v", got, first)
		}
		// The child runs through the ticks t0+4 and t0+6: both skipped.
		if _, _, err := rec.apply(&state.PlanApply{Place: []*sched.Allocation{{ID: "a1", Name: first[0] + ".g[0]", JobID: first[0], Group: "g", NodeID: "n1",
			DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientRunning}}}); err != nil {
			t.Fatal(err)
		}
		testutil.Elapse(4 * time.Second)
		if got := children(t, st, "nightly"); !slices.Equal(got, first) {
			t.Fatalf("launched %v while the child ran, want %v", got, first)
		}
		// It completes (its evaluation done): the next tick launches.
		child, err := st.Job(first[0])
		if err != nil {
			t.Fatal(err)
		}
		ev, err := st.Eval(child.LatestEvalID)
		if err != nil {
			t.Fatal(err)
		}
		ev.Status = structs.EvalComplete
		for _, c := range []state.Command{&state.EvalUpsert{Evals: []*structs.Eval{ev}}, report("n1", map[string]string{"a1": "complete"})} {
			if _, _, err := rec.apply(c); err != nil {
				t.Fatal(err)
			}
		}
		testutil.Elapse(2 * time.Second)
		if got, want := children(t, st, "nightly"), childIDs("nightly", t0+2, t0+8); !slices.Equal(got, want) {
			t.Fatalf("after the child completed: %v, want %v", got, want)
		}
		for _, id := range []string{"off", "gone"} {
			if got := children(t, st, id); len(got) != 0 {
				t.Fatalf("%s launched %v", id, got)
			}
		}
	})
}

func TestLatestTick(t *testing.T) {
	sch, err := (&spec.Periodic{Cron: "*/2 * * * * * *"}).Schedule()
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		from, now time.Time
		want      time.Time
	}{
		{base, base.Add(time.Second), time.Time{}},
		{base, base.Add(2 * time.Second), base.Add(2 * time.Second)},
		{base, base.Add(9 * time.Second), base.Add(8 * time.Second)},
		{base, base.Add(400 * 24 * time.Hour), base.Add(400 * 24 * time.Hour)},
	} {
		if got := latestTick(sch, c.from, c.now); !got.Equal(c.want) {
			t.Errorf("latestTick(%v, %v) = %v, want %v", c.from, c.now, got, c.want)
		}
	}
	if strings.Contains(spec.PeriodicChildID("a", base), "+") {
		t.Fatal("child ID has a zone")
	}
}

// Through a server: a registered periodic job is never placed itself,
// and the leader launches its children, each with its evaluation.
func TestPeriodicJobThroughServer(t *testing.T) {
	s := startTestServer(t)
	j := dockerJob("every", nil)
	j.Type = spec.JobTypeBatch
	j.Periodic = &spec.Periodic{Cron: "* * * * * * *"} // every second
	res, err := s.RegisterJob(j)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "two children", 20*time.Second, func() bool { return len(children(t, s.store, "every")) >= 2 })
	parent, err := s.store.Job("every")
	if err != nil {
		t.Fatal(err)
	}
	if parent.LatestDeployment != "" {
		t.Fatalf("the periodic job started deployment %s", parent.LatestDeployment)
	}
	waitState(t, s, "the parent's evaluation", 10*time.Second, func() bool {
		e, _ := s.store.Eval(res.EvalID)
		return e != nil && e.Status == structs.EvalComplete
	})
	if allocs, _ := s.store.JobAllocs("every"); len(allocs) != 0 {
		t.Fatalf("the periodic job itself was placed: %d allocations", len(allocs))
	}
	for _, id := range children(t, s.store, "every") {
		c, _ := s.store.Job(id)
		if c.LatestEvalID == "" || c.Job.Periodic != nil {
			t.Fatalf("child %s: eval %q periodic %v", id, c.LatestEvalID, c.Job.Periodic)
		}
	}
}

// periodic force launches a child now, outside the schedule, through
// Nomad's route; a job that is not periodic is refused.
func TestPeriodicForce(t *testing.T) {
	s := startTestServer(t)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	j := dockerJob("yearly", nil)
	j.Type = spec.JobTypeBatch
	j.Periodic = &spec.Periodic{Cron: "0 0 1 1 *"}
	if _, err := s.RegisterJob(j); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterJob(dockerJob("web", nil)); err != nil {
		t.Fatal(err)
	}
	force := func(id string) (int, structs.PeriodicForceResponse, string) {
		req, _ := http.NewRequest(http.MethodPut, ts.URL+"/v1/job/"+id+"/periodic/force", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out structs.PeriodicForceResponse
		json.Unmarshal(b, &out)
		return resp.StatusCode, out, string(b)
	}
	code, out, body := force("yearly")
	if code != http.StatusOK || !out.Launched || !strings.HasPrefix(out.JobID, "yearly/periodic-") || out.EvalID == "" {
		t.Fatalf("force = %d %s", code, body)
	}
	if got := children(t, s.store, "yearly"); !slices.Equal(got, []string{out.JobID}) {
		t.Fatalf("children = %v, want %s", got, out.JobID)
	}
	// The child is read through Nomad's path, its ID escaped.
	get, err := http.Get(ts.URL + "/v1/job/" + url.PathEscape(out.JobID))
	if err != nil {
		t.Fatal(err)
	}
	var rec structs.JobRecord
	json.NewDecoder(get.Body).Decode(&rec)
	get.Body.Close()
	if get.StatusCode != http.StatusOK || rec.Job == nil || rec.Job.ParentID != "yearly" {
		t.Fatalf("GET the child: %d %+v", get.StatusCode, rec)
	}
	if st := jobStatusOf(&structs.JobRecord{Job: j}, nil, nil); st != jobRunning {
		t.Fatalf("a periodic job's status = %s, want running", st)
	}
	if code, _, body := force("web"); code != http.StatusBadRequest || !strings.Contains(body, "not periodic") {
		t.Fatalf("force of a service job = %d %s", code, body)
	}
	if code, _, body := force("nope"); code != http.StatusNotFound {
		t.Fatalf("force of a missing job = %d %s", code, body)
	}
}
