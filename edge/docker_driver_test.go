package edge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/strata-run/strata/internal/docker"
	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/internal/testdocker"
	"github.com/strata-run/strata/internal/wire"
)

// The docker driver against the machine's Docker daemon and the test
// image testdocker builds (a static Go server in a FROM scratch image):
// one attempt at a time, then whole jobs through a real coordinator and
// agent (docker_jobs_test.go). Without a daemon these tests fail; they do
// not skip.

// dockerNode is a test node with the docker driver and a node ID of its
// own. Every container of that node is removed at cleanup, after the
// test's runners have stopped, even when the test fails.
func dockerNode(t *testing.T) (*testNode, *docker.Client, string) {
	t.Helper()
	c, image := testdocker.Hello(t)
	n := newTestNode(t)
	n.deps.node.id = "test-" + fsutil.NewID()
	dc, _, err := connectDocker(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	n.docker = &dockerDriver{c: dc, nodeID: n.deps.node.id, bindAddr: "127.0.0.1", log: n.deps.log}
	n.drivers[wire.DriverDocker] = n.docker
	t.Cleanup(func() { removeNodeContainers(t, c, n.deps.node.id) })
	return n, c, image
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
		if err := c.ContainerRemove(ctx, ct.ID, true); err != nil && !cerrdefs.IsNotFound(err) {
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

func dockerTask(image string, args ...string) wire.Task {
	return wire.Task{
		Name: "task", Driver: wire.DriverDocker,
		Config:      wire.TaskConfig{Image: image, Args: args},
		Resources:   wire.Resources{CPU: 100, MemoryMB: 32},
		KillTimeout: 5 * time.Second,
	}
}

func readLog(t *testing.T, dir, allocID, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "allocs", allocID, "logs", name))
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
	n, c, image := dockerNode(t)
	task := dockerTask(image, "serve")
	task.Env = map[string]string{"GREETING": "alloc ${STRATA_ALLOC_ID} on ${STRATA_PORT_http}"}
	task.Resources = wire.Resources{CPU: 250, MemoryMB: 64, Ports: []string{"http"}}
	task.Services = []wire.Service{{Name: "hello", Port: "http", Checks: []wire.Check{
		{Type: "http", Path: "/health", Interval: time.Second, Timeout: time.Second}}}}
	task.KillTimeout = 10 * time.Second
	al := testAlloc(t, task, wire.Port{Label: "http", To: 8080})
	ar := startAttempt(t, n, al, false)
	hostPort := al.Ports[0].Value

	st := waitReport(t, n.outbox, al.ID, ar.finished, "a healthy endpoint", func(st wire.AllocStatus) bool {
		return st.ClientStatus == "running" && len(st.Endpoints) == 1 && st.Endpoints[0].Healthy
	})
	if ep := st.Endpoints[0]; ep.Service != "hello" || ep.Port != hostPort {
		t.Fatalf("endpoint %+v, want service hello on port %d", ep, hostPort)
	}
	if got := getBody(t, "http://"+ar.addr+"/x"); got != "hello from /x\n" {
		t.Fatalf("body %q", got)
	}
	env := "\n" + getBody(t, "http://"+ar.addr+"/env")
	for _, want := range []string{
		fmt.Sprintf("\nGREETING=alloc %s on %d\n", al.ID, hostPort),
		"\nSTRATA_TASK_NAME=task\n", "\nNOMAD_ALLOC_ID=" + al.ID + "\n",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("container env lacks %q:%s", want, env)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := containerName("task", al.ID)
	info, err := c.ContainerInspect(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{labelAllocID: al.ID, labelJob: "job", labelGroup: "g", labelTask: "task", labelNode: n.deps.node.id}
	for k, v := range wantLabels {
		if info.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, info.Config.Labels[k], v)
		}
	}
	if len(info.Config.Labels[labelConfig]) != 24 {
		t.Errorf("label %s = %q, want the configuration's hash", labelConfig, info.Config.Labels[labelConfig])
	}
	h := info.HostConfig
	if h.Memory != 64<<20 || h.MemorySwap != 64<<20 || h.CPUShares != 250 || h.NanoCPUs != 0 || h.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Errorf("host config %+v, restart policy %q", h.Resources, h.RestartPolicy.Name)
	}
	if b := h.PortBindings[network.MustParsePort("8080/tcp")]; len(b) != 1 || b[0].HostIP.String() != "127.0.0.1" || b[0].HostPort != fmt.Sprint(hostPort) {
		t.Errorf("port bindings %+v, want 8080/tcp on 127.0.0.1:%d", h.PortBindings, hostPort)
	}

	if err := ar.stop(); err != nil {
		t.Fatalf("stopped task: %v", err)
	}
	if _, err := c.ContainerInspect(ctx, name); !cerrdefs.IsNotFound(err) {
		t.Fatalf("container after stop: %v, want it removed", err)
	}
	if out := readLog(t, n.dir, al.ID, "task.stdout"); !strings.Contains(out, "hello: serving on :8080\n") || !strings.Contains(out, "hello: stopping on SIGTERM\n") {
		t.Errorf("stdout log %q", out)
	}
	if errLog := readLog(t, n.dir, al.ID, "task.stderr"); !strings.Contains(errLog, "hello: GET /x\n") || !strings.Contains(errLog, "hello: GET /health\n") {
		t.Errorf("stderr log %q", errLog)
	}
}

