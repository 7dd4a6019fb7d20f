package edge

import (
	"context"
	"github.com/strata-run/strata/spec"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

const testPin = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// newTestAgent is an agent with a server that never answers.
func newTestAgent(t *testing.T, dir string) *Agent {
	t.Helper()
	a, err := New(context.Background(), Config{Servers: []string{"127.0.0.1:1"}, CAPin: testPin, JoinToken: "unused.never-dialled", DataDir: dir, NodeName: "t",
		DockerHost: "unix://" + dir + "/no-docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A task that can never start (its module cannot be fetched: no server)
// is enough to exercise the runner's life cycle without wasm.
func offlineAlloc(id string, stopAfter time.Duration) wire.Alloc {
	return wire.Alloc{ID: id, Name: "j.g[0]", JobID: "j", Group: "g", DesiredStatus: "run",
		StopAfterOfflineMillis: stopAfter.Milliseconds(),
		Tasks: []wire.Task{{Name: "t", Driver: wire.DriverWasm, Config: wire.TaskConfig{Mode: wire.ModeHTTP, ModuleDigest: "sha256:" + strings.Repeat("0", 62) + "aa"},
			Restart:   &wire.RestartPolicy{Attempts: 0, Mode: "fail"},
			Resources: wire.Resources{Ports: []string{"http"}}}},
		Ports: []wire.Port{{Label: "http", Value: 0}},
	}
}

func TestStopOnClientAfter(t *testing.T) {
	n := newTestNode(t)
	set := newAllocSet(n.deps, n.outbox, nil, func(map[string]bool) {}, n.deps.log)
	t.Cleanup(func() { set.stopAll("test over") })
	set.reconcile([]wire.Alloc{offlineAlloc("keep", 0), offlineAlloc("stop", time.Minute)}, false)
	set.stopOffline(30 * time.Second)
	if len(set.runners) != 2 {
		t.Fatalf("stopped before stop_on_client_after: %d runners", len(set.runners))
	}
	set.stopOffline(61 * time.Second)
	if _, ok := set.runners["stop"]; ok {
		t.Fatal("allocation with stop_on_client_after = 1m still runs after 61s offline")
	}
	if _, ok := set.runners["keep"]; !ok {
		t.Fatal("allocation without stop_on_client_after was stopped")
	}
	if !n.outbox.finished("stop") {
		t.Fatal("the stop was not reported as complete")
	}
	// The server's next push may still list it: it must not start again.
	set.reconcile([]wire.Alloc{offlineAlloc("keep", 0), offlineAlloc("stop", time.Minute)}, false)
	if _, ok := set.runners["stop"]; ok {
		t.Fatal("an allocation the agent finished was started again")
	}
}

// Allocations the servers stop or drop are stopped, confirmed complete
// once, and those dropped are forgotten.
func TestReconcileStopsAndConfirms(t *testing.T) {
	n := newTestNode(t)
	var inUse map[string]bool
	set := newAllocSet(n.deps, n.outbox, nil, func(d map[string]bool) { inUse = d }, n.deps.log)
	t.Cleanup(func() { set.stopAll("test over") })
	a, b := offlineAlloc("a", 0), offlineAlloc("b", 0)
	set.reconcile([]wire.Alloc{a, b}, false)
	if len(set.runners) != 2 || !inUse[a.Tasks[0].Config.ModuleDigest] {
		t.Fatalf("runners %d, modules in use %v", len(set.runners), inUse)
	}
	a.DesiredStatus = "stop"
	set.reconcile([]wire.Alloc{a}, false)
	if err := set.waitShutdowns(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(set.runners) != 0 || len(inUse) != 0 {
		t.Fatalf("after a stop and a drop: %d runners, modules in use %v", len(set.runners), inUse)
	}
	st, ok := n.outbox.last("a")
	if !ok || st.ClientStatus != "complete" || st.Description != "stopped by the coordinator" || st.TaskStates["t"].State != wire.TaskDead {
		t.Fatalf("stopped allocation's status %+v", st)
	}
	if _, ok := n.outbox.last("b"); ok {
		t.Fatal("a dropped allocation's status is kept")
	}
}

func TestLearnedServersPersist(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, dir)
	a.link.learn([]string{"127.0.0.1:1", "127.0.0.2:4702"}, true)
	if got := a.link.serverList(); len(got) != 2 || got[1] != "127.0.0.2:4702" {
		t.Fatalf("servers = %v", got)
	}
	a.shutdown()
	b := newTestAgent(t, dir)
	defer b.shutdown()
	if got := b.link.serverList(); len(got) != 2 || got[1] != "127.0.0.2:4702" {
		t.Fatalf("after restart the servers are %v, want the learned one kept", got)
	}
}

func TestResolveTaskRuntimeReferences(t *testing.T) {
	n := newTestNode(t)
	al := offlineAlloc("r1", 0)
	al.Ports = []wire.Port{{Label: "http", Value: 23456}, {Label: "group", Value: 23457}}
	r := newAllocRunner(n.deps, al, nil, false)
	task := &wire.Task{Name: "t",
		Env: map[string]string{
			"PORT":  "${STRATA_PORT_http}",
			"ADDR":  "${NOMAD_ADDR_http}",
			"GROUP": "${STRATA_PORT_group}",
			"DC":    "${node.datacenter}",
			"ARCH":  "${attr.cpu.arch}",
			"RACK":  "${meta.rack}",
			"LIT":   "$${not_a_ref}",
			"MIX":   "http://${STRATA_ADDR_http}/x",
		},
		Config: wire.TaskConfig{Args: []string{"-port=${NOMAD_PORT_http}", "-job=${STRATA_JOB_NAME}"}, Command: "/bin/${node.unique.name}"},
	}
	got, err := r.resolveTask(task)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"PORT": "23456", "ADDR": "127.0.0.1:23456", "GROUP": "23457", "DC": "dc1", "ARCH": "amd64", "RACK": "r1",
		"LIT": "${not_a_ref}", "MIX": "http://127.0.0.1:23456/x"}
	for k, v := range want {
		if got.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, got.Env[k], v)
		}
	}
	if got.Config.Args[0] != "-port=23456" || got.Config.Args[1] != "-job=j" || got.Config.Command != "/bin/t" {
		t.Errorf("args = %q, command %q", got.Config.Args, got.Config.Command)
	}
	if task.Env["PORT"] != "${STRATA_PORT_http}" {
		t.Error("resolveTask changed the job's own task")
	}
	task.Env = map[string]string{"X": "${STRATA_PORT_nosuch}"}
	if _, err := r.resolveTask(task); err == nil || !strings.Contains(err.Error(), "STRATA_PORT_nosuch") {
		t.Fatalf("unknown reference: %v, want an error naming it", err)
	}
}

// Nomad's runtime environment: every variable under NOMAD_ and STRATA_,
// the allocation's index, region and directories, the node's datacenter,
// each port as PORT_, IP_, ADDR_ (and HOST_, ALLOC_), the task's merged
// meta and its resources.
func TestRuntimeVars(t *testing.T) {
	n := newTestNode(t)
	al := offlineAlloc("r1", 0)
	al.Name, al.Index, al.Region = "j.g[2]", 2, "europe"
	al.Ports = []wire.Port{{Label: "http", Value: 23456}}
	r := newAllocRunner(n.deps, al, nil, false)
	task := &wire.Task{Name: "t", Meta: map[string]string{"owner": "ops"}, Resources: wire.Resources{CPU: 250, MemoryMB: 64}}
	vars := r.runtimeVars(task)
	want := map[string]string{
		"ALLOC_ID": "r1", "ALLOC_NAME": "j.g[2]", "ALLOC_INDEX": "2", "ALLOC_DIR": "/alloc", "TASK_DIR": "/local",
		"JOB_ID": "j", "JOB_NAME": "j", "GROUP_NAME": "g", "TASK_NAME": "t", "DC": "dc1", "REGION": "europe",
		"CPU_LIMIT": "250", "MEMORY_LIMIT": "64",
		"PORT_http": "23456", "IP_http": "127.0.0.1", "ADDR_http": "127.0.0.1:23456",
		"HOST_PORT_http": "23456", "HOST_IP_http": "127.0.0.1", "HOST_ADDR_http": "127.0.0.1:23456",
		"ALLOC_PORT_http": "23456", "ALLOC_ADDR_http": "127.0.0.1:23456",
		"META_owner": "ops", "META_OWNER": "ops",
	}
	for k, v := range want {
		for _, p := range []string{"NOMAD_", "STRATA_"} {
			if vars[p+k] != v {
				t.Errorf("%s%s = %q, want %q", p, k, vars[p+k], v)
			}
		}
	}
	// Every fixed name the job language accepts is set.
	for _, name := range spec.RuntimeVarNames {
		if _, ok := vars["NOMAD_"+name]; !ok {
			t.Errorf("NOMAD_%s is accepted by validate but not set by the agent", name)
		}
	}
	task.Env = map[string]string{"I": "${NOMAD_ALLOC_INDEX}", "M": "${NOMAD_META_owner}"}
	got, err := r.resolveTask(task)
	if err != nil || got.Env["I"] != "2" || got.Env["M"] != "ops" {
		t.Fatalf("resolveTask = %v, %v; want I=2, M=ops", got.Env, err)
	}
}

// The agent registers with its fingerprint and speaks every protocol
// version it knows.
func TestRegistration(t *testing.T) {
	a := newTestAgent(t, t.TempDir())
	defer a.shutdown()
	reg := a.registration()
	if reg.NodeID != a.NodeID() || reg.Name != "t" || reg.Datacenter != "dc1" || reg.Address != "127.0.0.1" || !reg.Drivers["wasm"] || reg.Drivers["docker"] ||
		reg.CPU <= 0 || reg.MemoryMB <= 0 {
		t.Fatalf("registration %+v", reg)
	}
}
