package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// Must-show 2: kill -9 one of two agents, let its allocations move,
// restart it on the same data dir. Sampled while it restarts, never more
// instances answer than the job's count (the restarted agent asks the
// server before it starts what its local state holds); its lost
// allocations are stopped; a stopped and re-run job shows only its new
// allocations.
func TestAgentRestartNeverOvercommits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes")
	}
	srv, agentAddr, pin := startSingleServer(t)
	startAgent(t, srv, "edge-1", "127.0.0.1", agentAddr, pin)
	edge2 := startAgent(t, srv, "edge-2", "127.0.0.2", agentAddr, pin)
	d := &devProc{t: t, httpAddr: srv.httpAddr, out: srv.out}
	waitNodes(t, d, 2)
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	src, err := os.ReadFile(filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	const count = 4
	job := filepath.Join(t.TempDir(), "hello4.hcl")
	os.WriteFile(job, []byte(strings.Replace(string(src), "count = 1", fmt.Sprintf("count = %d", count), 1)), 0o644)
	d.mustCLI("run", job)

	ipOf := map[string]string{"edge-1": "127.0.0.1", "edge-2": "127.0.0.2"}
	addrs := map[string]bool{} // every address an allocation of the job ever had
	live := func(node string) []*structs.Alloc {
		var out []*structs.Alloc
		for _, a := range jobAllocs(t, d, "hello") {
			if len(a.Ports) > 0 {
				addrs[fmt.Sprintf("%s:%d", ipOf[a.NodeName], a.Ports[0].Value)] = true
			}
			if a.DesiredStatus == sched.DesiredRun && a.ClientStatus == sched.ClientRunning && (node == "" || a.NodeName == node) {
				out = append(out, a)
			}
		}
		return out
	}
	var onEdge2 []*structs.Alloc
	testutil.Eventually(t, 60*time.Second, "four copies running, some on edge-2", func() error {
		all := live("")
		onEdge2 = live("edge-2")
		if len(all) != count || len(onEdge2) == 0 {
			return fmt.Errorf("%d running, %d on edge-2", len(all), len(onEdge2))
		}
		return nil
	})

	start := time.Now()
	edge2.kill()
	testutil.Eventually(t, 60*time.Second, "all four copies on edge-1", func() error {
		if n := len(live("edge-1")); n != count {
			return fmt.Errorf("%d on edge-1", n)
		}
		return nil
	})
	t.Logf("edge-2 killed -> its %d allocations replaced on edge-1 in %s", len(onEdge2), time.Since(start).Round(time.Millisecond))

	// Restart edge-2 on its data dir and count the instances that answer:
	// the replaced copies' addresses on edge-2 are polled without pause
	// (a copy started from local state would answer on one), every
	// address of the job in each sample.
	var stale []string
	for _, a := range onEdge2 {
		stale = append(stale, fmt.Sprintf("127.0.0.2:%d", a.Ports[0].Value))
	}
	edge2.args[slices.Index(edge2.args, "-log-level")+1] = "info" // to tell which way it restored
	edge2.start()
	maxUp, samples, staleUp := 0, 0, 0
	window := time.Now().Add(8 * time.Second)
	for time.Now().Before(window) {
		for range 10 {
			for _, a := range stale {
				if code, _, err := httpGetQuick("http://" + a + "/probe"); err == nil && code == 200 {
					staleUp++
				}
			}
		}
		up := 0
		for a := range addrs {
			if code, _, err := httpGetQuick("http://" + a + "/probe"); err == nil && code == 200 {
				up++
			}
		}
		maxUp, samples = max(maxUp, up), samples+1
		if up > count {
			t.Fatalf("%d instances answer during the restart, job count %d (addresses %v)", up, count, addrs)
		}
	}
	t.Logf("edge-2 restarted: at most %d of %d instances answered over %d samples in 8s; its replaced copies answered %d times", maxUp, count, samples, staleUp)
	if maxUp != count || staleUp > 0 {
		t.Fatalf("at most %d instances answered, want the job's %d throughout; a replaced copy answered %d times, want never", maxUp, count, staleUp)
	}

	if out := edge2.out.String(); !strings.Contains(out, "a server answered: running its allocation set, not local state's") {
		t.Fatalf("the restarted agent did not take the server's set over its local state:\n%s", out)
	}

	// The lost allocations are stopped, and stay so once edge-2 is back.
	waitNodes(t, d, 2)
	for _, a := range jobAllocs(t, d, "hello") {
		if a.NodeName == "edge-2" && a.DesiredStatus != sched.DesiredStop {
			t.Errorf("edge-2's allocation %s: desired %s, client %s; want it stopped", a.ID, a.DesiredStatus, a.ClientStatus)
		}
	}

	// Stopped and run again: only the new allocations are shown.
	d.mustCLI("stop", "hello")
	d.mustCLI("run", job)
	st := d.mustCLI("status", "hello")
	if n := strings.Count(st, "hello.web["); n != count || strings.Contains(st, "lost") {
		t.Fatalf("status after stop and run shows %d allocations, want the %d new ones:\n%s", n, count, st)
	}
}

// httpGetQuick is httpGet with a short timeout, for sampling.
func httpGetQuick(url string) (int, string, error) {
	c := &http.Client{Timeout: 300 * time.Millisecond}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
