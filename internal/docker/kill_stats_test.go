package docker_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"

	"github.com/strata-run/strata/internal/docker"
	"github.com/strata-run/strata/internal/testdocker"
)

// lineWaiter is a writer that lets a test wait for a line, woken by each
// write (the daemon's log stream is another process: no polling).
type lineWaiter struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newLineWaiter() *lineWaiter { return &lineWaiter{changed: make(chan struct{})} }

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

func (w *lineWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *lineWaiter) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		w.mu.Lock()
		got, ch := w.b.String(), w.changed
		w.mu.Unlock()
		if strings.Contains(got, s) {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("no %q within a minute; got %q", s, got)
		}
	}
}

// Kill delivers a signal to the container's process; Stats samples its
// memory and CPU; LogsSince takes the output up from an instant; killing
// a stopped container is a conflict.
func TestContainerKillStatsAndLogsSince(t *testing.T) {
	c, image := testdocker.Hello(t)
	ctx := ctxT(t, time.Minute)
	id := create(t, c, image, container.Config{}, container.HostConfig{Resources: container.Resources{Memory: 64 << 20, MemorySwap: 64 << 20}})
	if err := c.ContainerStart(ctx, id); err != nil {
		t.Fatal(err)
	}
	stdout := newLineWaiter()
	logsDone := make(chan error, 1)
	go func() { logsDone <- c.ContainerLogs(ctx, id, time.Time{}, stdout, newLineWaiter()) }()
	stdout.waitFor(t, "hello: serving on :8080\n")

	since := time.Now()
	if err := c.ContainerKill(ctx, id, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "hello: got SIGHUP\n")
	later := newLineWaiter()
	sinceDone := make(chan error, 1)
	go func() { sinceDone <- c.ContainerLogs(ctx, id, since, later, newLineWaiter()) }()
	later.waitFor(t, "hello: got SIGHUP\n")
	if strings.Contains(later.String(), "serving on") {
		t.Fatalf("logs since %s hold an earlier line: %q", since, later.String())
	}

	s, err := c.ContainerStats(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if used := docker.MemoryInUse(s); used == 0 || used > 64<<20 || s.MemoryStats.Limit != 64<<20 || s.CPUStats.CPUUsage.TotalUsage == 0 ||
		s.PreCPUStats.SystemUsage == 0 || docker.CPUPercent(s) < 0 {
		t.Fatalf("stats %+v: in use %d, CPU %.2f%%; want memory under the 64 MiB limit, CPU time and a previous reading", s, used, docker.CPUPercent(s))
	}

	if err := c.ContainerKill(ctx, id, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	if code, err := c.ContainerWait(ctx, id); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit %d, %v", code, err)
	}
	for _, done := range []chan error{logsDone, sinceDone} {
		if err := <-done; err != nil {
			t.Fatalf("log stream: %v", err)
		}
	}
	if err := c.ContainerKill(ctx, id, "SIGHUP"); !cerrdefs.IsConflict(err) {
		t.Fatalf("killing a stopped container: %v, want a conflict", err)
	}
}

// The figures `docker stats` shows, from a sample: memory less the page
// cache (cgroup v1) or the inactive file pages (v2), CPU over the interval.
func TestStatsFigures(t *testing.T) {
	v1 := &container.StatsResponse{MemoryStats: container.MemoryStats{Usage: 100, Stats: map[string]uint64{"cache": 30, "inactive_file": 10}}}
	v2 := &container.StatsResponse{MemoryStats: container.MemoryStats{Usage: 100, Stats: map[string]uint64{"inactive_file": 10}}}
	if docker.MemoryInUse(v1) != 70 || docker.MemoryInUse(v2) != 90 {
		t.Fatalf("memory in use: v1 %d, v2 %d; want 70, 90", docker.MemoryInUse(v1), docker.MemoryInUse(v2))
	}
	s := &container.StatsResponse{}
	s.CPUStats.CPUUsage.TotalUsage, s.PreCPUStats.CPUUsage.TotalUsage = 3e9, 2e9
	s.CPUStats.SystemUsage, s.PreCPUStats.SystemUsage = 14e9, 10e9
	s.CPUStats.OnlineCPUs = 2
	if got := docker.CPUPercent(s); got != 50 {
		t.Fatalf("CPU %.1f%%, want 50%% (1s of the container's CPU time in 4s of the host's, × 2 CPUs)", got)
	}
	if docker.CPUPercent(&container.StatsResponse{}) != 0 {
		t.Fatal("a first sample without a previous one gives CPU")
	}
}
