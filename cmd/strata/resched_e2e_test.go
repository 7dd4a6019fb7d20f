package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/testwasm"
	"github.com/strata-run/strata/sched"
)

// crashJob is a job whose one task exits 3 at once and is never
// restarted in place: every failure goes to the reschedule policy.
func crashJob(t *testing.T, id, typ, reschedule string) string {
	t.Helper()
	src := fmt.Sprintf(`job %q {
  type = %q
  group "g" {
    count = 1
    %s
    task "t" {
      driver = "wasm"
      config {
        module = "crash@0.1.0"
        mode   = "command"
      }
      restart {
        attempts = 0
        interval = "1m"
        delay    = "1s"
        mode     = "fail"
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
`, id, typ, reschedule)
	p := filepath.Join(t.TempDir(), id+".hcl")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// jobAllocs is every allocation of a job, of every version, oldest first.
func jobAllocs(t *testing.T, d *devProc, job string) []*structs.Alloc {
	t.Helper()
	var r structs.JobAllocsResponse
	if err := json.Unmarshal([]byte(d.mustCLI("status", "-all-allocs", "-json", job)), &r); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(r.Allocations, func(a, b *structs.Alloc) int { return int(a.CreateIndex) - int(b.CreateIndex) })
	return r.Allocations
}

// Must-show 1, through the real binary: a crash-looping batch task is
// placed twice (once, then rescheduled once: Nomad's batch default, 1
// attempt in 24h after 5s) and then left failed with the reason; a
// crash-looping service task is rescheduled with exponentially growing
// delays; the Go module's os.Exit(3) shows as exit code 3.
func TestReschedulingThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes")
	}
	srv, agentAddr, pin := startSingleServer(t)
	startAgent(t, srv, "edge-1", "127.0.0.1", agentAddr, pin)
	d := &devProc{t: t, httpAddr: srv.httpAddr, out: srv.out}
	waitNodes(t, d, 1)
	mod, err := testwasm.Build(repoRoot(), "./wasmhost/testdata/exitcode")
	if err != nil {
		t.Fatal(err)
	}
	modPath := filepath.Join(t.TempDir(), "crash.wasm")
	if err := os.WriteFile(modPath, mod, 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustCLI("module", "push", modPath, "-name", "crash", "-version", "0.1.0")

	start := time.Now()
	d.mustCLI("run", "-detach", crashJob(t, "crash", "batch", ""))
	d.mustCLI("run", "-detach", crashJob(t, "crashsvc", "service",
		`reschedule {
      delay          = "5s"
      delay_function = "exponential"
      max_delay      = "1m"
      unlimited      = true
    }`))

	// The service job: three placements, 5s then 10s after each failure.
	var svc []*structs.Alloc
	testutil.Eventually(t, 90*time.Second, "the service task placed three times", func() error {
		svc = jobAllocs(t, d, "crashsvc")
		if len(svc) < 3 {
			return fmt.Errorf("%d placements", len(svc))
		}
		return nil
	})
	for i, a := range svc[:3] {
		var at string
		if ev := a.RescheduleTracker; ev != nil {
			last := ev.Events[len(ev.Events)-1]
			at = fmt.Sprintf("placed at +%s, %s after its predecessor failed (delay %s)",
				time.Duration(last.RescheduleTime-start.UnixNano()).Round(time.Millisecond),
				time.Duration(last.RescheduleTime-svc[i-1].FinishedAt).Round(time.Millisecond), last.Delay)
		} else {
			at = "first placement"
		}
		t.Logf("crashsvc placement %d: %s", i+1, at)
	}
	for i, want := range []time.Duration{5 * time.Second, 10 * time.Second} {
		a, prev := svc[i+1], svc[i]
		if a.PreviousAllocation != prev.ID || a.RescheduleTracker == nil {
			t.Fatalf("placement %d does not link to %s: %+v", i+2, prev.ID, a.Allocation)
		}
		last := a.RescheduleTracker.Events[len(a.RescheduleTracker.Events)-1]
		if last.Delay != want || time.Duration(last.RescheduleTime-prev.FinishedAt) < want {
			t.Fatalf("placement %d: delay %s, placed %s after the failure; want a delay of %s",
				i+2, last.Delay, time.Duration(last.RescheduleTime-prev.FinishedAt), want)
		}
	}

	// The batch job: by now (well past its 5s delay) exactly two
	// placements, and over a further observation window no third.
	var batch []*structs.Alloc
	testutil.Eventually(t, 60*time.Second, "the batch task's second placement failed", func() error {
		batch = jobAllocs(t, d, "crash")
		if len(batch) != 2 || batch[1].ClientStatus != sched.ClientFailed {
			return fmt.Errorf("%d placements", len(batch))
		}
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if n := len(jobAllocs(t, d, "crash")); n != 2 {
			t.Fatalf("%d placements of the crash-looping batch task, want 2 in 24h", n)
		}
		time.Sleep(time.Second) // sampling a process boundary over a window
	}
	t.Logf("crash (batch): 2 placements in %s, no more", time.Since(start).Round(time.Second))
	if batch[1].PreviousAllocation != batch[0].ID || batch[0].NextAllocation != batch[1].ID || batch[0].DesiredStatus != sched.DesiredStop {
		t.Fatalf("the reschedule chain: %+v then %+v", batch[0].Allocation, batch[1].Allocation)
	}

	st := d.mustCLI("job", "status", "crash")
	for _, want := range []string{"Status      = dead", "Rescheduling", "not rescheduled: no more reschedule attempts: 1/1 within 24h0m0s"} {
		if !strings.Contains(st, want) {
			t.Errorf("job status lacks %q:\n%s", want, st)
		}
	}
	as := d.mustCLI("alloc", "status", batch[1].ID)
	for _, want := range []string{"Exit Code: 3, stderr: exitcode: giving up", "Previous Allocation = " + batch[0].ID,
		"Reschedule Attempts = 1/1", "Next Reschedule     = none: no more reschedule attempts"} {
		if !strings.Contains(as, want) {
			t.Errorf("alloc status lacks %q:\n%s", want, as)
		}
	}
}
