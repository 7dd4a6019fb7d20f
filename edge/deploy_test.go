package edge

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// fakeDriver runs tasks that serve until stopped, and records stops.
type fakeDriver struct {
	mu      sync.Mutex
	stopped []string // task names, in stop order
}

type fakeHandle struct {
	d    *fakeDriver
	name string
	done chan struct{}
	once sync.Once
}

func (d *fakeDriver) start(ctx context.Context, t *taskSpec) (taskHandle, error) {
	return &fakeHandle{d: d, name: t.Task.Name, done: make(chan struct{})}, nil
}

func (d *fakeDriver) recover(ctx context.Context, t *taskSpec) (taskHandle, error) {
	return nil, errNotRecovered
}

func (d *fakeDriver) stops() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.stopped)
}

func (h *fakeHandle) describe() string { return "fake" }
func (h *fakeHandle) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-h.done:
		return nil
	}
}
func (h *fakeHandle) stop(time.Duration) error {
	h.once.Do(func() {
		h.d.mu.Lock()
		h.d.stopped = append(h.d.stopped, h.name)
		h.d.mu.Unlock()
		close(h.done)
	})
	return nil
}
func (h *fakeHandle) signal(context.Context, string) error { return nil }
func (h *fakeHandle) stats(context.Context) (wire.TaskStats, error) {
	return wire.TaskStats{}, nil
}

// servingAlloc is an allocation of one fake task with a service without
// checks (healthy while the task runs).
func servingAlloc(id string) wire.Alloc {
	return wire.Alloc{ID: id, Name: "web.g[0]", JobID: "web", Group: "g", DesiredStatus: "run",
		Tasks: []wire.Task{{Name: "t", Driver: "fake", Restart: &wire.RestartPolicy{Mode: "fail"},
			Resources: wire.Resources{Ports: []string{"http"}},
			Services:  []wire.Service{{Name: "web", Tags: []string{"v1"}, CanaryTags: []string{"canary", "v2"}, Port: "http"}}}},
		Ports: []wire.Port{{Label: "http", Value: 20001}},
	}
}

func fakeSet(t *testing.T) (*allocSet, *testNode, *fakeDriver) {
	n := newTestNode(t)
	fd := &fakeDriver{}
	n.drivers["fake"] = fd
	set := newAllocSet(n.deps, n.outbox, nil, func(map[string]bool) {}, n.deps.log)
	return set, n, fd
}

// A stopping allocation is deregistered at once and stopped only after
// its shutdown delay, so a client that resolved it just before still
// reaches it.
func TestShutdownDeregistersThenWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, n, fd := fakeSet(t)
		defer set.stopAll("test over")
		a := servingAlloc("a")
		a.Tasks[0].ShutdownDelay = 5 * time.Second
		set.reconcile([]wire.Alloc{a}, false)
		synctest.Wait()
		if st, _ := n.outbox.last("a"); st.ClientStatus != "running" || len(st.Endpoints) != 1 {
			t.Fatalf("running allocation's status %+v", st)
		}

		a.DesiredStatus = "stop"
		set.reconcile([]wire.Alloc{a}, false)
		synctest.Wait()
		st, _ := n.outbox.last("a")
		if st.ClientStatus != "running" || len(st.Endpoints) != 0 || len(fd.stops()) != 0 {
			t.Fatalf("right after the stop: status %s with %d endpoints, stops %v; want deregistered, still running", st.ClientStatus, len(st.Endpoints), fd.stops())
		}
		<-time.After(4 * time.Second)
		synctest.Wait()
		if len(fd.stops()) != 0 {
			t.Fatalf("stopped %v before the 5s shutdown delay", fd.stops())
		}
		<-time.After(2 * time.Second)
		synctest.Wait()
		if st, _ := n.outbox.last("a"); !slices.Equal(fd.stops(), []string{"t"}) || st.ClientStatus != "complete" {
			t.Fatalf("after the delay: stops %v, status %s; want stopped and confirmed", fd.stops(), st.ClientStatus)
		}
	})
}

// A canary's endpoints carry its canary tags until the servers promote it.
func TestCanaryTagsUntilPromoted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, n, _ := fakeSet(t)
		defer set.stopAll("test over")
		a := servingAlloc("c")
		a.Canary = true
		set.reconcile([]wire.Alloc{a}, false)
		synctest.Wait()
		st, _ := n.outbox.last("c")
		if len(st.Endpoints) != 1 || !st.Endpoints[0].Canary || strings.Join(st.Endpoints[0].Tags, ",") != "canary,v2" {
			t.Fatalf("canary endpoints %+v", st.Endpoints)
		}
		a.Canary = false
		set.reconcile([]wire.Alloc{a}, false)
		synctest.Wait()
		st, _ = n.outbox.last("c")
		if len(st.Endpoints) != 1 || st.Endpoints[0].Canary || strings.Join(st.Endpoints[0].Tags, ",") != "v1" {
			t.Fatalf("promoted endpoints %+v", st.Endpoints)
		}
	})
}

