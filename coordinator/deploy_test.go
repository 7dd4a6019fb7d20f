package coordinator

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// rollingDockerJob is a count-instance docker service that rolls
// maxParallel at a time, image naming the version.
func rollingDockerJob(image string, count, maxParallel, canary int) *spec.Job {
	j := dockerJob("web", nil)
	g := j.Groups[0]
	g.Count = count
	g.Update = &spec.Update{MaxParallel: maxParallel, Canary: canary, AutoRevert: true, Stagger: spec.Duration(time.Millisecond),
		MinHealthyTime: spec.Duration(time.Millisecond), HealthyDeadline: spec.Duration(time.Minute),
		ProgressDeadline: spec.Duration(time.Minute), HealthCheck: spec.HealthChecks}
	g.Tasks[0].Config.Image = image
	return j
}

func healthyAgents(t *testing.T, s *Server, n int) []*fakeAgent {
	var out []*fakeAgent
	for i := range n {
		f := connectAgent(t, s, fmt.Sprintf("n%d", i), "127.0.0.1", true)
		out = append(out, f)
	}
	return out
}

func setHealth(agents []*fakeAgent, h func(wire.Alloc) string) {
	for _, f := range agents {
		f.health.Store(&h)
	}
}

func imageOf(t *testing.T, s *Server, a *structs.Alloc) string {
	j, err := s.store.JobVersion(a.JobID, a.JobVersion)
	if err != nil || j == nil {
		t.Fatalf("job version of %s: %v", a.ID, err)
	}
	return j.Groups[0].Tasks[0].Config.Image
}

// waitDeployment waits for the job's deployment of version v to end, and
// checks at every commit on the way that the job never has fewer than
// count - maxParallel healthy instances (old ones running, new ones
// reported healthy) nor more than maxParallel unhealthy new ones.
func waitDeployment(t *testing.T, s *Server, v uint64, count, maxParallel int, wantStatus string) *structs.Deployment {
	t.Helper()
	var d *structs.Deployment
	waitState(t, s, fmt.Sprintf("deployment of version %d %s", v, wantStatus), time.Minute, func() bool {
		live := liveAllocs(t, s, "web")
		healthy, pending := 0, 0
		for _, a := range live {
			switch {
			case a.JobVersion != v && a.ClientStatus == sched.ClientRunning:
				healthy++
			case a.JobVersion == v && (a.Health == sched.HealthHealthy || a.DeploymentID == ""):
				healthy++
			case a.JobVersion == v && a.Health == sched.HealthUnknown:
				pending++
			}
		}
		if v > 0 && healthy < count-maxParallel {
			t.Fatalf("only %d healthy instances of %d (max_parallel %d) at index %d", healthy, count, maxParallel, s.store.Index())
		}
		if pending > max(maxParallel, 1)+count { // canaries and batches never exceed this
			t.Fatalf("%d new instances pending at once", pending)
		}
		ds, err := s.store.JobDeployments("web")
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ds {
			if x.JobVersion == v {
				d = x
				return x.Status == wantStatus
			}
		}
		return false
	})
	return d
}

