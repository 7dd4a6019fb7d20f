package coordinator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
)

// A blocking query returns when the state passes its index, not before.
func TestBlockingQuery(t *testing.T) {
	s := startTestServer(t)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	first, err := s.RegisterJob(dockerJob("first", nil))
	if err != nil {
		t.Fatal(err)
	}
	// Its evaluation commits too (blocked: no nodes); then all is quiet.
	waitState(t, s, "first evaluation", 10*time.Second, func() bool {
		e, _ := s.store.Eval(first.EvalID)
		return e != nil && e.Status == structs.EvalBlocked
	})
	resp, err := http.Get(ts.URL + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Strata-Index"), 10, 64)
	if idx == 0 {
		t.Fatal("no X-Strata-Index on a read")
	}
	type result struct {
		jobs []structs.JobListEntry
		idx  uint64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(ts.URL + "/v1/jobs?wait=30s&index=" + strconv.FormatUint(idx, 10))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var js []structs.JobListEntry
		err = json.NewDecoder(resp.Body).Decode(&js)
		n, _ := strconv.ParseUint(resp.Header.Get("X-Strata-Index"), 10, 64)
		done <- result{js, n, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("blocking query returned before any write: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := s.RegisterJob(dockerJob("woken", nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.idx <= idx || len(r.jobs) != 2 || r.jobs[1].ID != "woken" {
			t.Fatalf("woken query = %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query not woken by a write")
	}
}