// The agent decides the deployment health and reports it with the time it
// observed it: healthy after min_healthy_time of passing, unhealthy when
// the deadline passes first.
func TestDeploymentHealthReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, n, _ := fakeSet(t)
		defer set.stopAll("test over")
		start := time.Now()
		a := servingAlloc("h")
		a.DeploymentID = "d1"
		a.Health = &wire.HealthPolicy{Mode: wire.HealthChecks, MinHealthyTime: 10 * time.Second, HealthyDeadline: time.Minute}
		set.reconcile([]wire.Alloc{a}, false)
		synctest.Wait()
		if st, _ := n.outbox.last("h"); st.Health != "" {
			t.Fatalf("health %q before min_healthy_time", st.Health)
		}
		<-time.After(10 * time.Second)
		synctest.Wait()
		st, _ := n.outbox.last("h")
		if st.Health != wire.Healthy || st.HealthTime != start.Add(10*time.Second).UnixNano() {
			t.Fatalf("after 10s: health %q at %s; want healthy at 10s", st.Health, time.Unix(0, st.HealthTime).Sub(start))
		}

		// A task that never starts (an unknown driver) is unhealthy at the
		// deadline at the latest.
		b := servingAlloc("u")
		b.Tasks[0].Driver = "missing"
		b.Tasks[0].Restart = &wire.RestartPolicy{Attempts: 100, Interval: time.Hour, Delay: time.Second, Mode: "fail"}
		b.DeploymentID = "d1"
		b.Health = a.Health
		start = time.Now()
		set.reconcile([]wire.Alloc{a, b}, false)
		<-time.After(time.Minute)
		synctest.Wait()
		if st, _ := n.outbox.last("u"); st.Health != wire.Unhealthy || st.HealthTime != start.Add(time.Minute).UnixNano() {
			t.Fatalf("never running: health %q at %s; want unhealthy at the 1m deadline", st.Health, time.Unix(0, st.HealthTime).Sub(start))
		}
	})
}

// fakeOnce runs tasks that exit 0 after a second (a prestart task's work).
type fakeOnce struct{ fakeDriver }

func (d *fakeOnce) start(ctx context.Context, t *taskSpec) (taskHandle, error) {
	h := &fakeHandle{d: &d.fakeDriver, name: t.Task.Name, done: make(chan struct{})}
	d.mu.Lock()
	d.stopped = append(d.stopped, "ran "+t.Task.Name)
	d.mu.Unlock()
	// It works for a second, then exits 0; a later stop has nothing to do.
	time.AfterFunc(time.Second, func() { h.once.Do(func() { close(h.done) }) })
	return h, nil
}

// Nomad's lifecycle order: prestart sidecars and prestart tasks first, the
// main task once every prestart task has exited 0, poststart once the main
// task runs.
func TestLifecycleOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		served := &fakeDriver{}
		once := &fakeOnce{}
		started := make(chan string, 8)
		n.drivers["fake"] = served
		n.drivers["once"] = once
		report := n.deps.report
		n.deps.report = func(st wire.AllocStatus) {
			for name, ts := range st.TaskStates {
				if ts.State == wire.TaskRunning || (ts.State == wire.TaskDead && !ts.Failed) {
					select {
					case started <- name:
					default:
					}
				}
			}
			report(st)
		}
		set := newAllocSet(n.deps, n.outbox, nil, func(map[string]bool) {}, n.deps.log)
		defer set.stopAll("test over")
		a := servingAlloc("l")
		main := a.Tasks[0]
		main.Name = "main"
		initTask := wire.Task{Name: "init", Driver: "once", Restart: &wire.RestartPolicy{Mode: "fail"},
			Lifecycle: &wire.Lifecycle{Hook: wire.HookPrestart}}
		side := wire.Task{Name: "side", Driver: "fake", Restart: &wire.RestartPolicy{Mode: "fail"},
			Lifecycle: &wire.Lifecycle{Hook: wire.HookPoststart, Sidecar: true}}
		a.Tasks = []wire.Task{side, main, initTask} // order in the job does not matter
		set.reconcile([]wire.Alloc{a}, false)
		synctest.Wait()
		if st, _ := n.outbox.last("l"); st.TaskStates["main"].State != wire.TaskPending {
			t.Fatalf("the main task is %s while its prestart task runs", st.TaskStates["main"].State)
		}
		<-time.After(2 * time.Second)
		synctest.Wait()
		st, _ := n.outbox.last("l")
		if st.ClientStatus != "running" {
			t.Fatalf("allocation %s: %s", st.ClientStatus, st.Description)
		}
		init, mainState, sideState := st.TaskStates["init"], st.TaskStates["main"], st.TaskStates["side"]
		if init.State != wire.TaskDead || init.Failed || mainState.State != wire.TaskRunning || sideState.State != wire.TaskRunning {
			t.Fatalf("task states: init %+v main %+v side %+v", init, mainState, sideState)
		}
		if !(init.FinishedAt > init.StartedAt && init.FinishedAt <= mainState.StartedAt && mainState.StartedAt <= sideState.StartedAt) {
			t.Fatalf("order: init finished %d, main started %d, side started %d", init.FinishedAt, mainState.StartedAt, sideState.StartedAt)
		}
		if got := once.stops(); !slices.Equal(got, []string{"ran init"}) {
			t.Fatalf("the prestart task ran %v", got)
		}
	})
}