// How a container ends decides what the runner does with the attempt.
func TestDockerDriverExit(t *testing.T) {
	t.Run("non-zero exit is an error with the code", func(t *testing.T) {
		n, c, image := dockerNode(t)
		al := testAlloc(t, dockerTask(image, "exit", "3"))
		ar := startAttempt(t, n, al, false)
		err := ar.wait()
		var exit *containerExitError
		if !errors.As(err, &exit) || exit.Code != 3 || exit.OOMKilled || err.Error() != "container exited with code 3" {
			t.Fatalf("runAttempt = %v, want exit code 3", err)
		}
		if out := readLog(t, n.dir, al.ID, "task.stdout"); out != "hello: exiting with code 3\n" {
			t.Errorf("stdout log %q", out)
		}
		if out := readLog(t, n.dir, al.ID, "task.stderr"); out != "hello: stderr before exit 3\n" {
			t.Errorf("stderr log %q", out)
		}
		if n := len(nodeContainers(t, c, n.deps.node.id)); n != 0 {
			t.Errorf("%d containers left after the attempt", n)
		}
	})

	t.Run("exit 0 completes the task", func(t *testing.T) {
		n, c, image := dockerNode(t)
		task := dockerTask(image)
		task.Config.Command, task.Config.Args = "exit", []string{"0"}
		al := testAlloc(t, task)
		r, done := startRunner(t, n, al)
		st := waitStatus(t, n.outbox, al.ID, done, "complete")
		if !strings.Contains(st.Description, "exited 0 after") {
			t.Errorf("description %q", st.Description)
		}
		if n := len(nodeContainers(t, c, n.deps.node.id)); n != 0 {
			t.Errorf("%d containers left by a complete task", n)
		}
		if ts := r.taskStates()["task"]; ts.Restarts != 0 || ts.Failed {
			t.Fatalf("a complete task %+v was restarted or failed", ts)
		}
	})

	t.Run("memory limit", func(t *testing.T) {
		n, _, image := dockerNode(t)
		task := dockerTask(image, "eat", "128")
		task.Resources.MemoryMB = 16
		err := startAttempt(t, n, testAlloc(t, task), false).wait()
		var exit *containerExitError
		if !errors.As(err, &exit) || !exit.OOMKilled || !strings.Contains(err.Error(), "killed for exceeding its memory limit of 16 MB") {
			t.Fatalf("runAttempt = %v, want an OOM kill", err)
		}
	})
}

