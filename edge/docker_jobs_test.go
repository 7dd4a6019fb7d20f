package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/testdocker"
	"github.com/strata-run/strata/internal/wire"
)

// Whole jobs through a real coordinator and agent: a docker service and
// a wasm service side by side on one agent, a container that keeps
// failing, and stopping the jobs, after which no container of the node is
// left.
func TestDockerJobs(t *testing.T) {
	c, _ := testdocker.Hello(t)
	var nodeID string
	t.Cleanup(func() { // after the agent has stopped (registered first, runs last)
		if nodeID != "" {
			if n := removeNodeContainers(t, c, nodeID); n != 0 {
				t.Errorf("%d containers left after the agent stopped", n)
			}
		}
	})
	f := newLinkFixture(t)
	nodeID = f.agent.NodeID()
	node, err := f.srv.Store().Node(nodeID)
	if err != nil || !node.Drivers["docker"] || !node.Drivers["wasm"] || node.Attributes["driver.docker.version"] == "" {
		t.Fatalf("node %+v, %v: want drivers docker and wasm, and driver.docker.version", node, err)
	}
	tinyAddr := f.deployTiny(t)

	register(t, f.srv, "web.hcl", `
job "web" {
  group "g" {
    task "hello" {
      driver = "docker"
      config {
        image = "`+testdocker.HelloImage+`"
        args  = ["serve"]
      }
      env { PORT = "${STRATA_PORT_http}" }
      kill_timeout = "10s"
      resources {
        cpu    = 100
        memory = 32
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
}`)
	register(t, f.srv, "fail.hcl", `
job "fail" {
  group "g" {
    task "boom" {
      driver = "docker"
      config {
        image   = "`+testdocker.HelloImage+`"
        command = "exit"
        args    = ["3"]
      }
      restart {
        attempts = 1
        interval = "1m"
        delay    = "0s"
        mode     = "fail"
      }
      resources {
        cpu    = 100
        memory = 16
      }
    }
  }
}`)

	// The docker service answers through its published port, next to the
	// wasm one.
	var webAddr string
	waitState(t, f.srv, "the docker service to serve", time.Minute, func() bool {
		eps := f.srv.Store().Endpoints("web-g-hello")
		if len(eps) != 1 || !eps[0].Healthy {
			return false
		}
		webAddr = fmt.Sprintf("%s:%d", eps[0].Address, eps[0].Port)
		return true
	})
	if got := getBody(t, "http://"+webAddr+"/x"); got != "hello from /x\n" {
		t.Fatalf("docker service: %q", got)
	}
	if got := getBody(t, "http://"+tinyAddr+"/"); got != "hello" {
		t.Fatalf("wasm service beside it: %q", got)
	}
	webAlloc := onlyAlloc(t, f.srv, "web")
	// Logs reach the files through the daemon's log stream: soon, not at
	// once. Read them as a user does, followed through the coordinator.
	followLog(t, f.srv, webAlloc.ID, "hello", "stdout", "hello: serving on :"+strings.Split(webAddr, ":")[1]+"\n")
	followLog(t, f.srv, webAlloc.ID, "hello", "stderr", "hello: GET /x\n")

	// The failing container ran twice (one restart), then failed the
	// allocation with its exit code. (The coordinator may then place a
	// replacement; the first allocation is the one looked at.)
	var failed *structs.Alloc
	waitState(t, f.srv, "the failing allocation to fail", time.Minute, func() bool {
		allocs, _ := f.srv.Store().JobAllocs("fail")
		for _, al := range allocs {
			if al.ClientStatus == "failed" {
				failed = al
				return true
			}
		}
		return false
	})
	if d := failed.ClientDescription; !strings.Contains(d, "container exited with code 3") || !strings.Contains(d, "not restarting: 1 attempts") {
		t.Errorf("description %q", d)
	}
	if out := readLog(t, f.agent.cfg.DataDir, failed.ID, "boom.stdout"); strings.Count(out, "hello: exiting with code 3\n") != 2 {
		t.Errorf("stdout log %q: want two runs", out)
	}
	if ts := failed.TaskStates["boom"]; ts == nil || !ts.Failed || ts.Restarts != 1 || terminations(ts.Events) != "Exit Code: 3|Exit Code: 3" {
		t.Errorf("task state %+v: want failed after 1 restart, two Terminated events with exit code 3", ts)
	}

	// Stopping the jobs removes their containers; the wasm task serves on.
	stopJob(t, f.srv, "web")
	stopJob(t, f.srv, "fail")
	waitState(t, f.srv, "the agent to report every allocation ended", 30*time.Second, func() bool {
		for _, job := range []string{"web", "fail"} {
			allocs, _ := f.srv.Store().JobAllocs(job)
			for _, al := range allocs {
				if al.ClientStatus != "complete" && al.ClientStatus != "failed" {
					return false
				}
			}
		}
		return true
	})
	// A runner removes its containers before the agent reports it ended.
	if left := nodeContainers(t, c, nodeID); len(left) != 0 {
		t.Fatalf("containers left after the jobs stopped: %+v", left)
	}
	if out := readLog(t, f.agent.cfg.DataDir, webAlloc.ID, "hello.stdout"); !strings.Contains(out, "hello: stopping on SIGTERM\n") {
		t.Errorf("stdout log after stop %q: want a graceful stop", out)
	}
	if got := getBody(t, "http://"+tinyAddr+"/"); got != "hello" {
		t.Fatalf("wasm service after the docker jobs stopped: %q", got)
	}
}