func register(t *testing.T, s *Server, j *spec.Job) *structs.JobRegisterResponse {
	t.Helper()
	r, err := s.RegisterJob(j)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRollingUpdateRevertAndCanary(t *testing.T) {
	s := startTestServer(t)
	agents := healthyAgents(t, s, 3)
	setHealth(agents, func(wire.Alloc) string { return wire.Healthy })

	// Version 0: a first run is a deployment too; its success makes it stable.
	r := register(t, s, rollingDockerJob("app:1", 4, 1, 0))
	if r.DeploymentID == "" {
		t.Fatal("the first version started no deployment")
	}
	waitDeployment(t, s, 0, 4, 1, structs.DeploymentSuccessful)

	// Version 1: a new image rolls one at a time, old ones stopped only
	// once their replacement is healthy.
	r = register(t, s, rollingDockerJob("app:2", 4, 1, 0))
	d := waitDeployment(t, s, 1, 4, 1, structs.DeploymentSuccessful)
	if d.ID != r.DeploymentID || d.Groups["g"].HealthyAllocs != 4 {
		t.Fatalf("deployment %+v", d)
	}
	waitState(t, s, "the old version stopped", 30*time.Second, func() bool {
		live := liveAllocs(t, s, "web")
		for _, a := range live {
			if imageOf(t, s, a) != "app:2" {
				return false
			}
		}
		return len(live) == 4
	})

	// A count-only change scales in place: no deployment, same allocations.
	before := liveAllocs(t, s, "web")
	r = register(t, s, rollingDockerJob("app:2", 5, 1, 0))
	if r.DeploymentID != "" {
		t.Fatalf("a count change started deployment %s", r.DeploymentID)
	}
	waitState(t, s, "5 instances at version 2", 30*time.Second, func() bool {
		live := liveAllocs(t, s, "web")
		n := 0
		for _, a := range live {
			if a.JobVersion == 2 {
				n++
			}
		}
		return n == 5
	})
	for _, a := range before {
		if cur, _ := s.store.Alloc(a.ID); cur.Terminal() {
			t.Fatalf("allocation %s was replaced by a count-only change", a.Name)
		}
	}

	// Version 3 fails its health checks: the deployment fails and the job
	// goes back to version 2's spec as version 4, with no old instance
	// stopped on the way.
	setHealth(agents, func(a wire.Alloc) string {
		if a.JobVersion == 3 {
			return wire.Unhealthy
		}
		return wire.Healthy
	})
	register(t, s, rollingDockerJob("app:3", 5, 1, 0))
	d = waitDeployment(t, s, 3, 5, 1, structs.DeploymentFailed)
	if !strings.Contains(d.StatusDescription, "Failed due to unhealthy allocations - rolling back to job version 2") {
		t.Fatalf("failed deployment says %q", d.StatusDescription)
	}
	rec, _ := s.store.Job("web")
	v2, _ := s.store.JobVersion("web", 2)
	if rec.Version != 4 || !reflect.DeepEqual(rec.Job, v2) {
		t.Fatalf("after the revert the job is version %d (%s); want 4 with version 2's spec", rec.Version, rec.Job.Groups[0].Tasks[0].Config.Image)
	}
	waitDeployment(t, s, 4, 5, 1, structs.DeploymentSuccessful)
	waitState(t, s, "the bad version gone", 30*time.Second, func() bool {
		for _, a := range liveAllocs(t, s, "web") {
			if imageOf(t, s, a) != "app:2" {
				return false
			}
		}
		return len(liveAllocs(t, s, "web")) == 5
	})
	for _, a := range before {
		if cur, _ := s.store.Alloc(a.ID); cur.Terminal() {
			t.Fatalf("allocation %s of the good version was stopped by the failed rollout or its revert", a.Name)
		}
	}

	// Version 5 with one canary: it runs beside the 5, tagged, until
	// promoted; then the rest rolls.
	r = register(t, s, rollingDockerJob("app:5", 5, 2, 1))
	waitState(t, s, "a healthy canary", 30*time.Second, func() bool {
		d, _ := s.store.LatestDeployment("web")
		return d != nil && d.ID == r.DeploymentID && d.Groups["g"].HealthyCanaries == 1 && d.StatusDescription == "Deployment is running but requires manual promotion"
	})
	live := liveAllocs(t, s, "web")
	canaries := 0
	for _, a := range live {
		if a.Canary {
			canaries++
		}
	}
	if len(live) != 6 || canaries != 1 {
		t.Fatalf("with a canary: %d live, %d canaries; want 6 and 1", len(live), canaries)
	}
	ops := s.http.deploys
	if _, err := ops.promote(r.DeploymentID, nil); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, s, 5, 5, 2, structs.DeploymentSuccessful)
	waitState(t, s, "all on version 5", 30*time.Second, func() bool {
		live := liveAllocs(t, s, "web")
		for _, a := range live {
			if a.JobVersion != 5 || a.Canary {
				return false
			}
		}
		return len(live) == 5
	})

	// Failing a running deployment by hand reverts it (auto_revert) to
	// the latest stable version; failing it again is refused.
	setHealth(agents, func(a wire.Alloc) string {
		if a.JobVersion == 6 {
			return "" // undecided: the deployment waits
		}
		return wire.Healthy
	})
	r = register(t, s, rollingDockerJob("app:6", 5, 1, 0))
	res, err := ops.fail(r.DeploymentID)
	if err != nil || res.RevertedJobVersion == nil || *res.RevertedJobVersion != 5 {
		t.Fatalf("fail: %+v, %v; want a revert to version 5", res, err)
	}
	if _, err := ops.fail(r.DeploymentID); err == nil || !strings.Contains(err.Error(), "is failed") {
		t.Fatalf("failing a failed deployment: %v", err)
	}
	d, _ = s.store.Deployment(r.DeploymentID)
	if d.StatusDescription != "Deployment marked as failed - rolling back to job version 5" {
		t.Fatalf("failed by hand: %q", d.StatusDescription)
	}
	// Version 7 (version 5's spec) moves every instance of version 5 in
	// place and stops what version 6 placed, if anything; it becomes
	// stable (at once when it needs no deployment, else when its
	// deployment succeeds).
	waitState(t, s, "all on version 7", 30*time.Second, func() bool {
		live := liveAllocs(t, s, "web")
		for _, a := range live {
			if a.JobVersion != 7 {
				return false
			}
		}
		return len(live) == 5
	})
	waitState(t, s, "version 7 stable", 30*time.Second, func() bool {
		vi, _ := s.store.JobVersionInfo("web")
		return vi[7].Stable
	})
}
