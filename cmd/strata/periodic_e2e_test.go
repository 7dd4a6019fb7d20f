package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/testutil"
)

// periodicJobJSON is a batch job launched every 2 seconds (a seven-field
// cron: seconds first).
func periodicJobJSON(id string) []byte {
	var j map[string]any
	json.Unmarshal(jobJSON(id), &j)
	job := j["Job"].(map[string]any)
	job["Type"] = "batch"
	job["Periodic"] = map[string]any{"Cron": "*/2 * * * * * *"}
	b, _ := json.Marshal(j)
	return b
}

// periodicTicks lists the ticks (unix seconds) of parent's children,
// read from one server, sorted.
func periodicTicks(addr, parent string) ([]int64, error) {
	resp, err := httpc.Get("http://" + addr + "/v1/jobs")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var js []jobEntry
	if err := json.NewDecoder(resp.Body).Decode(&js); err != nil {
		return nil, err
	}
	var ticks []int64
	for _, j := range js {
		rest, ok := strings.CutPrefix(j.ID, parent+"/periodic-")
		if !ok {
			continue
		}
		tk, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("child %q: %v", j.ID, err)
		}
		ticks = append(ticks, tk)
	}
	slices.Sort(ticks)
	return ticks, nil
}

// A periodic job on a 3-server cluster launches one child per tick
// across leader kills: every child is on a tick of the schedule, none
// twice. A leader killed alone is replaced within a tick. Then the
// leader and a follower are killed (no quorum) for over two ticks: once
// a server is back, the new leader launches the latest missed tick at
// once, once, and every tick after it.
func TestClusterPeriodicAcrossLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	buildArtifacts(t)
	procs := startCluster(t, 3)
	leader := waitClusterLeader(t, procs)
	req, _ := http.NewRequest(http.MethodPut, "http://"+leader.httpAddr+"/v1/jobs", bytes.NewReader(periodicJobJSON("cron")))
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("register: %d %s", resp.StatusCode, b)
	}
	// waitTicks waits until a child is launched at or after tick.
	waitTicks := func(what string, tick int64) []int64 {
		var ticks []int64
		testutil.Eventually(t, 30*time.Second, what, func() error {
			l := waitClusterLeader(t, procs)
			var err error
			ticks, err = periodicTicks(l.httpAddr, "cron")
			if err == nil && (len(ticks) == 0 || ticks[len(ticks)-1] < tick) {
				err = fmt.Errorf("children at %v", ticks)
			}
			return err
		})
		return ticks
	}
	waitTicks("children before the kill", time.Now().Unix()+4)

	// The leader alone.
	leader.kill()
	waitClusterLeader(t, procs)
	waitTicks("children after the first kill", time.Now().Unix()+4)
	leader.start()

	// The leader and a follower: no quorum while ticks pass.
	leader = waitClusterLeader(t, procs)
	follower := procs[(slices.Index(procs, leader)+1)%len(procs)]
	before, err := periodicTicks(leader.httpAddr, "cron")
	if err != nil {
		t.Fatal(err)
	}
	leader.kill()
	follower.kill()
	down := time.Now()
	time.Sleep(5 * time.Second) // wall-clock ticks of the schedule pass with no leader
	follower.start()
	waitClusterLeader(t, procs)
	back := time.Now()
	ticks := waitTicks("children after the outage", back.Unix()+6)
	t.Logf("quorum lost at %d, a leader again at %d; children before %v, at the end %v", down.Unix(), back.Unix(), before, ticks)

	for i, tk := range ticks {
		if tk%2 != 0 {
			t.Fatalf("child at %d: not a tick of */2", tk)
		}
		if i > 0 && tk == ticks[i-1] {
			t.Fatalf("tick %d launched twice: %v", tk, ticks)
		}
	}
	// A child launched before the kill is at a tick no later than it.
	i := slices.IndexFunc(ticks, func(tk int64) bool { return tk > down.Unix() })
	if i <= 0 {
		t.Fatalf("children %v: none before or none after the outage at %d", ticks, down.Unix())
	}
	// The ticks missed during the outage are not replayed one by one: the
	// first child after it is the latest tick missed when a leader came
	// back, launched at once.
	if first := ticks[i]; first < down.Unix()+4 || first > back.Unix() {
		t.Fatalf("the first child after the outage %d..%d is at %d, want the latest missed tick (%d..%d): %v",
			down.Unix(), back.Unix(), first, down.Unix()+4, back.Unix(), ticks)
	}
	for i++; i < len(ticks); i++ {
		if ticks[i]-ticks[i-1] != 2 {
			t.Fatalf("tick after %d missed with a leader: %v", ticks[i-1], ticks)
		}
	}
}

const periodicEnvJob = `job "report" {
  type = "batch"
  periodic {
    cron             = "0 0 1 1 *"
    prohibit_overlap = true
  }
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "env@0.1.0"
        mode   = "command"
      }
    }
  }
}
`

