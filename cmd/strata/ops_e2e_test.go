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
)

// opsJob is the hello module as a two-copy service that rolls out one at
// a time, healthy once its check passed for a second.
const opsJob = `job "%s" {
  update {
    max_parallel      = 1
    min_healthy_time  = "1s"
    healthy_deadline  = "1m"
    progress_deadline = "2m"
  }
  group "web" {
    count = 2
    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "http"
      }
      restart {
        attempts = 3
        interval = "10m"
        delay    = "1s"
        mode     = "fail"
      }
      resources {
        cpu    = 100
        memory = 64
        network {
          port "http" {}
        }
      }
      service {
        port = "http"
        check {
          type     = "http"
          path     = "/"
          interval = "1s"
          timeout  = "1s"
        }
      }
    }
  }
}
`

// cliJSON runs a command with -json and decodes its output into v: the
// API's shape, parsed back. It fails t, the (sub)test that runs it.
func (d *devProc) cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	r := d.cli(append(args, "-json")...)
	if r.code != 0 {
		t.Fatalf("strata %s -json: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("strata %s -json: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

// must runs a command in a subtest, failing that subtest on an error.
func (d *devProc) must(t *testing.T, args ...string) string {
	t.Helper()
	r := d.cli(args...)
	if r.code != 0 {
		t.Fatalf("strata %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// The commands a Nomad user reaches for first, through the real binary
// against `strata dev`: job status and scale, status with health, alloc
// stop, restart, signal and stats, node eligibility, server members,
// stop -purge, system gc and module delete, and -json / -t on the read
// commands, their JSON parsed back.
func TestOperationsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	buildArtifacts(t)
	dataDir := t.TempDir()
	d := startDev(t, dataDir, freePort(t), freePort(t))
	out := d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	digest := strings.Fields(out)[1]
	jobFile := func(id string) string {
		p := filepath.Join(t.TempDir(), id+".hcl")
		if err := os.WriteFile(p, fmt.Appendf(nil, opsJob, id), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if out := d.mustCLI("run", jobFile("ops")); !strings.Contains(out, "successful") {
		t.Fatalf("run did not follow the deployment to its end:\n%s", out)
	}

	jobStatusJSON := func(t *testing.T) jobStatus {
		t.Helper()
		var st jobStatus
		d.cliJSON(t, &st, "job", "status", "ops")
		return st
	}
	allocOf := func(t *testing.T, id string) structs.Alloc {
		t.Helper()
		var a structs.Alloc
		d.cliJSON(t, &a, "alloc", "status", id)
		return a
	}

	t.Run("job status and status show the current allocations with their health", func(t *testing.T) {
		out := d.must(t, "job", "status", "ops")
		for _, want := range []string{"Summary", "Task Group", "Latest Deployment", "successful", "Allocations", "healthy"} {
			if !strings.Contains(out, want) {
				t.Fatalf("job status lacks %q:\n%s", want, out)
			}
		}
		st := jobStatusJSON(t)
		if st.Status != "running" || st.Job.Version != 0 || st.Summary.Summary["web"].Running != 2 ||
			st.LatestDeployment == nil || st.LatestDeployment.Status != structs.DeploymentSuccessful || len(st.Allocations) != 2 {
			t.Fatalf("job status -json: %+v", st)
		}
		for _, a := range st.Allocations {
			if a.Health.String() != "healthy" {
				t.Fatalf("allocation %s health %q, want healthy", a.ID, a.Health)
			}
		}
		if out := d.must(t, "job", "status", "-t", "{{.Status}} {{len .Allocations}} {{.LatestDeployment.Status}}", "ops"); out != "running 2 successful\n" {
			t.Fatalf("job status -t: %q", out)
		}
		out = d.must(t, "status", "ops")
		if !strings.Contains(out, "Health") || strings.Count(out, " healthy ") != 2 {
			t.Fatalf("status does not show two healthy allocations:\n%s", out)
		}
		var r structs.JobAllocsResponse
		d.cliJSON(t, &r, "status", "ops")
		if len(r.Allocations) != 2 || r.Version != 0 {
			t.Fatalf("status -json: %+v", r)
		}
		if out := d.must(t, "status", "-t", `{{range .}}{{.ID}}={{.Status}}{{end}}`); out != "ops=running\n" {
			t.Fatalf("status -t: %q", out)
		}
		if r := d.cli("status", "-json", "-t", "{{.}}"); r.code != 2 || !strings.Contains(r.stderr, "cannot be used together") {
			t.Fatalf("-json with -t: exit %d %q", r.code, r.stderr)
		}
		if r := d.cli("status", "-t", "{{.Nope"); r.code != 2 {
			t.Fatalf("a malformed template: exit %d %q, want a usage error", r.code, r.stderr)
		}
		if r := d.cli("job", "status", "-t", "{{.Nope}}", "ops"); r.code != 1 || !strings.Contains(r.stderr, "Nope") {
			t.Fatalf("a template naming a missing field: exit %d %q", r.code, r.stderr)
		}
	})

	t.Run("job scale changes the count in place", func(t *testing.T) {
		out := d.must(t, "job", "scale", "ops", "web", "3")
		if !strings.Contains(out, "scaled to 3: version 1") || !strings.Contains(out, "3/3 allocations running") {
			t.Fatalf("job scale:\n%s", out)
		}
		st := jobStatusJSON(t)
		if st.Job.Version != 1 || st.LatestDeployment.JobVersion != 0 || len(st.Allocations) != 3 {
			t.Fatalf("after scaling: version %d, latest deployment of version %d, %d allocations; want 1, 0 (none started), 3",
				st.Job.Version, st.LatestDeployment.JobVersion, len(st.Allocations))
		}
		if out := d.must(t, "job", "scale", "ops", "2"); !strings.Contains(out, "scaled to 2: version 2") {
			t.Fatalf("job scale of the only group:\n%s", out)
		}
		var r structs.JobAllocsResponse
		d.cliJSON(t, &r, "status", "ops")
		var all structs.JobAllocsResponse
		d.cliJSON(t, &all, "status", "-all-allocs", "ops")
		if len(r.Allocations) != 2 || len(all.Allocations) != 3 {
			t.Fatalf("status shows %d allocations, -all-allocs %d; want the 2 of version 2, and the one stopped at version 1 too", len(r.Allocations), len(all.Allocations))
		}
		if out := d.must(t, "status", "ops"); !strings.Contains(out, "1 allocation(s) of older versions or earlier runs not shown") {
			t.Fatalf("status does not say what it hides:\n%s", out)
		}
		if r := d.cli("job", "scale", "ops", "nope", "2"); r.code != 1 || !strings.Contains(r.stderr, `no group "nope"`) {
			t.Fatalf("scaling a missing group: exit %d %q", r.code, r.stderr)
		}
	})

	var r structs.JobAllocsResponse
	d.cliJSON(t, &r, "status", "ops")
	target := r.Allocations[0]

	t.Run("alloc restart, signal and stats reach the agent", func(t *testing.T) {
		id := shortAlloc(target.ID)
		if out := d.must(t, "alloc", "restart", id); !strings.Contains(out, `Restarted task "hello"`) {
			t.Fatalf("alloc restart: %q", out)
		}
		// Process boundary: the agent reports the restart.
		testutil.Eventually(t, 30*time.Second, "the restart in the allocation's task state", func() error {
			a := allocOf(t, id)
			ts := a.TaskStates["hello"]
			if ts == nil || ts.Restarts != 1 || ts.State != "running" {
				return fmt.Errorf("task state %+v", ts)
			}
			if ev := ts.Events[len(ts.Events)-1]; ev.Type != "Started" {
				return fmt.Errorf("last event %+v", ev)
			}
			return nil
		})
		if r := d.cli("alloc", "signal", "-s", "SIGHUP", id); r.code != 1 || !strings.Contains(r.stderr, "SIGHUP has no meaning to a WebAssembly module") {
			t.Fatalf("SIGHUP to a wasm task: exit %d %q", r.code, r.stderr)
		}
		if out := d.must(t, "alloc", "signal", "-s", "SIGTERM", id, "hello"); !strings.Contains(out, `Sent SIGTERM to task "hello"`) {
			t.Fatalf("alloc signal: %q", out)
		}
		testutil.Eventually(t, 30*time.Second, "the signalled task restarted by its policy", func() error {
			ts := allocOf(t, id).TaskStates["hello"]
			if ts == nil || ts.Restarts != 2 || ts.State != "running" {
				return fmt.Errorf("task state %+v", ts)
			}
			for _, e := range ts.Events {
				if e.Type == "Terminated" && strings.Contains(e.Message, "SIGTERM") {
					return nil
				}
			}
			return fmt.Errorf("no Terminated event naming SIGTERM in %+v", ts.Events)
		})
		var st structs.AllocStats
		d.cliJSON(t, &st, "alloc", "stats", id)
		if len(st.Tasks) != 1 || st.Tasks[0].Task != "hello" || !slices.Contains(st.Tasks[0].Measured, structs.MeasuredRequests) || st.Tasks[0].Error != "" {
			t.Fatalf("alloc stats -json: %+v", st)
		}
		if out := d.must(t, "alloc", "stats", id); !strings.Contains(out, "Requests") || !strings.Contains(out, "hello") {
			t.Fatalf("alloc stats:\n%s", out)
		}
		if r := d.cli("alloc", "restart", id, "nope"); r.code != 1 || !strings.Contains(r.stderr, `no task "nope"`) {
			t.Fatalf("restart of a missing task: exit %d %q", r.code, r.stderr)
		}
	})

	t.Run("alloc stop is replaced", func(t *testing.T) {
		out := d.must(t, "alloc", "stop", shortAlloc(target.ID))
		if !strings.Contains(out, "stopped; evaluation") || !strings.Contains(out, "Replacement") {
			t.Fatalf("alloc stop:\n%s", out)
		}
		if a := allocOf(t, target.ID); a.DesiredStatus != "stop" || !strings.Contains(a.DesiredDesc, "operator") {
			t.Fatalf("the stopped allocation: desired %s (%s)", a.DesiredStatus, a.DesiredDesc)
		}
		if r := d.cli("alloc", "stop", target.ID); r.code != 1 || !strings.Contains(r.stderr, "already") {
			t.Fatalf("stopping it again: exit %d %q", r.code, r.stderr)
		}
	})

	t.Run("node eligibility holds new placements back", func(t *testing.T) {
		var nodes []structs.NodeRecord
		d.cliJSON(t, &nodes, "node", "status")
		if len(nodes) != 1 || !nodes[0].Eligible {
			t.Fatalf("node status -json: %+v", nodes)
		}
		name := nodes[0].Name
		if out := d.must(t, "node", "eligibility", "-disable", name); !strings.Contains(out, "is ineligible") {
			t.Fatalf("node eligibility -disable: %q", out)
		}
		if out := d.must(t, "node", "status", "-t", "{{range .}}{{.Eligible}}{{end}}"); out != "false\n" {
			t.Fatalf("node status -t after -disable: %q", out)
		}
		d.must(t, "job", "scale", "-detach", "ops", "3")
		testutil.Eventually(t, 30*time.Second, "the third copy queued", func() error {
			if q := jobStatusJSON(t).Summary.Summary["web"].Queued; q != 1 {
				return fmt.Errorf("queued %d", q)
			}
			return nil
		})
		if out := d.must(t, "job", "status", "ops"); !strings.Contains(out, "Placement Failure") {
			t.Fatalf("job status of a blocked job:\n%s", out)
		}
		if out := d.must(t, "node", "eligibility", "-enable", nodes[0].ID); !strings.Contains(out, "is eligible") {
			t.Fatalf("node eligibility -enable: %q", out)
		}
		testutil.Eventually(t, 60*time.Second, "three copies running once the node is eligible", func() error {
			if n := jobStatusJSON(t).Summary.Summary["web"]; n.Queued != 0 || n.Running < 3 {
				return fmt.Errorf("summary %+v", n)
			}
			return nil
		})
	})

	t.Run("server members", func(t *testing.T) {
		var m structs.ServerMembers
		d.cliJSON(t, &m, "server", "members")
		if len(m.Members) != 1 || m.Members[0].Status != structs.MemberAlive || !m.Members[0].Leader || m.Members[0].ID != m.ServerID {
			t.Fatalf("server members -json: %+v", m)
		}
		if out := d.must(t, "server", "members"); !strings.Contains(out, "alive") || !strings.Contains(out, m.Members[0].RaftAddr) {
			t.Fatalf("server members:\n%s", out)
		}
	})

	t.Run("read commands print the API's JSON", func(t *testing.T) {
		var ds []structs.Deployment
		d.cliJSON(t, &ds, "deployment", "list")
		if len(ds) != 1 || ds[0].JobID != "ops" {
			t.Fatalf("deployment list -json: %+v", ds)
		}
		var dep structs.Deployment
		d.cliJSON(t, &dep, "deployment", "status", short(ds[0].ID))
		if dep.ID != ds[0].ID || dep.Groups["web"] == nil {
			t.Fatalf("deployment status -json: %+v", dep)
		}
		var h structs.JobVersionsResponse
		d.cliJSON(t, &h, "job", "history", "ops")
		if len(h.Versions) != 4 || h.Versions[0].Version != 3 {
			t.Fatalf("job history -json: %d versions, newest %+v", len(h.Versions), h.Versions)
		}
		var mods []structs.Module
		d.cliJSON(t, &mods, "module", "list")
		if len(mods) != 1 || mods[0].Digest != digest {
			t.Fatalf("module list -json: %+v", mods)
		}
		var peers []structs.Peer
		d.cliJSON(t, &peers, "operator", "raft", "list-peers")
		var toks []structs.JoinToken
		d.cliJSON(t, &toks, "agent", "token", "list")
		if len(peers) != 1 || !peers[0].Leader {
			t.Fatalf("list-peers -json %+v", peers)
		}
		if out := d.must(t, "module", "list", "-t", "{{range .}}{{.Name}}@{{.Version}} {{.Size}}{{end}}"); !strings.HasPrefix(out, "hello@0.1.0 ") || strings.Contains(out, "e+") {
			t.Fatalf("module list -t: %q", out)
		}
	})

	t.Run("stop -purge, system gc and module delete", func(t *testing.T) {
		d.must(t, "run", jobFile("other"))
		r := d.cli("module", "delete", "hello@0.1.0")
		if r.code != 1 || !strings.Contains(r.stderr, "other@0 (current)") || !strings.Contains(r.stderr, "ops@") {
			t.Fatalf("deleting a module jobs use: exit %d %q", r.code, r.stderr)
		}
		for _, id := range []string{"ops", "other"} {
			if out := d.must(t, "stop", "-purge", id); !strings.Contains(out, "purged") {
				t.Fatalf("stop -purge %s: %q", id, out)
			}
		}
		if r := d.cli("job", "status", "ops"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Fatalf("job status of a purged job: exit %d %q", r.code, r.stderr)
		}
		if out := d.must(t, "status"); !strings.Contains(out, "No jobs.") {
			t.Fatalf("status after purging every job:\n%s", out)
		}
		// Process boundary: the agent stops what ran; once it reports
		// them finished, gc collects them and the versions they ran, and
		// the module is no longer in use.
		testutil.Eventually(t, 60*time.Second, "the module deletable after gc", func() error {
			out := d.must(t, "system", "gc")
			if !strings.Contains(out, "Garbage collected") {
				t.Fatalf("system gc: %q", out)
			}
			if r := d.cli("module", "delete", "hello@0.1.0"); r.code != 0 {
				return fmt.Errorf("module delete: %s (after %s)", r.stderr, strings.TrimSpace(out))
			}
			return nil
		})
		blob := filepath.Join(dataDir, "server", "modules", "sha256", strings.TrimPrefix(digest, "sha256:"))
		testutil.Eventually(t, 30*time.Second, "the module's blob deleted from the server's disk", func() error {
			if _, err := os.Stat(blob); err == nil {
				return fmt.Errorf("%s still there", blob)
			}
			return nil
		})
		var mods []structs.Module
		d.cliJSON(t, &mods, "module", "list")
		if len(mods) != 0 {
			t.Fatalf("module list after the delete: %+v", mods)
		}
		var allocs []structs.Alloc
		d.getJSON("/v1/allocations", &allocs)
		if len(allocs) != 0 {
			t.Fatalf("allocations left after purge and gc: %d", len(allocs))
		}
	})
}
