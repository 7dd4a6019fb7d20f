package edge

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// checkRestartRunner is a runner whose one task has a tcp check on a
// port nothing listens on, with the given check_restart.
func checkRestartRunner(t *testing.T, cr *spec.CheckRestart) (*allocRunner, *spec.Task, []wire.Port) {
	t.Helper()
	a := newTestAgent(t)
	al := offlineAlloc("cr", 0)
	task := al.Tasks[0]
	task.Services = []*spec.Service{{Name: "svc", Port: "http", Checks: []*spec.Check{{
		Type: "tcp", Interval: spec.Duration(20 * time.Millisecond), Timeout: spec.Duration(100 * time.Millisecond), CheckRestart: cr,
	}}}}
	ports := []wire.Port{{Label: "http", Value: closedPort(t)}}
	r := newAllocRunner(a, al, nil)
	t.Cleanup(r.cancel)
	return r, task, ports
}

// A check that fails limit times in a row ends the attempt with the
// reason, and the task's events say so.
func TestCheckRestartEndsTheAttempt(t *testing.T) {
	r, task, ports := checkRestartRunner(t, &spec.CheckRestart{Limit: 3})
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)
	checks := newTaskChecks(attempt{ctx: ctx, restart: cancel}, r, task, ports)
	start := time.Now()
	checks.start()
	defer checks.stop()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the failing check did not end the attempt within 10s")
	}
	var cr *checkRestartError
	if !errors.As(context.Cause(ctx), &cr) || !strings.Contains(cr.reason, "failed 3 times in a row") || !strings.Contains(cr.reason, `service "svc"`) {
		t.Fatalf("attempt ended by %v, want a check restart naming the service and the count", context.Cause(ctx))
	}
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Fatalf("restarted after %s: 3 failures 20ms apart take at least 40ms", el)
	}
	hist := r.taskStates()[task.Name]
	last := hist.Events[len(hist.Events)-1]
	if last.Type != wire.EventRestartSignal || last.Message != cr.reason {
		t.Fatalf("last event %+v, want Restart Signaled with the reason", last)
	}
}

// Failures during the grace period do not count, and limit 0 never
// restarts.
func TestCheckRestartGraceAndZeroLimit(t *testing.T) {
	for name, cr := range map[string]*spec.CheckRestart{
		"in grace": {Limit: 1, Grace: spec.Duration(time.Hour)},
		"limit 0":  {Limit: 0},
	} {
		t.Run(name, func(t *testing.T) {
			r, task, ports := checkRestartRunner(t, cr)
			ctx, cancel := context.WithCancelCause(r.ctx)
			defer cancel(nil)
			checks := newTaskChecks(attempt{ctx: ctx, restart: cancel}, r, task, ports)
			checks.start()
			// 25 failed probes (20 ms apart).
			time.Sleep(500 * time.Millisecond)
			checks.stop()
			if err := context.Cause(ctx); err != nil {
				t.Fatalf("attempt ended (%v), want it running", err)
			}
		})
	}
}