// An agent that finds no Docker Engine does not offer docker, and a
// docker job gets the scheduler's explanation.
func TestDockerNotOffered(t *testing.T) {
	f := newLinkFixture(t, func(c *Config) { c.DockerHost = "unix://" + filepath.Join(t.TempDir(), "no-docker.sock") })
	node, err := f.srv.Store().Node(f.agent.NodeID())
	if err != nil || node.Drivers["docker"] || !node.Drivers["wasm"] || node.Attributes["driver.docker"] != "" {
		t.Fatalf("node %+v, %v: want wasm only", node, err)
	}
	register(t, f.srv, "web.hcl", `
job "web" {
  group "g" {
    task "hello" {
      driver = "docker"
      config { image = "strata-test/hello:1" }
    }
  }
}`)
	waitState(t, f.srv, "the placement failure", 30*time.Second, func() bool {
		var resp structs.JobAllocsResponse
		rec := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/job/web/allocations", nil))
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil || resp.LatestEval == nil {
			return false
		}
		e := resp.LatestEval.Failed["g"]
		return len(resp.Allocations) == 0 && e != nil && strings.Contains(e.String(), "missing driver docker")
	})
}

func stopJob(t *testing.T, srv *coordinator.Server, id string) {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/v1/job/"+id, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("stop %s: %d %s", id, rec.Code, rec.Body)
	}
}

// onlyAlloc is the job's one allocation (nil-safe: fails the test when
// there is not exactly one).
func onlyAlloc(t *testing.T, srv *coordinator.Server, job string) *structs.Alloc {
	t.Helper()
	var allocs []*structs.Alloc
	waitState(t, srv, "an allocation of "+job, 30*time.Second, func() bool {
		allocs, _ = srv.Store().JobAllocs(job)
		return len(allocs) > 0
	})
	if len(allocs) != 1 {
		t.Fatalf("job %s has %d allocations, want 1", job, len(allocs))
	}
	return allocs[0]
}

// terminations are the Terminated events' messages, for those that carry
// an exit code.
func terminations(evs []wire.TaskEvent) string {
	var out []string
	for _, ev := range evs {
		if ev.Type == wire.EventTerminated && ev.ExitCode != nil && fmt.Sprintf("Exit Code: %d", *ev.ExitCode) == ev.Message {
			out = append(out, ev.Message)
		}
	}
	return strings.Join(out, "|")
}

