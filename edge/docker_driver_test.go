package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/internal/docker"
	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/internal/testdocker"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

// The docker driver against the machine's Docker daemon and the test
// image testdocker builds (a static Go server in a FROM scratch image):
// first one attempt at a time through runTaskOnce, then whole jobs through
// a real coordinator and agent. Without a daemon these tests fail; they do
// not skip.

// dockerAgent is testAgent with the docker driver and a node ID of its
// own. Every container of that node is removed at cleanup, after the
// test's runners have stopped, even when the test fails.
func dockerAgent(t *testing.T) (*Agent, *docker.Client, string) {
	t.Helper()
	c, image := testdocker.Hello(t)
	a := testAgent(t)
	a.nodeID = "test-" + fsutil.NewID()
	a.docker = connectDocker(context.Background(), "", a.log)
	if a.docker == nil {
		t.Fatal("no Docker Engine answers")
	}
	t.Cleanup(func() { removeNodeContainers(t, c, a.nodeID) })
	return a, c, image
}

// removeNodeContainers force-removes every container of a node and
// reports how many there were.
func removeNodeContainers(t *testing.T, c *docker.Client, nodeID string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := c.ContainerList(ctx, labelNode+"="+nodeID)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return 0
	}
	for _, ct := range list {
		if err := c.ContainerRemove(ctx, ct.ID, true); err != nil && !docker.IsNotFound(err) {
			t.Errorf("cleanup: %v", err)
		}
	}
	return len(list)
}

// nodeContainers lists a node's containers.
func nodeContainers(t *testing.T, c *docker.Client, nodeID string) []docker.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.ContainerList(ctx, labelNode+"="+nodeID)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func dockerTask(image string, args ...string) *spec.Task {
	return &spec.Task{
		Name: "task", Driver: "docker",
		Config:      spec.TaskConfig{Image: image, Args: args},
		Resources:   spec.Resources{CPU: 100, MemoryMB: 32},
		KillTimeout: spec.Duration(5 * time.Second),
	}
}

// startDockerTask runs one attempt of task in an allocation of its own
// with the given ports (Value 0 takes a free port).
func startDockerTask(t *testing.T, a *Agent, task *spec.Task, ports ...wire.Port) *taskRun {
	t.Helper()
	for i := range ports {
		if ports[i].Value == 0 {
			ports[i].Value = freeTCPPort(t)
		}
	}
	al := wire.Alloc{ID: "alloc-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), Name: "job.g[0]", JobID: "job", Group: "g",
		DesiredStatus: "run", Tasks: []*spec.Task{task}, Ports: ports}
	tr := &taskRun{r: newAllocRunner(a, al, nil), finished: make(chan struct{})}
	if len(ports) > 0 {
		tr.addr = fmt.Sprintf("%s:%d", a.cfg.BindAddr, ports[0].Value)
	}
	go func() {
		defer close(tr.finished)
		tr.err = tr.r.runTaskOnce(task)
	}()
	t.Cleanup(func() { tr.stop() })
	return tr
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReport waits until the allocation's reported status satisfies ok.
func waitReport(t *testing.T, a *Agent, tr *taskRun, what string, ok func(wire.AllocStatus) bool) wire.AllocStatus {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		a.statMu.Lock()
		st := a.statuses[tr.r.alloc.ID]
		a.statMu.Unlock()
		if ok(st) {
			return st
		}
		select {
		case <-a.statReady:
		case <-time.After(100 * time.Millisecond):
		case <-tr.finished:
			t.Fatalf("task ended (%v) while waiting for %s; status %+v", tr.err, what, st)
		case <-timeout:
			t.Fatalf("no %s after a minute; status %+v", what, st)
		}
	}
}

