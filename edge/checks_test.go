package edge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// Health checks on synctest's fake clock, with a probe the test
// controls: what a check does over time, without waiting for it.

// checkRun is a task's checks with a fake probe, recording what they
// publish and whether they asked for a restart.
type checkRun struct {
	checks    *taskChecks
	mu        sync.Mutex
	published [][]wire.Endpoint
	restarted chan string // the reason, once
	probes    int
}

func newCheckRun(t *testing.T, task *wire.Task, ports []wire.Port, probe func(n int) error) *checkRun {
	cr := &checkRun{restarted: make(chan string, 1)}
	cr.checks = newTaskChecks(context.Background(), task, "127.0.0.1", ports, testLoggerDiscard(),
		func(eps []wire.Endpoint) {
			cr.mu.Lock()
			cr.published = append(cr.published, eps)
			cr.mu.Unlock()
		},
		func(reason string) { cr.restarted <- reason })
	cr.checks.probe = func(ctx context.Context, chk *wire.Check, port int) error {
		cr.mu.Lock()
		cr.probes++
		n := cr.probes
		cr.mu.Unlock()
		return probe(n)
	}
	t.Cleanup(cr.checks.stop)
	return cr
}

func (cr *checkRun) last() []wire.Endpoint {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.published[len(cr.published)-1]
}

func checkedTask(cr *wire.CheckRestart) *wire.Task {
	return &wire.Task{Name: "t", Services: []wire.Service{{Name: "svc", Port: "http", Checks: []wire.Check{{
		Type: "tcp", Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, CheckRestart: cr,
	}}}}}
}

var errProbe = errors.New("connection refused")

// A check that fails limit times in a row asks for a restart with the
// reason, after limit-1 intervals.
func TestCheckRestartEndsTheAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cr := newCheckRun(t, checkedTask(&wire.CheckRestart{Limit: 3}), []wire.Port{{Label: "http", Value: 20001}}, func(int) error { return errProbe })
		start := time.Now()
		cr.checks.start()
		reason := <-cr.restarted
		if !strings.Contains(reason, "failed 3 times in a row") || !strings.Contains(reason, `service "svc"`) || !strings.Contains(reason, "connection refused") {
			t.Fatalf("restart reason %q, want the service, the count and the error", reason)
		}
		if el := time.Since(start); el != 40*time.Millisecond {
			t.Fatalf("restarted after %s: 3 failures 20ms apart take 40ms", el)
		}
		if eps := cr.last(); len(eps) != 1 || eps[0].Port != 20001 || eps[0].Healthy {
			t.Fatalf("endpoints %+v: want svc on 20001, not healthy", eps)
		}
	})
}

// Failures during the grace period do not count, and limit 0 never
// restarts.
func TestCheckRestartGraceAndZeroLimit(t *testing.T) {
	for name, c := range map[string]*wire.CheckRestart{
		"in grace": {Limit: 1, Grace: time.Hour},
		"limit 0":  {Limit: 0},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probed := make(chan struct{})
				cr := newCheckRun(t, checkedTask(c), []wire.Port{{Label: "http", Value: 20001}}, func(n int) error {
					if n == 25 {
						close(probed)
					}
					return errProbe
				})
				cr.checks.start()
				<-probed // 25 failed probes, 20 ms apart
				synctest.Wait()
				select {
				case reason := <-cr.restarted:
					t.Fatalf("restarted (%s), want the task left running", reason)
				default:
				}
			})
		})
	}
}

// A service turns healthy when all its checks pass and unhealthy when one
// fails; each change is published once. A service without checks is
// healthy while its task runs.
func TestChecksPublishHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		task := checkedTask(nil)
		task.Services = append(task.Services, wire.Service{Name: "plain", Port: "http"})
		results := []error{nil, nil, errProbe, nil}
		done := make(chan struct{})
		cr := newCheckRun(t, task, []wire.Port{{Label: "http", Value: 20001}}, func(n int) error {
			if n == len(results) {
				close(done)
			}
			if n > len(results) {
				return nil
			}
			return results[n-1]
		})
		cr.checks.start()
		<-done
		synctest.Wait()
		cr.mu.Lock()
		var health []bool
		for _, eps := range cr.published {
			health = append(health, eps[0].Healthy)
			if !eps[1].Healthy {
				t.Errorf("the service without checks was published unhealthy: %+v", eps)
			}
		}
		cr.mu.Unlock()
		if want := []bool{false, true, false, true}; !slices.Equal(health, want) {
			t.Fatalf("published health %v, want %v (start, pass, fail, pass)", health, want)
		}
	})
}

// The real probes: tcp connects, http wants a 2xx.
func TestNetProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	closed := freeTCPPort(t)
	c := newTaskChecks(context.Background(), &wire.Task{}, "127.0.0.1", nil, testLoggerDiscard(), func([]wire.Endpoint) {}, func(string) {})
	defer c.stop()
	ctx := context.Background()
	for _, tc := range []struct {
		chk  wire.Check
		port int
		want string // "" passes
	}{
		{wire.Check{Type: "tcp"}, port, ""},
		{wire.Check{Type: "tcp"}, closed, "refused"},
		{wire.Check{Type: "http", Path: "/health"}, port, ""},
		{wire.Check{Type: "http", Path: "/other"}, port, "HTTP 503"},
		{wire.Check{Type: "grpc"}, port, `unknown check type "grpc"`},
	} {
		err := c.netProbe(ctx, &tc.chk, tc.port)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %s on %d: %v, want %q", tc.chk.Type, tc.chk.Path, tc.port, err, tc.want)
		}
	}
}
