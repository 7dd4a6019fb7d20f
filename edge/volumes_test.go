package edge

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// Point 6 of issue 17 on the agent: a task reads a declared read-only host
// volume and cannot write it, while a writable one takes the write; a
// volume the agent does not declare fails the task, naming it.
func TestWasmTaskHostVolumes(t *testing.T) {
	worker := wasip1Module(t, "../examples/worker")
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "f.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, vols map[string]HostVolume, mount wire.VolumeMount, args ...string) (*attemptRun, *testNode) {
		n := newTestNode(t)
		n.deps.node.volumes = vols
		task := wasmTask(t, n, worker, wire.ModeCommand)
		task.Config.Args = args
		task.VolumeMounts = []wire.VolumeMount{mount}
		ar := startAttempt(t, n, testAlloc(t, task), false)
		<-ar.finished
		return ar, n
	}
	manifest := filepath.Join(data, "MANIFEST")

	t.Run("a read-only volume is read", func(t *testing.T) {
		ar, n := run(t, map[string]HostVolume{"shared": {Path: data, ReadOnly: true}},
			wire.VolumeMount{Volume: "d", HostVolume: "shared", Destination: "/data"}, "/data")
		if ar.err != nil || !ar.completed {
			t.Fatalf("reading: %v", ar.err)
		}
		logs, _ := os.ReadFile(filepath.Join(n.dir, "allocs", testAlloc(t, wire.Task{}).ID, "logs", "task.stdout"))
		if !strings.Contains(string(logs), "  /data/f.txt") {
			t.Errorf("stdout %q does not list /data/f.txt", logs)
		}
	})
	for _, tc := range []struct {
		name     string
		declared bool // the agent declares the volume read-only
		mount    bool // the job mounts it read-only
	}{
		{"declared read-only", true, false},
		{"mounted read-only", false, true},
	} {
		t.Run(tc.name+": the write fails", func(t *testing.T) {
			ar, _ := run(t, map[string]HostVolume{"shared": {Path: data, ReadOnly: tc.declared}},
				wire.VolumeMount{Volume: "d", HostVolume: "shared", Destination: "/data", ReadOnly: tc.mount}, "-out", "/data/MANIFEST", "/data")
			if ar.err == nil || ar.completed || !strings.Contains(ar.err.Error(), "MANIFEST") {
				t.Fatalf("writing a read-only volume: %v, want the task to fail on the write", ar.err)
			}
			if _, err := os.Stat(manifest); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the read-only volume was written: %v", err)
			}
		})
	}
	t.Run("a writable volume takes the write", func(t *testing.T) {
		ar, _ := run(t, map[string]HostVolume{"shared": {Path: data}},
			wire.VolumeMount{Volume: "d", HostVolume: "shared", Destination: "/data"}, "-out", "/data/MANIFEST", "/data")
		if ar.err != nil || !ar.completed {
			t.Fatalf("writing: %v", ar.err)
		}
		b, err := os.ReadFile(manifest)
		if err != nil || !strings.Contains(string(b), "/data/f.txt") {
			t.Fatalf("manifest on the host: %q, %v", b, err)
		}
		os.Remove(manifest)
	})
	t.Run("an undeclared volume fails the task", func(t *testing.T) {
		ar, _ := run(t, nil, wire.VolumeMount{Volume: "d", HostVolume: "shared", Destination: "/data"}, "/data")
		if !errors.Is(ar.err, errUnknownHostVolume) || !strings.Contains(ar.err.Error(), `host volume "shared"`) {
			t.Fatalf("undeclared volume: %v", ar.err)
		}
	})
}

func TestHostMounts(t *testing.T) {
	vols := map[string]HostVolume{"ro": {Path: "/srv/ro", ReadOnly: true}, "rw": {Path: "/srv/rw"}}
	got, err := hostMounts(vols, []wire.VolumeMount{
		{Volume: "a", HostVolume: "ro", Destination: "/a"},
		{Volume: "b", HostVolume: "rw", Destination: "/b"},
		{Volume: "c", HostVolume: "rw", Destination: "/c", ReadOnly: true},
	})
	want := []hostMount{{"/srv/ro", "/a", true}, {"/srv/rw", "/b", false}, {"/srv/rw", "/c", true}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("hostMounts = %v, %v; want %v", got, err, want)
	}
}

// The operator's declarations are checked when the agent starts.
func TestCheckHostVolumes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		vols map[string]HostVolume
		want string
	}{
		{map[string]HostVolume{"data": {Path: "rel/dir"}}, "must be absolute"},
		{map[string]HostVolume{"data": {Path: filepath.Join(dir, "missing")}}, "no such file"},
		{map[string]HostVolume{"data": {Path: file}}, "is not a directory"},
		{map[string]HostVolume{"a b": {Path: dir}}, "contains"},
	} {
		if _, err := checkHostVolumes(tc.vols); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkHostVolumes(%v) = %v, want %q", tc.vols, err, tc.want)
		}
	}
	got, err := checkHostVolumes(map[string]HostVolume{"data": {Path: dir + "/./", ReadOnly: true}})
	if err != nil || got["data"] != (HostVolume{Path: dir, ReadOnly: true}) {
		t.Fatalf("checkHostVolumes = %v, %v", got, err)
	}
}

// A docker task's host volume is a bind mount the Engine takes as asked:
// read-only when the agent declares it so; the allocation's directories
// come first, at /alloc and /local.
func TestDockerTaskHostVolume(t *testing.T) {
	n, c, image := dockerNode(t)
	data := t.TempDir()
	n.deps.node.volumes = map[string]HostVolume{"shared": {Path: data, ReadOnly: true}}
	task := dockerTask(image, "serve")
	task.VolumeMounts = []wire.VolumeMount{{Volume: "d", HostVolume: "shared", Destination: "/data"}}
	al := testAlloc(t, task)
	ar := startAttempt(t, n, al, false)
	waitStatus(t, n.outbox, al.ID, ar.finished, "running")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.ContainerInspect(ctx, containerName("task", al.ID))
	if err != nil {
		t.Fatal(err)
	}
	allocDir, localDir, _ := allocPaths(n.dir, al.ID, "task")
	if want := []string{allocDir + ":/alloc", localDir + ":/local", data + ":/data:ro"}; !slices.Equal(info.HostConfig.Binds, want) {
		t.Fatalf("the container's binds are %q, want %q", info.HostConfig.Binds, want)
	}
}
