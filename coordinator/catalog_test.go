package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
)

// reportEndpoints reports an allocation running with one healthy endpoint
// of service on port.
func (f *fakeAgent) reportEndpoints(allocID, service string, port int, tags ...string) {
	f.reportEndpointsDesc(allocID, "", service, port, tags...)
}

func (f *fakeAgent) reportEndpointsDesc(allocID, desc, service string, port int, tags ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := wire.AllocStatus{AllocID: allocID, ClientStatus: sched.ClientRunning, Description: desc,
		Endpoints: []wire.Endpoint{{Service: service, Tags: tags, Port: port, Healthy: true}}}
	if err := wire.Write(f.ctrl, wire.TypeAllocStatus, st); err != nil {
		f.t.Fatalf("report: %v", err)
	}
}

// waitCatalog waits, woken by every publication, until cond holds for
// h's snapshot (bounded: a broken feed fails instead of hanging).
func waitCatalog(t *testing.T, h *registry.Holder, what string, cond func(*registry.Snapshot) bool) *registry.Snapshot {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		snap, changed := h.Changed()
		if cond(snap) {
			return snap
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for the catalog to show %s (index %d, %d instances)", what, snap.Index(), snap.Len())
		}
	}
}

func passingPorts(s *registry.Snapshot, service string) []int {
	var ports []int
	for _, e := range s.Passing(service, "") {
		ports = append(ports, e.Port)
	}
	slices.Sort(ports)
	return ports
}

// reportNew reports every live allocation of job not in seen running with
// an endpoint on the next port, and returns the ports it used.
func reportNew(t *testing.T, s *Server, a *fakeAgent, job, service string, seen map[string]int) {
	t.Helper()
	for _, al := range liveAllocs(t, s, job) {
		if _, ok := seen[al.ID]; ok {
			continue
		}
		seen[al.ID] = 21000 + len(seen)
		a.reportEndpoints(al.ID, service, seen[al.ID], "prod")
	}
}

// Every server's catalog (followers' too: each serves DNS) follows the
// registration, scaling and stop of a service, each change at the Raft
// index that made it, with node names and addresses for SRV targets.
func TestCatalogFollowsRegistrationScaleAndStop(t *testing.T) {
	servers := startInProcessCluster(t, 3)
	leader := leaderOf(servers)
	waitLeading(t, leader)
	a := connectFakeAgent(t, leader, "edge-1", "127.0.0.1")
	const svc = "web-g-t"
	start := make([]uint64, len(servers))
	for i, s := range servers {
		start[i] = s.Catalog().Index()
	}

	job := dockerJob("web", nil)
	job.Groups[0].Count = 3
	if _, err := leader.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
	waitState(t, leader, "3 placements", 10*time.Second, func() bool { return len(liveAllocs(t, leader, "web")) == 3 })
	seen := map[string]int{}
	reportNew(t, leader, a, "web", svc, seen)
	want := []int{21000, 21001, 21002}
	for i, s := range servers {
		snap := waitCatalog(t, s.Catalog(), fmt.Sprintf("3 instances on server %d", i), func(s *registry.Snapshot) bool {
			return slices.Equal(passingPorts(s, svc), want)
		})
		if snap.Index() <= start[i] || snap.Index() > s.Store().Index() {
			t.Fatalf("server %d: catalog index %d, want above %d and at most the applied index %d", i, snap.Index(), start[i], s.Store().Index())
		}
		for _, e := range snap.Passing(svc, "prod") {
			if e.Node != "edge-1" || e.NodeID != "edge-1" || e.NodeAddress != "127.0.0.1" || e.Address != "127.0.0.1" || e.AllocID == "" ||
				e.ID != fmt.Sprintf("%s/%s/0", e.AllocID, svc) {
				t.Fatalf("server %d: instance %+v: want node edge-1 at 127.0.0.1, ID <alloc>/<service>/0", i, e.Instance)
			}
		}
		if n, ok := snap.Node("edge-1"); !ok || n.Address != "127.0.0.1" {
			t.Fatalf("server %d: node edge-1 = %+v %v, want its address (SRV targets name it)", i, n, ok)
		}
	}

	before := leader.Catalog().Index()
	job.Groups[0].Count = 5
	if _, err := leader.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
	waitState(t, leader, "5 placements", 10*time.Second, func() bool { return len(liveAllocs(t, leader, "web")) == 5 })
	reportNew(t, leader, a, "web", svc, seen)
	want = []int{21000, 21001, 21002, 21003, 21004}
	for i, s := range servers {
		snap := waitCatalog(t, s.Catalog(), fmt.Sprintf("5 instances on server %d", i), func(s *registry.Snapshot) bool {
			return slices.Equal(passingPorts(s, svc), want)
		})
		if snap.Index() <= before {
			t.Fatalf("server %d: catalog index %d after scaling, want above %d", i, snap.Index(), before)
		}
	}

	// A report that changes nothing a reader sees (a new description, the
	// same endpoint) does not move the catalog: blocking queries and
	// replicas stay asleep.
	idx := leader.Catalog().Index()
	var id string
	var port int
	for id, port = range seen {
		break
	}
	al0, _ := leader.Store().Alloc(id)
	a.reportEndpointsDesc(id, "still running", svc, port, "prod")
	waitState(t, leader, "the same endpoint reported again", 10*time.Second, func() bool {
		al, _ := leader.Store().Alloc(id)
		return al.ModifyIndex > al0.ModifyIndex
	})
	if got := leader.Catalog().Index(); got != idx {
		t.Fatalf("an unchanged report moved the catalog from %d to %d", idx, got)
	}
	// A report without the endpoint withdraws it.
	a.report(id, sched.ClientRunning)
	snap := waitCatalog(t, leader.Catalog(), "4 instances after an endpoint was withdrawn", func(s *registry.Snapshot) bool {
		return len(s.Passing(svc, "")) == 4
	})
	if _, ok := snap.Instance(fmt.Sprintf("%s/%s/0", id, svc)); ok || snap.ChangeIndex() <= idx {
		t.Fatalf("withdrawn instance still there, or change index %d not above %d", snap.ChangeIndex(), idx)
	}

	before = leader.Catalog().Index()
	if _, err := leader.jobs.stopJob("web", false); err != nil {
		t.Fatal(err)
	}
	for i, s := range servers {
		snap := waitCatalog(t, s.Catalog(), fmt.Sprintf("no instance on server %d after the stop", i), func(s *registry.Snapshot) bool {
			return s.Len() == 0
		})
		if snap.Index() <= before || slices.Contains(snap.Services(), svc) || len(snap.Nodes()) != 0 {
			t.Fatalf("server %d: after the stop: index %d (before %d), services %v, nodes %v", i, snap.Index(), before, snap.Services(), snap.Nodes())
		}
	}
}