// followLog follows a task's log through the coordinator, as `strata alloc
// logs -f` does, until want has been streamed.
func followLog(t *testing.T, srv *coordinator.Server, allocID, task, typ, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := srv.AllocLogs(ctx, structs.LogRequest{AllocID: allocID, Task: task, Type: typ, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), want) {
		n, err := rc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("%s of %s streamed %q, then %v; want %q", typ, task, got, err, want)
		}
	}
}

// An agent that restarts (its previous run died, the containers ran on)
// re-attaches to the containers of the allocations in its local state
// instead of restarting them, and removes the ones no allocation owns;
// when it then stops, it stops and removes what it re-attached to.
func TestAgentReattachesContainersAfterRestart(t *testing.T) {
	c, image := testdocker.Hello(t)
	dir := t.TempDir()
	newAgent := func() *Agent {
		a, err := New(context.Background(), Config{Servers: []string{"127.0.0.1:1"}, CAPin: testPin, JoinToken: "unused.never-dialled",
			DataDir: dir, NodeName: "t", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if a.docker == nil {
			t.Fatal("no Docker Engine answers")
		}
		return a
	}
	a := newAgent()
	node := a.NodeID()
	t.Cleanup(func() { removeNodeContainers(t, c, node) })
	task := dockerTask(image, "serve")
	task.Resources.Ports = []string{"http"}
	al := testAlloc(t, task, wire.Port{Label: "http", To: 8080})
	if err := a.local.save([]wire.Alloc{al}); err != nil {
		t.Fatal(err)
	}
	// The previous run: it started the container, wrote its first line to
	// the task's log, and died.
	ts, err := newAllocRunner(a.allocs.deps, al, nil, false).taskSpec(&task)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := openTaskLogs(dir, al.ID, task.Name)
	if err != nil {
		t.Fatal(err)
	}
	var seen logBuffer
	ts.Stdout, ts.Stderr = io.MultiWriter(stdout, &seen), stderr
	h, err := a.docker.start(context.Background(), ts)
	if err != nil {
		t.Fatal(err)
	}
	seen.waitFor(t, "hello: serving on :8080\n")
	h.(*containerTask).abandon()
	stdout.Close()
	stderr.Close()
	first := h.(*containerTask).id
	stale, err := c.ContainerCreate(context.Background(), "strata-stale-"+node, &container.Config{Image: image,
		Labels: map[string]string{labelNode: node, labelAllocID: "gone", labelTask: "web"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.shutdown()

	b := newAgent()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	st := waitReport(t, b.outbox, al.ID, nil, "the task running again", func(st wire.AllocStatus) bool { return st.ClientStatus == "running" })
	ev := st.TaskStates["task"].Events
	if last := ev[len(ev)-1]; last.Type != wire.EventStarted || !strings.Contains(last.Message, "re-attached after an agent restart") {
		t.Fatalf("events %+v, want the task re-attached", ev)
	}
	left := nodeContainers(t, c, node)
	if len(left) != 1 || left[0].ID != first {
		t.Fatalf("the node's containers %+v, want only %s, the one the previous run started", left, shortID(first))
	}
	if _, err := c.ContainerInspect(context.Background(), stale.ID); !cerrdefs.IsNotFound(err) {
		t.Fatalf("a container no allocation owns: %v, want it removed at start", err)
	}
	if got := getBody(t, fmt.Sprintf("http://127.0.0.1:%d/again", al.Ports[0].Value)); got != "hello from /again\n" {
		t.Fatalf("the re-attached task answers %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if left := nodeContainers(t, c, node); len(left) != 0 {
		t.Fatalf("containers after the agent stopped: %+v", left)
	}
	out := readLog(t, dir, al.ID, "task.stdout")
	if strings.Count(out, "hello: serving on") != 1 || !strings.HasSuffix(out, "hello: stopping on SIGTERM\n") {
		t.Fatalf("stdout log %q: want the start once (nothing written twice) and the stop", out)
	}
	if errLog := readLog(t, dir, al.ID, "task.stderr"); !strings.Contains(errLog, "hello: GET /again\n") {
		t.Fatalf("stderr log %q: want the request served after the restart", errLog)
	}
}