func readLog(t *testing.T, a *Agent, allocID, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, "allocs", allocID, "logs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A server container: its port published on the bind address with a
// container port of its own (`to`), env resolved, limits, labels, a
// passing health check, logs in the task's files, and a stop that gives
// it SIGTERM and removes it.
func TestDockerDriverServes(t *testing.T) {
	a, c, image := dockerAgent(t)
	task := dockerTask(image, "serve")
	task.Env = map[string]string{"GREETING": "alloc ${STRATA_ALLOC_ID} on ${STRATA_PORT_http}"}
	task.Resources = spec.Resources{CPU: 250, MemoryMB: 64, Networks: []*spec.Network{{Ports: []*spec.Port{{Label: "http", To: 8080}}}}}
	task.Services = []*spec.Service{{Name: "hello", Port: "http", Checks: []*spec.Check{
		{Type: "http", Path: "/health", Interval: spec.Duration(time.Second), Timeout: spec.Duration(time.Second)}}}}
	task.KillTimeout = spec.Duration(10 * time.Second)
	tr := startDockerTask(t, a, task, wire.Port{Label: "http", To: 8080})
	hostPort := tr.r.alloc.Ports[0].Value

	st := waitReport(t, a, tr, "a healthy endpoint", func(st wire.AllocStatus) bool {
		return st.ClientStatus == "running" && len(st.Endpoints) == 1 && st.Endpoints[0].Healthy
	})
	if ep := st.Endpoints[0]; ep.Service != "hello" || ep.Port != hostPort {
		t.Fatalf("endpoint %+v, want service hello on port %d", ep, hostPort)
	}
	if got := getBody(t, "http://"+tr.addr+"/x"); got != "hello from /x\n" {
		t.Fatalf("body %q", got)
	}
	env := "\n" + getBody(t, "http://"+tr.addr+"/env")
	for _, want := range []string{
		fmt.Sprintf("\nGREETING=alloc %s on %d\n", tr.r.alloc.ID, hostPort),
		"\nSTRATA_TASK_NAME=task\n", "\nNOMAD_ALLOC_ID=" + tr.r.alloc.ID + "\n",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("container env lacks %q:%s", want, env)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := containerName("task", tr.r.alloc.ID)
	info, err := c.ContainerInspect(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{labelAllocID: tr.r.alloc.ID, labelJob: "job", labelGroup: "g", labelTask: "task", labelNode: a.nodeID}
	for k, v := range wantLabels {
		if info.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, info.Config.Labels[k], v)
		}
	}
	h := info.HostConfig
	if h.Memory != 64<<20 || h.MemorySwap != 64<<20 || h.CPUShares != 250 || h.RestartPolicy.Name != "no" {
		t.Errorf("host config %+v", h)
	}
	if b := h.PortBindings["8080/tcp"]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != fmt.Sprint(hostPort) {
		t.Errorf("port bindings %+v, want 8080/tcp on 127.0.0.1:%d", h.PortBindings, hostPort)
	}

	if err := tr.stop(); err != nil {
		t.Fatalf("stopped task: %v", err)
	}
	if _, err := c.ContainerInspect(ctx, name); !docker.IsNotFound(err) {
		t.Fatalf("container after stop: %v, want it removed", err)
	}
	if out := readLog(t, a, tr.r.alloc.ID, "task.stdout"); !strings.Contains(out, "hello: serving on :8080\n") || !strings.Contains(out, "hello: stopping on SIGTERM\n") {
		t.Errorf("stdout log %q", out)
	}
	if errLog := readLog(t, a, tr.r.alloc.ID, "task.stderr"); !strings.Contains(errLog, "hello: GET /x\n") || !strings.Contains(errLog, "hello: GET /health\n") {
		t.Errorf("stderr log %q", errLog)
	}
}

// How a container ends decides what the runner does with the attempt.
func TestDockerDriverExit(t *testing.T) {
	t.Run("non-zero exit is an error with the code", func(t *testing.T) {
		a, c, image := dockerAgent(t)
		tr := startDockerTask(t, a, dockerTask(image, "exit", "3"))
		err := tr.wait()
		var exit *containerExitError
		if !errors.As(err, &exit) || exit.Code != 3 || exit.OOMKilled || err.Error() != "container exited with code 3" {
			t.Fatalf("runTaskOnce = %v, want exit code 3", err)
		}
		if out := readLog(t, a, tr.r.alloc.ID, "task.stdout"); out != "hello: exiting with code 3\n" {
			t.Errorf("stdout log %q", out)
		}
		if out := readLog(t, a, tr.r.alloc.ID, "task.stderr"); out != "hello: stderr before exit 3\n" {
			t.Errorf("stderr log %q", out)
		}
		if n := len(nodeContainers(t, c, a.nodeID)); n != 0 {
			t.Errorf("%d containers left after the attempt", n)
		}
	})

	t.Run("exit 0 completes the task", func(t *testing.T) {
		a, c, image := dockerAgent(t)
		task := dockerTask(image)
		task.Config.Command, task.Config.Args = "exit", []string{"0"}
		tr := startDockerTask(t, a, task)
		st := waitReport(t, a, tr, "status complete", func(st wire.AllocStatus) bool { return st.ClientStatus == "complete" })
		if !strings.Contains(st.Description, "exited 0 after") {
			t.Errorf("description %q", st.Description)
		}
		if n := len(nodeContainers(t, c, a.nodeID)); n != 0 {
			t.Errorf("%d containers left by a complete task", n)
		}
		select {
		case <-tr.finished:
			t.Fatalf("a complete task returned %v before the runner stopped: it would be restarted", tr.err)
		default:
		}
		if err := tr.stop(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("memory limit", func(t *testing.T) {
		a, _, image := dockerAgent(t)
		task := dockerTask(image, "eat", "128")
		task.Resources.MemoryMB = 16
		err := startDockerTask(t, a, task).wait()
		var exit *containerExitError
		if !errors.As(err, &exit) || !exit.OOMKilled || !strings.Contains(err.Error(), "killed for exceeding its memory limit of 16 MB") {
			t.Fatalf("runTaskOnce = %v, want an OOM kill", err)
		}
	})
}

func TestDockerDriverMissingImage(t *testing.T) {
	a, _, _ := dockerAgent(t)
	err := startDockerTask(t, a, dockerTask("strata-test/absent:0")).wait()
	if err == nil || !strings.Contains(err.Error(), "image strata-test/absent:0 is not on this node and could not be pulled: ") ||
		!strings.Contains(err.Error(), "load it with docker load") {
		t.Fatalf("runTaskOnce = %v", err)
	}
}

func TestDockerDriverUnavailable(t *testing.T) {
	a := testAgent(t)
	err := startDockerTask(t, a, dockerTask("strata-test/hello:1")).wait()
	if err == nil || !strings.Contains(err.Error(), "driver docker is not available on this agent") {
		t.Fatalf("runTaskOnce = %v", err)
	}
}

// At start the agent removes its node's containers, and only those.
func TestRemoveStaleContainers(t *testing.T) {
	a, c, image := dockerAgent(t)
	other := "test-" + fsutil.NewID()
	t.Cleanup(func() { removeNodeContainers(t, c, other) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, node := range []string{a.nodeID, a.nodeID, other} {
		cfg := &docker.ContainerConfig{Image: image, Labels: map[string]string{labelNode: node, labelAllocID: "a"}}
		created, err := c.ContainerCreate(ctx, fmt.Sprintf("strata-stale-%s-%d", node, i), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := c.ContainerStart(ctx, created.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.removeStaleContainers(ctx)
	if left := nodeContainers(t, c, a.nodeID); len(left) != 0 {
		t.Errorf("the node's containers after removeStaleContainers: %+v", left)
	}
	if left := nodeContainers(t, c, other); len(left) != 1 {
		t.Errorf("another node's containers: %+v, want the one untouched", left)
	}
}

// The container a task gets, without a daemon.
func TestContainerConfig(t *testing.T) {
	a := testAgent(t)
	a.nodeID = "n1"
	task := &spec.Task{
		Name: "web", Driver: "docker",
		Config: spec.TaskConfig{Image: "app:1", Command: "/bin/app", Args: []string{"-v"}, Ports: []string{"admin", "http"}},
		Env:    map[string]string{"B": "2", "A": "1"},
		Resources: spec.Resources{CPU: 1, MemoryMB: 128, Networks: []*spec.Network{{Ports: []*spec.Port{
			{Label: "http", To: 80}, {Label: "metrics"}}}}},
	}
	al := wire.Alloc{ID: "a1", JobID: "j", Group: "g", Tasks: []*spec.Task{task}, Ports: []wire.Port{
		{Label: "admin", Value: 25002}, {Label: "http", Value: 25000, To: 80}, {Label: "metrics", Value: 25001}, {Label: "unused", Value: 25003}}}
	r := newAllocRunner(a, al, nil)
	ports := r.dockerPorts(task)
	if got := portLabels(ports); !slices.Equal(got, []string{"http", "metrics", "admin"}) {
		t.Fatalf("published ports %v, want the task's own, then config.ports' others", got)
	}
	cfg := r.containerConfig(task, ports)
	if !slices.Equal(cfg.Cmd, []string{"/bin/app", "-v"}) {
		t.Errorf("cmd %q", cfg.Cmd)
	}
	if cfg.Env[0] != "A=1" || cfg.Env[1] != "B=2" || !slices.Contains(cfg.Env, "STRATA_PORT_unused=25003") {
		t.Errorf("env %q: want sorted, with every port of the group", cfg.Env)
	}
	wantBind := map[string]string{"80/tcp": "25000", "25001/tcp": "25001", "25002/tcp": "25002"}
	if len(cfg.ExposedPorts) != len(wantBind) || len(cfg.HostConfig.PortBindings) != len(wantBind) {
		t.Errorf("exposed %v, bindings %v", cfg.ExposedPorts, cfg.HostConfig.PortBindings)
	}
	for key, hostPort := range wantBind {
		b := cfg.HostConfig.PortBindings[key]
		if _, ok := cfg.ExposedPorts[key]; !ok || len(b) != 1 || b[0] != (docker.PortBinding{HostIP: "127.0.0.1", HostPort: hostPort}) {
			t.Errorf("%s: exposed %v, bindings %v; want 127.0.0.1:%s", key, cfg.ExposedPorts, b, hostPort)
		}
	}
	if h := cfg.HostConfig; h.Memory != 128<<20 || h.MemorySwap != 128<<20 || h.CPUShares != 2 || h.RestartPolicy.Name != "no" {
		t.Errorf("host config %+v", h)
	}
	if cfg.Labels[labelNode] != "n1" || cfg.Labels[labelTask] != "web" || cfg.Labels[labelAllocID] != "a1" {
		t.Errorf("labels %v", cfg.Labels)
	}

	task.Config.Command = ""
	if cfg := r.containerConfig(task, nil); !slices.Equal(cfg.Cmd, []string{"-v"}) {
		t.Errorf("args alone: cmd %q", cfg.Cmd)
	}
	task.Config.Args = nil
	if cfg := r.containerConfig(task, nil); cfg.Cmd != nil {
		t.Errorf("neither command nor args: cmd %q, want the image's", cfg.Cmd)
	}
}

func portLabels(ps []wire.Port) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Label)
	}
	return out
}

func TestContainerName(t *testing.T) {
	for task, want := range map[string]string{
		"web":      "strata-web-a1b2",
		"web.v2_x": "strata-web.v2_x-a1b2",
		"a b/c":    "strata-a-b-c-a1b2",
	} {
		if got := containerName(task, "a1b2"); got != want {
			t.Errorf("containerName(%q) = %q, want %q", task, got, want)
		}
	}
}

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
	waitFor(t, "the docker service to serve", time.Minute, func() bool {
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
	if out := readLog(t, f.agent, webAlloc.ID, "hello.stdout"); !strings.Contains(out, "hello: serving on :"+strings.Split(webAddr, ":")[1]+"\n") {
		t.Errorf("stdout log %q", out)
	}
	// Logs reach the files through the daemon's log stream: soon, not at once.
	waitFor(t, "the request in the stderr log", 10*time.Second, func() bool {
		return strings.Contains(readLog(t, f.agent, webAlloc.ID, "hello.stderr"), "hello: GET /x\n")
	})

	// The failing container ran twice (one restart), then failed the
	// allocation with its exit code. (The coordinator may then place a
	// replacement; the first allocation is the one looked at.)
	var failed *coordinator.Alloc
	waitFor(t, "the failing allocation to fail", time.Minute, func() bool {
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
	if out := readLog(t, f.agent, failed.ID, "boom.stdout"); strings.Count(out, "hello: exiting with code 3\n") != 2 {
		t.Errorf("stdout log %q: want two runs", out)
	}
	if ts := failed.TaskStates["boom"]; ts == nil || !ts.Failed || ts.Restarts != 1 || terminations(ts.Events) != "Exit Code: 3|Exit Code: 3" {
		t.Errorf("task state %+v: want failed after 1 restart, two Terminated events with exit code 3", ts)
	}

	// Stopping the jobs removes their containers; the wasm task serves on.
	stopJob(t, f.srv, "web")
	stopJob(t, f.srv, "fail")
	waitFor(t, "the agent to report every allocation ended", 30*time.Second, func() bool {
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
	if out := readLog(t, f.agent, webAlloc.ID, "hello.stdout"); !strings.Contains(out, "hello: stopping on SIGTERM\n") {
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
	waitFor(t, "the placement failure", 30*time.Second, func() bool {
		var resp coordinator.JobAllocsResponse
		rec := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/job/web/allocations", nil))
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil || resp.LatestEval == nil {
			return false
		}
		e := resp.LatestEval.Failed["g"]
		return len(resp.Allocations) == 0 && e != nil && strings.Contains(e.String(), "missing driver docker")
	})
}

func register(t *testing.T, srv *coordinator.Server, name, src string) {
	t.Helper()
	job, err := spec.Parse(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
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
func onlyAlloc(t *testing.T, srv *coordinator.Server, job string) *coordinator.Alloc {
	t.Helper()
	var allocs []*coordinator.Alloc
	waitFor(t, "an allocation of "+job, 30*time.Second, func() bool {
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

// A container's exit becomes a Terminated event with its code.
func TestContainerExitEvent(t *testing.T) {
	for _, tc := range []struct {
		err  *containerExitError
		want string
	}{
		{&containerExitError{Code: 3}, "Exit Code: 3"},
		{&containerExitError{Code: 137, OOMKilled: true, MemoryMB: 16}, `Exit Code: 137, Exit Message: "OOM Killed"`},
	} {
		ts := &wire.TaskState{}
		now := time.Unix(100, 0)
		taskStarted(ts, now, "started")
		taskEnded(ts, now, fmt.Errorf("wrapped: %w", tc.err))
		ev := ts.Events[len(ts.Events)-1]
		if ev.Type != wire.EventTerminated || ev.Message != tc.want || ev.ExitCode == nil || *ev.ExitCode != tc.err.Code {
			t.Errorf("event %+v, want Terminated %q with exit code %d", ev, tc.want, tc.err.Code)
		}
	}
}

// A check_restart ends a container's attempt like a wasm task's: the
// container is stopped and removed, and the attempt's error says why.
func TestDockerDriverCheckRestart(t *testing.T) {
	a, c, image := dockerAgent(t)
	task := dockerTask(image, "serve")
	task.Env = map[string]string{"PORT": "9999"} // not the published port: the check fails
	task.Resources.Networks = []*spec.Network{{Ports: []*spec.Port{{Label: "http"}}}}
	task.Services = []*spec.Service{{Name: "hello", Port: "http", Checks: []*spec.Check{{
		Type: "http", Path: "/", Interval: spec.Duration(100 * time.Millisecond), Timeout: spec.Duration(100 * time.Millisecond),
		CheckRestart: &spec.CheckRestart{Limit: 2, Grace: spec.Duration(100 * time.Millisecond)}}}}}
	tr := startDockerTask(t, a, task, wire.Port{Label: "http"})
	err := tr.wait()
	var cr *checkRestartError
	if !errors.As(err, &cr) {
		t.Fatalf("runTaskOnce = %v, want a check restart", err)
	}
	if left := nodeContainers(t, c, a.nodeID); len(left) != 0 {
		t.Errorf("containers left after the attempt: %+v", left)
	}
	if out := readLog(t, a, tr.r.alloc.ID, "task.stdout"); !strings.Contains(out, "hello: stopping on SIGTERM\n") {
		t.Errorf("stdout log %q: want the container stopped with SIGTERM", out)
	}
}