func TestDockerDriverMissingImage(t *testing.T) {
	n, _, _ := dockerNode(t)
	err := startAttempt(t, n, testAlloc(t, dockerTask("strata-test/absent:0")), false).wait()
	if err == nil || !strings.Contains(err.Error(), "image strata-test/absent:0 is not on this node and could not be pulled: ") ||
		!strings.Contains(err.Error(), "load it with docker load") {
		t.Fatalf("runAttempt = %v", err)
	}
}

// An agent without a Docker Engine says why a docker task cannot run.
func TestDockerDriverUnavailable(t *testing.T) {
	a := &Agent{drivers: map[string]driver{}, unavailable: map[string]string{wire.DriverDocker: "no Docker Engine answered when it started"}}
	if _, err := a.driver(wire.DriverDocker); err == nil || err.Error() != "driver docker is not available on this agent: no Docker Engine answered when it started" {
		t.Fatalf("driver(docker) = %v", err)
	}
	if _, err := a.driver("qemu"); err == nil || !strings.Contains(err.Error(), `driver "qemu" is not available on this agent`) {
		t.Fatalf("driver(qemu) = %v", err)
	}
}

// At start the agent removes its node's containers that no restored
// allocation owns, and only those.
func TestDockerPrune(t *testing.T) {
	n, c, image := dockerNode(t)
	node := n.deps.node.id
	other := "test-" + fsutil.NewID()
	t.Cleanup(func() { removeNodeContainers(t, c, other) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, ct := range []struct{ node, alloc, task string }{
		{node, "kept", "web"}, {node, "kept", "gone"}, {node, "stale", "web"}, {other, "stale", "web"},
	} {
		cfg := &container.Config{Image: image, Labels: map[string]string{labelNode: ct.node, labelAllocID: ct.alloc, labelTask: ct.task}}
		created, err := c.ContainerCreate(ctx, fmt.Sprintf("strata-prune-%s-%d", ct.node, i), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if err := c.ContainerStart(ctx, created.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.docker.prune(ctx, func(allocID, task string) bool { return allocID == "kept" && task == "web" })
	left := nodeContainers(t, c, node)
	if len(left) != 1 || left[0].Labels[labelAllocID] != "kept" || left[0].Labels[labelTask] != "web" {
		t.Errorf("the node's containers after prune: %+v, want only the kept task's", left)
	}
	if left := nodeContainers(t, c, other); len(left) != 1 {
		t.Errorf("another node's containers: %+v, want the one untouched", left)
	}
}

// The container a task gets, without a daemon, in the Engine API's types
// as they are sent; its hash label follows the configuration, and is the
// one the agent computed before it moved to the official client, so
// containers started by an older agent are re-attached to after an
// upgrade.
func TestContainerConfig(t *testing.T) {
	n := newTestNode(t)
	n.deps.node.id = "n1"
	// A fixed data directory: the allocation's directories are bind
	// mounts, part of the hash pinned below.
	n.deps.dataDir, n.dir = "/tmp/strata-test-container-config", "/tmp/strata-test-container-config"
	t.Cleanup(func() { os.RemoveAll(n.deps.dataDir) })
	d := &dockerDriver{nodeID: "n1", bindAddr: "127.0.0.1"}
	task := wire.Task{
		Name: "web", Driver: wire.DriverDocker,
		Config:    wire.TaskConfig{Image: "app:1", Command: "/bin/app", Args: []string{"-v"}, Ports: []string{"admin", "http"}},
		Env:       map[string]string{"B": "2", "A": "1"},
		Resources: wire.Resources{CPU: 1, MemoryMB: 128, Ports: []string{"http", "metrics"}},
	}
	al := wire.Alloc{ID: "a1", JobID: "j", Group: "g", Tasks: []wire.Task{task}, Ports: []wire.Port{
		{Label: "admin", Value: 25002}, {Label: "http", Value: 25000, To: 80}, {Label: "metrics", Value: 25001}, {Label: "unused", Value: 25003}}}
	r := newAllocRunner(n.deps, al, nil, false)
	spec := func(t wire.Task) *taskSpec {
		ts, err := r.taskSpec(&t)
		if err != nil {
			panic(err)
		}
		return ts
	}
	api := func(t *testing.T, s *containerSpec) (*container.Config, *container.HostConfig) {
		t.Helper()
		cfg, host, err := s.api()
		if err != nil {
			t.Fatal(err)
		}
		return cfg, host
	}
	ts := spec(task)
	if got := portLabels(ts.Ports); !slices.Equal(got, []string{"http", "metrics", "admin"}) {
		t.Fatalf("published ports %v, want the task's own, then config.ports' others", got)
	}
	s := d.containerConfig(ts)
	cfg, host := api(t, s)
	if cfg.Image != "app:1" || !slices.Equal(cfg.Cmd, []string{"/bin/app", "-v"}) || cfg.Entrypoint != nil {
		t.Errorf("image %q cmd %q entrypoint %q: want the image's entrypoint kept", cfg.Image, cfg.Cmd, cfg.Entrypoint)
	}
	if cfg.Env[0] != "A=1" || cfg.Env[1] != "B=2" || !slices.Contains(cfg.Env, "STRATA_PORT_unused=25003") {
		t.Errorf("env %q: want sorted, with every port of the group", cfg.Env)
	}
	wantBind := map[string]string{"80/tcp": "25000", "25001/tcp": "25001", "25002/tcp": "25002"}
	if len(cfg.ExposedPorts) != len(wantBind) || len(host.PortBindings) != len(wantBind) {
		t.Errorf("exposed %v, bindings %v", cfg.ExposedPorts, host.PortBindings)
	}
	for key, hostPort := range wantBind {
		port := network.MustParsePort(key)
		b := host.PortBindings[port]
		if _, ok := cfg.ExposedPorts[port]; !ok || len(b) != 1 || b[0].HostIP.String() != "127.0.0.1" || b[0].HostPort != hostPort {
			t.Errorf("%s: exposed %v, bindings %v; want 127.0.0.1:%s", key, cfg.ExposedPorts, b, hostPort)
		}
	}
	if host.Memory != 128<<20 || host.MemorySwap != 128<<20 || host.CPUShares != 2 || host.NanoCPUs != 0 || host.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Errorf("host config %+v: want 128 MiB without swap, 2 CPU shares and no hard limit, restart policy no", host.Resources)
	}
	if cfg.Labels[labelNode] != "n1" || cfg.Labels[labelTask] != "web" || cfg.Labels[labelAllocID] != "a1" || cfg.Labels[labelJob] != "j" || cfg.Labels[labelGroup] != "g" {
		t.Errorf("labels %v", cfg.Labels)
	}
	// Pinned: an agent computing another hash for the same task replaces
	// the containers it re-attaches to. (Changed once, on purpose, by
	// protocol version 4: the container's env gains Nomad's runtime
	// variables and its binds /alloc and /local, which a container
	// started before does not have; see docs/RATIONALE.md.)
	if got, want := cfg.Labels[labelConfig], "668c519483260016e37a2170"; got != want {
		t.Errorf("config hash %s, want %s as the previous agent computed it", got, want)
	}
	if again := d.containerConfig(spec(task)); again.Labels[labelConfig] != s.Labels[labelConfig] {
		t.Errorf("the same task hashes %s, then %s", s.Labels[labelConfig], again.Labels[labelConfig])
	}
	changed := task
	changed.Env = map[string]string{"A": "1", "B": "3"}
	if other := d.containerConfig(spec(changed)); other.Labels[labelConfig] == s.Labels[labelConfig] {
		t.Error("a task with other env hashes the same")
	}

	// Host volumes are bind mounts, read-only when the job or the agent says so.
	n.deps.node.volumes = map[string]HostVolume{"certs": {Path: "/etc/ssl/certs", ReadOnly: true}, "data": {Path: "/srv/data"}}
	mounted := task
	mounted.VolumeMounts = []wire.VolumeMount{{Volume: "c", HostVolume: "certs", Destination: "/certs"}, {Volume: "d", HostVolume: "data", Destination: "/data"}}
	ms := d.containerConfig(spec(mounted))
	allocDir, localDir, _ := allocPaths(n.dir, "a1", "web")
	if _, host := api(t, ms); !slices.Equal(host.Binds, []string{allocDir + ":/alloc", localDir + ":/local", "/etc/ssl/certs:/certs:ro", "/srv/data:/data"}) {
		t.Errorf("binds %q", host.Binds)
	}
	if got, want := ms.Labels[labelConfig], "959f9037073f86b3e0e49c83"; got != want {
		t.Errorf("config hash with volumes %s, want %s as the previous agent computed it", got, want)
	}

	task.Config.Command = ""
	if cfg, _ := api(t, d.containerConfig(spec(task))); !slices.Equal(cfg.Cmd, []string{"-v"}) {
		t.Errorf("args alone: cmd %q", cfg.Cmd)
	}
	task.Config.Args = nil
	if cfg, _ := api(t, d.containerConfig(spec(task))); cfg.Cmd != nil {
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
	n, c, image := dockerNode(t)
	task := dockerTask(image, "serve")
	task.Env = map[string]string{"PORT": "9999"} // not the published port: the check fails
	task.Resources.Ports = []string{"http"}
	task.Services = []wire.Service{{Name: "hello", Port: "http", Checks: []wire.Check{{
		Type: "http", Path: "/", Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond,
		CheckRestart: &wire.CheckRestart{Limit: 2, Grace: 100 * time.Millisecond}}}}}
	al := testAlloc(t, task, wire.Port{Label: "http"})
	err := startAttempt(t, n, al, false).wait()
	var cr *checkRestartError
	if !errors.As(err, &cr) {
		t.Fatalf("runAttempt = %v, want a check restart", err)
	}
	if left := nodeContainers(t, c, n.deps.node.id); len(left) != 0 {
		t.Errorf("containers left after the attempt: %+v", left)
	}
	if out := readLog(t, n.dir, al.ID, "task.stdout"); !strings.Contains(out, "hello: stopping on SIGTERM\n") {
		t.Errorf("stdout log %q: want the container stopped with SIGTERM", out)
	}
}

// startContainer starts one attempt of a serving task straight through
// the driver, its output in memory.
func startContainer(t *testing.T, n *testNode, image string) (*taskSpec, *containerTask, *logBuffer, *logBuffer) {
	t.Helper()
	task := dockerTask(image, "serve")
	task.Resources = wire.Resources{CPU: 100, MemoryMB: 64, Ports: []string{"http"}}
	al := testAlloc(t, task, wire.Port{Label: "http", To: 8080})
	ts, err := newAllocRunner(n.deps, al, nil, false).taskSpec(&task)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr logBuffer
	ts.Stdout, ts.Stderr = &stdout, &stderr
	h, err := n.docker.start(context.Background(), ts)
	if err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "hello: serving on :8080\n")
	return ts, h.(*containerTask), &stdout, &stderr
}

// abandon lets go of a container the way an agent that dies does: its
// log stream and wait end, the container runs on.
func (h *containerTask) abandon() {
	h.stopLogs()
	h.stopWait()
	<-h.logsDone
	<-h.waitDone
}

// Signals reach the container's process through the Engine API; stats
// are its cgroup's memory and CPU.
func TestDockerDriverSignalsAndStats(t *testing.T) {
	n, _, image := dockerNode(t)
	_, h, stdout, _ := startContainer(t, n, image)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sig := range []string{"SIGHUP", "SIGUSR1"} {
		if err := h.signal(ctx, sig); err != nil {
			t.Fatalf("%s: %v", sig, err)
		}
		stdout.waitFor(t, "hello: got "+sig+"\n")
	}
	st, err := h.stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Measured, []string{wire.MeasuredMemory, wire.MeasuredCPU}) || st.MemoryBytes <= 0 || st.MemoryBytes > 64<<20 ||
		st.MemoryLimitBytes != 64<<20 || st.CPUTotalNanos == 0 || st.CPUPercent < 0 {
		t.Fatalf("stats %+v: want memory in use under the 64 MiB limit, and CPU time", st)
	}
	if err := h.signal(ctx, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	if err := h.wait(ctx); err != nil {
		t.Fatalf("the server exits 0 on SIGTERM, got %v", err)
	}
	stdout.waitFor(t, "hello: stopping on SIGTERM\n")
	if err := h.signal(ctx, "SIGHUP"); !errors.Is(err, errSignalRefused) || !strings.Contains(err.Error(), "is not running") {
		t.Fatalf("a signal to a stopped container: %v, want a refusal", err)
	}
	if err := h.stop(time.Second); err != nil {
		t.Fatal(err)
	}
}

// After an agent restart the driver re-attaches to a task's container
// that still runs what the task would create: the same container, its
// output taken up from when the logs were last written (nothing written
// twice), and stopping it works. One made for another configuration, one
// that exited, or none, is not re-attached to.
func TestDockerDriverRecovers(t *testing.T) {
	n, c, image := dockerNode(t)
	ts, h, _, _ := startContainer(t, n, image)
	h.abandon() // the agent dies; the container runs on
	ts.LogsWritten = time.Now()
	addr := fmt.Sprintf("127.0.0.1:%d", ts.Ports[0].Value)
	if got := getBody(t, "http://"+addr+"/while-away"); got != "hello from /while-away\n" {
		t.Fatalf("the container while the agent was away: %q", got)
	}

	var stdout, stderr logBuffer
	ts.Stdout, ts.Stderr = &stdout, &stderr
	got, err := n.docker.recover(context.Background(), ts)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	h2 := got.(*containerTask)
	if h2.id != h.id || !strings.Contains(h2.describe(), "re-attached after an agent restart") {
		t.Fatalf("re-attached to %s (%q), want the running container %s", h2.id, h2.describe(), h.id)
	}
	stderr.waitFor(t, "hello: GET /while-away\n")
	getBody(t, "http://"+addr+"/after")
	stderr.waitFor(t, "hello: GET /after\n")
	if err := h2.stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "serving on") {
		t.Fatalf("the re-attached output repeats what was written before: %q", stdout.String())
	}
	if !strings.Contains(stdout.String(), "hello: stopping on SIGTERM\n") {
		t.Fatalf("stdout after the stop %q: want the graceful stop", stdout.String())
	}
	if left := nodeContainers(t, c, n.deps.node.id); len(left) != 0 {
		t.Fatalf("containers after the stop: %+v", left)
	}

	ctx := context.Background()
	if _, err := n.docker.recover(ctx, ts); !errors.Is(err, errNotRecovered) || !strings.Contains(err.Error(), "no container") {
		t.Fatalf("recover without a container: %v", err)
	}
	ts, h, _, _ = startContainer(t, n, image)
	h.abandon()
	changed := *ts
	changed.Env = map[string]string{"GREETING": "another version"}
	if _, err := n.docker.recover(ctx, &changed); !errors.Is(err, errNotRecovered) || !strings.Contains(err.Error(), "another version of the task") {
		t.Fatalf("recover of another configuration: %v", err)
	}
	if err := c.ContainerStop(ctx, h.id, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := n.docker.recover(ctx, ts); !errors.Is(err, errNotRecovered) || !strings.Contains(err.Error(), "exited (exit code 0)") {
		t.Fatalf("recover of an exited container: %v", err)
	}
}
