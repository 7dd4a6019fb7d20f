package edge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

func newTestAgent(t *testing.T) *Agent {
	t.Helper()
	a, err := New(context.Background(), Config{Servers: []string{"127.0.0.1:1"}, CAPin: "sha256:0000000000000000000000000000000000000000000000000000000000000000", JoinToken: "unused.never-dialled", DataDir: t.TempDir(), NodeName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.shutdown)
	return a
}

// A task that can never start (its module cannot be fetched: no server)
// is enough to exercise the runner's life cycle without wasm.
func offlineAlloc(id string, stopAfter time.Duration) wire.Alloc {
	return wire.Alloc{ID: id, Name: "j.g[0]", JobID: "j", Group: "g", DesiredStatus: "run",
		StopAfterOfflineMillis: stopAfter.Milliseconds(),
		Tasks: []*spec.Task{{Name: "t", Driver: "wasm", Config: spec.TaskConfig{Mode: "http", ModuleDigest: "sha256:" + "00000000000000000000000000000000000000000000000000000000000000aa"},
			Restart:   &spec.RestartPolicy{Attempts: 0, Mode: "fail"},
			Resources: spec.Resources{Networks: []*spec.Network{{Ports: []*spec.Port{{Label: "http"}}}}}}},
		Ports: []wire.Port{{Label: "http", Value: 0}},
	}
}

func TestStopOnClientAfter(t *testing.T) {
	a := newTestAgent(t)
	ctx := context.Background()
	a.reconcile(ctx, []wire.Alloc{offlineAlloc("keep", 0), offlineAlloc("stop", time.Minute)})
	a.stopOfflineAllocs(30 * time.Second)
	if len(a.runners) != 2 {
		t.Fatalf("stopped before stop_on_client_after: %d runners", len(a.runners))
	}
	a.stopOfflineAllocs(61 * time.Second)
	if _, ok := a.runners["stop"]; ok {
		t.Fatal("allocation with stop_on_client_after = 1m still runs after 61s offline")
	}
	if _, ok := a.runners["keep"]; !ok {
		t.Fatal("allocation without stop_on_client_after was stopped")
	}
	if !a.finished("stop") {
		t.Fatal("the stop was not reported as complete")
	}
	// The server's next push may still list it: it must not start again.
	a.reconcile(ctx, []wire.Alloc{offlineAlloc("keep", 0), offlineAlloc("stop", time.Minute)})
	if _, ok := a.runners["stop"]; ok {
		t.Fatal("an allocation the agent finished was started again")
	}
}

func TestLearnedServersPersist(t *testing.T) {
	dir := t.TempDir()
	pin := "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	a, err := New(context.Background(), Config{Servers: []string{"127.0.0.1:1"}, CAPin: pin, JoinToken: "unused.never-dialled", DataDir: dir, NodeName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	a.learnServers([]string{"127.0.0.1:1", "127.0.0.2:4702"}, true)
	if got := a.serverList(); len(got) != 2 || got[1] != "127.0.0.2:4702" {
		t.Fatalf("servers = %v", got)
	}
	a.shutdown()
	b, err := New(context.Background(), Config{Servers: []string{"127.0.0.1:1"}, CAPin: pin, JoinToken: "unused.never-dialled", DataDir: dir, NodeName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.shutdown()
	known, _ := b.local.servers()
	if len(known) != 1 || known[0] != "127.0.0.2:4702" {
		t.Fatalf("after restart the learned server is %v", known)
	}
}

func TestResolveTaskRuntimeReferences(t *testing.T) {
	a := newTestAgent(t)
	al := offlineAlloc("r1", 0)
	al.Ports = []wire.Port{{Label: "http", Value: 23456}}
	r := newAllocRunner(a, al, nil)
	task := &spec.Task{Name: "t",
		Env: map[string]string{
			"PORT": "${STRATA_PORT_http}",
			"ADDR": "${NOMAD_ADDR_http}",
			"DC":   "${node.datacenter}",
			"LIT":  "$${not_a_ref}",
			"MIX":  "http://${STRATA_ADDR_http}/x",
		},
		Config: spec.TaskConfig{Args: []string{"-port=${NOMAD_PORT_http}", "-job=${STRATA_JOB_NAME}"}},
	}
	got, err := r.resolveTask(task, al.Ports)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"PORT": "23456", "ADDR": "127.0.0.1:23456", "DC": "dc1", "LIT": "${not_a_ref}", "MIX": "http://127.0.0.1:23456/x"}
	for k, v := range want {
		if got.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, got.Env[k], v)
		}
	}
	if got.Config.Args[0] != "-port=23456" || got.Config.Args[1] != "-job=j" {
		t.Errorf("args = %q", got.Config.Args)
	}
	if task.Env["PORT"] != "${STRATA_PORT_http}" {
		t.Error("resolveTask changed the job's own task")
	}
	task.Env = map[string]string{"X": "${STRATA_PORT_nosuch}"}
	if _, err := r.resolveTask(task, al.Ports); err == nil || !strings.Contains(err.Error(), "STRATA_PORT_nosuch") {
		t.Fatalf("unknown reference: %v, want an error naming it", err)
	}
}
