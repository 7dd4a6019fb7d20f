package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// server is an httptest server counting its requests and answering with
// h.
func server(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, &hits
}

// deadAddress is a loopback address nothing listens on.
func deadAddress(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func unavailable(notApplied bool) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if notApplied {
			w.Header().Set(structs.NotAppliedHeader, "true")
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(structs.APIError{Error: "coordinator: no cluster leader is known"})
	}
}

func ok(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/jobs" && r.Method == http.MethodPut:
		json.NewEncoder(w).Encode(structs.JobRegisterResponse{JobID: "j", Version: 1})
	case r.URL.Path == "/v1/jobs":
		json.NewEncoder(w).Encode([]structs.JobListEntry{{ID: "j"}})
	default:
		w.Write([]byte("null"))
	}
}

func newClient(t *testing.T, retryFor time.Duration, addrs ...string) *Client {
	t.Helper()
	c, err := New(Config{Address: strings.Join(addrs, ","), RetryFor: retryFor})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The address list: STRATA_ADDR's form, each address given a scheme.
func TestAddressList(t *testing.T) {
	c := NewClient("a:4700, https://b:4700/,c:4700")
	want := []string{"http://a:4700", "https://b:4700", "http://c:4700"}
	if strings.Join(c.Addresses, " ") != strings.Join(want, " ") || c.Address != want[0] {
		t.Fatalf("addresses = %q (first %q), want %q", c.Addresses, c.Address, want)
	}
}

func TestRetries(t *testing.T) {
	ctx := context.Background()
	t.Run("a server that refuses connections is skipped for any call", func(t *testing.T) {
		live, hits := server(t, ok)
		c := newClient(t, time.Second, deadAddress(t), live.URL)
		if err := c.StopJob(ctx, "j"); err != nil {
			t.Fatalf("a write with the first server down: %v", err)
		}
		if _, err := c.Jobs(ctx); err != nil {
			t.Fatalf("a read with the first server down: %v", err)
		}
		if hits.Load() != 2 {
			t.Fatalf("the live server saw %d requests, want 2", hits.Load())
		}
	})
	t.Run("a read moves on from a server without a leader", func(t *testing.T) {
		down, downHits := server(t, unavailable(false))
		live, _ := server(t, ok)
		c := newClient(t, time.Second, down.URL, live.URL)
		js, err := c.Jobs(ctx)
		if err != nil || len(js) != 1 || downHits.Load() != 1 {
			t.Fatalf("jobs = %v, %v after %d tries on the leaderless server", js, err, downHits.Load())
		}
	})
	t.Run("a job registration is retried through an election", func(t *testing.T) {
		var calls atomic.Int32
		ts, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 3 { // three refusals, then a leader
				unavailable(false)(w, r)
				return
			}
			ok(w, r)
		})
		c := newClient(t, 5*time.Second, ts.URL)
		r, err := c.RegisterJob(ctx, &spec.Job{ID: "j"})
		if err != nil || r.JobID != "j" || calls.Load() != 4 {
			t.Fatalf("register = %+v, %v after %d calls, want success on the 4th", r, err, calls.Load())
		}
	})
	t.Run("a write refused before it was proposed is sent again", func(t *testing.T) {
		first, firstHits := server(t, unavailable(true))
		live, liveHits := server(t, ok)
		c := newClient(t, time.Second, first.URL, live.URL)
		if err := c.StopJob(ctx, "j"); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if firstHits.Load() != 1 || liveHits.Load() != 1 {
			t.Fatalf("hits %d then %d, want 1 and 1", firstHits.Load(), liveHits.Load())
		}
	})
	t.Run("a write that may have been applied is not sent again", func(t *testing.T) {
		first, firstHits := server(t, unavailable(false))
		live, liveHits := server(t, ok)
		c := newClient(t, time.Second, first.URL, live.URL)
		err := c.StopJob(ctx, "j")
		var se *StatusError
		if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || !strings.Contains(se.Message, "no cluster leader") {
			t.Fatalf("stop = %v, want the server's 503", err)
		}
		if firstHits.Load() != 1 || liveHits.Load() != 0 {
			t.Fatalf("hits %d then %d, want 1 and 0", firstHits.Load(), liveHits.Load())
		}
	})
	t.Run("a connection lost after a write was sent is not retried", func(t *testing.T) {
		cut, cutHits := server(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		})
		live, liveHits := server(t, ok)
		c := newClient(t, time.Second, cut.URL, live.URL)
		err := c.StopJob(ctx, "j")
		if err == nil || !strings.Contains(err.Error(), "may have been applied") {
			t.Fatalf("stop = %v, want an error saying it may have been applied", err)
		}
		if cutHits.Load() != 1 || liveHits.Load() != 0 {
			t.Fatalf("hits %d then %d, want 1 and 0", cutHits.Load(), liveHits.Load())
		}
		// The same loss on a read moves on.
		if _, err := c.Jobs(ctx); err != nil {
			t.Fatalf("read after a lost connection: %v", err)
		}
	})
	t.Run("retries end with the last answer once RetryFor has passed", func(t *testing.T) {
		a, aHits := server(t, unavailable(false))
		b, bHits := server(t, unavailable(false))
		c := newClient(t, 200*time.Millisecond, a.URL, b.URL)
		_, err := c.Jobs(ctx)
		var se *StatusError
		if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
			t.Fatalf("jobs = %v, want the last 503", err)
		}
		if aHits.Load() < 2 || bHits.Load() < 2 {
			t.Fatalf("tries %d and %d, want each server asked again after a backoff", aHits.Load(), bHits.Load())
		}
	})
	t.Run("a negative RetryFor never retries", func(t *testing.T) {
		a, aHits := server(t, unavailable(false))
		b, bHits := server(t, ok)
		c := newClient(t, -1, a.URL, b.URL)
		if _, err := c.Jobs(ctx); err == nil || aHits.Load() != 1 || bHits.Load() != 0 {
			t.Fatalf("jobs = %v with hits %d, %d; want the first 503 only", err, aHits.Load(), bHits.Load())
		}
	})
}