// A restarted server starts from the catalog its state holds; a restored
// snapshot replaces the catalog whole and wakes its watchers.
func TestCatalogRebuiltAtStartAndRestore(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{DataDir: dir, Bootstrap: true, DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	waitLeading(t, s)
	a := connectFakeAgent(t, s, "edge-1", "127.0.0.1")
	job := dockerJob("web", nil)
	job.Groups[0].Count = 2
	if _, err := s.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "2 placements", 10*time.Second, func() bool { return len(liveAllocs(t, s, "web")) == 2 })
	reportNew(t, s, a, "web", "web-g-t", map[string]int{})
	want := waitCatalog(t, s.Catalog(), "2 instances", func(s *registry.Snapshot) bool { return len(s.Passing("web-g-t", "")) == 2 })

	var snapshot bytes.Buffer
	sn, err := s.Store().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.WriteTo(&snapshot); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	a.kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	s, err = New(Config{DataDir: dir, Bootstrap: true, DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	got := s.Catalog().Snapshot()
	if got.Index() != want.Index() || !sameInstances(got, want) {
		t.Fatalf("after a restart: catalog at %d with %v, want %d with %v", got.Index(), got.Services(), want.Index(), want.Services())
	}

	// A fresh state machine that installs the snapshot (a follower that
	// fell behind): its catalog is rebuilt and its watchers wake.
	store, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	feed, err := newCatalogFeed(store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	_, woken := feed.holder.Changed()
	f := &fsm{store: store, catalog: feed}
	if err := f.Restore(io.NopCloser(&snapshot)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woken:
	default:
		t.Fatal("a restore did not wake the catalog's watchers")
	}
	if got := feed.holder.Snapshot(); got.Index() != want.Index() || !sameInstances(got, want) {
		t.Fatalf("after a restore: catalog at %d with %d instances, want %d with %d", got.Index(), got.Len(), want.Index(), want.Len())
	}
}

func sameInstances(a, b *registry.Snapshot) bool {
	if a.Len() != b.Len() || !slices.Equal(a.Services(), b.Services()) {
		return false
	}
	for _, svc := range a.Services() {
		x, y := a.Instances(svc, ""), b.Instances(svc, "")
		if !slices.EqualFunc(x, y, func(p, q *registry.Entry) bool {
			return p.ID == q.ID && p.Port == q.Port && p.NodeAddress == q.NodeAddress && p.Health == q.Health
		}) {
			return false
		}
	}
	return true
}