// run of a periodic job tells its next launch and returns (the job is
// never placed itself); job periodic force launches a child now, which
// runs on the agent as a batch job of its own ID.
func TestPeriodicForceEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	buildArtifacts(t)
	wasm := buildEnvWasm(t)
	d := startDev(t, t.TempDir(), freePort(t), freePort(t))
	d.mustCLI("module", "push", wasm, "-name", "env", "-version", "0.1.0")
	file := filepath.Join(t.TempDir(), "report.hcl")
	if err := os.WriteFile(file, []byte(periodicEnvJob), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := d.mustCLI("run", file); !strings.Contains(out, `"report" is periodic: its next child is launched at`) {
		t.Fatalf("run of a periodic job:\n%s", out)
	}
	out := d.mustCLI("job", "periodic", "force", "report")
	_, rest, ok := strings.Cut(out, `launched "`)
	child, _, _ := strings.Cut(rest, `"`)
	if !ok || !strings.HasPrefix(child, "report/periodic-") {
		t.Fatalf("force:\n%s", out)
	}
	var allocID string
	testutil.Eventually(t, 60*time.Second, "the child completes", func() error {
		var resp struct {
			Allocations []struct{ ID, ClientStatus string }
		}
		d.getJSON("/v1/job/"+url.PathEscape(child)+"/allocations", &resp)
		for _, a := range resp.Allocations {
			if a.ClientStatus == "complete" {
				allocID = a.ID
				return nil
			}
		}
		return fmt.Errorf("allocations %+v", resp.Allocations)
	})
	if logs := d.mustCLI("alloc", "logs", allocID); !strings.Contains(logs, "NOMAD_JOB_ID="+child+"\n") {
		t.Fatalf("the child's task does not run as %s:\n%s", child, logs)
	}
	var parent struct{ Allocations []any }
	d.getJSON("/v1/job/report/allocations", &parent)
	if len(parent.Allocations) != 0 {
		t.Fatalf("the periodic job itself was placed: %+v", parent.Allocations)
	}
	if r := d.cli("job", "periodic", "force", "nope"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("force of a missing job: exit %d\n%s", r.code, r.stderr)
	}
}

const dispatchEnvJob = `job "transcode" {
  type = "batch"
  parameterized {
    payload       = "required"
    meta_required = ["input"]
    meta_optional = ["quality"]
  }
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "env@0.1.0"
        mode   = "command"
      }
      env {
        ECHO_FILE = "/local/in/params.txt"
      }
      dispatch_payload {
        file = "in/params.txt"
      }
    }
  }
}
`

// Must-show 3 (dispatch): a parameterized job is never placed itself;
// job dispatch with meta and a payload launches a child whose task sees
// the meta as NOMAD_META_* and the payload as its /local file; a dispatch
// without the meta the job requires is refused.
func TestDispatchEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	buildArtifacts(t)
	wasm := buildEnvWasm(t)
	d := startDev(t, t.TempDir(), freePort(t), freePort(t))
	d.mustCLI("module", "push", wasm, "-name", "env", "-version", "0.1.0")
	dir := t.TempDir()
	file, payload := filepath.Join(dir, "transcode.hcl"), filepath.Join(dir, "params.txt")
	if err := os.WriteFile(file, []byte(dispatchEnvJob), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(payload, []byte("width=640 height=480"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := d.mustCLI("run", file); !strings.Contains(out, `"transcode" is parameterized`) {
		t.Fatalf("run of a parameterized job:\n%s", out)
	}
	if r := d.cli("job", "dispatch", "transcode", payload); r.code != 1 || !strings.Contains(r.stderr, "requires meta input") {
		t.Fatalf("dispatch without the required meta: exit %d\n%s", r.code, r.stderr)
	}
	out := d.mustCLI("job", "dispatch", "-meta", "input=cat.mp4", "-meta", "quality=low", "transcode", payload)
	_, rest, ok := strings.Cut(out, `dispatched "`)
	child, _, _ := strings.Cut(rest, `"`)
	if !ok || !strings.HasPrefix(child, "transcode/dispatch-") {
		t.Fatalf("dispatch:\n%s", out)
	}
	var allocID string
	testutil.Eventually(t, 60*time.Second, "the dispatched child completes", func() error {
		var resp struct {
			Allocations []struct{ ID, ClientStatus string }
		}
		d.getJSON("/v1/job/"+url.PathEscape(child)+"/allocations", &resp)
		for _, a := range resp.Allocations {
			if a.ClientStatus == "complete" {
				allocID = a.ID
				return nil
			}
		}
		return fmt.Errorf("allocations %+v", resp.Allocations)
	})
	logs := d.mustCLI("alloc", "logs", allocID)
	for _, want := range []string{"NOMAD_META_input=cat.mp4\n", "NOMAD_META_quality=low\n", "NOMAD_JOB_ID=" + child + "\n", "width=640 height=480"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("the child's output lacks %q:\n%s", want, logs)
		}
	}
	var parent struct{ Allocations []any }
	d.getJSON("/v1/job/transcode/allocations", &parent)
	if len(parent.Allocations) != 0 {
		t.Fatalf("the parameterized job itself was placed: %+v", parent.Allocations)
	}
}
