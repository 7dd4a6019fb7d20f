package sched

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/strata-run/strata/spec"
)

// deploySim drives Schedule through a deployment the way the coordinator
// does: it applies each plan to the job's allocations (placements start
// with unknown health, stops become terminal, in-place moves change the
// version) and lets the test report health between evaluations.
type deploySim struct {
	t      *testing.T
	nodes  []*NodeState
	job    *spec.Job
	ver    uint64
	old    map[uint64]*spec.Job
	allocs []*Allocation
	dep    *Deployment
	evals  int
	index  uint64
	placed int // placements that were replacements or canaries, by the rolling update
	stops  int
}

func newDeploySim(t *testing.T, count, maxParallel, canary int) *deploySim {
	s := &deploySim{t: t, nodes: nodes(20, withCapacity(100000, 100000)), old: map[uint64]*spec.Job{}}
	s.job = deployJob(count, maxParallel, canary, "web@1.0.0")
	s.ver = 1
	// Version 1 runs everywhere, healthy.
	plan := s.schedule()
	if len(plan.Place) != count {
		t.Fatalf("initial placements = %d, want %d", len(plan.Place), count)
	}
	s.apply(plan)
	for _, a := range s.allocs {
		a.ClientStatus = ClientRunning
	}
	return s
}

func deployJob(count, maxParallel, canary int, module string) *spec.Job {
	task := newTask("t", "wasm", 10, 10)
	task.Config.Module = module
	g := newGroup("g", count, task)
	g.Update = &spec.Update{MaxParallel: maxParallel, Canary: canary}
	return newJob("j", g)
}

// newVersion registers job as the next version with a new deployment.
func (s *deploySim) newVersion(job *spec.Job) {
	s.old[s.ver] = s.job
	s.ver++
	s.job = job
	s.dep = &Deployment{ID: fmt.Sprintf("d%d", s.ver), Active: true, Groups: map[string]*DeploymentGroup{"g": {}}}
}

func (s *deploySim) schedule() *Plan {
	s.t.Helper()
	s.evals++
	return mustSchedule(s.t, &Request{
		EvalID: fmt.Sprintf("e%d", s.evals), Job: s.job, JobVersion: s.ver,
		Nodes: s.nodes, Existing: cloneAllocs(s.allocs), Versions: s.old, Deployment: s.dep,
	})
}

func (s *deploySim) apply(plan *Plan) {
	byID := map[string]*Allocation{}
	for _, a := range s.allocs {
		byID[a.ID] = a
	}
	for _, a := range plan.Stop {
		byID[a.ID].DesiredStatus = DesiredStop
		byID[a.ID].ClientStatus = ClientComplete
		s.stops++
	}
	for _, a := range plan.InPlace {
		byID[a.ID].JobVersion = a.JobVersion
	}
	for _, a := range plan.Place {
		s.index++
		c := *a
		c.CreateIndex = s.index
		c.ClientStatus = ClientRunning
		s.allocs = append(s.allocs, &c)
		if s.dep != nil && c.DeploymentID == s.dep.ID {
			s.placed++
		}
	}
}

// step schedules and applies one evaluation.
func (s *deploySim) step() *Plan {
	p := s.schedule()
	s.apply(p)
	return p
}

func (s *deploySim) live() (old, cur []*Allocation) {
	for _, a := range s.allocs {
		if a.Terminal() {
			continue
		}
		if a.JobVersion == s.ver {
			cur = append(cur, a)
		} else {
			old = append(old, a)
		}
	}
	return old, cur
}

// healthyCount counts old allocations (running, healthy as far as the
// deployment knows) and new ones reported healthy.
func (s *deploySim) healthyCount() int {
	old, cur := s.live()
	n := len(old)
	for _, a := range cur {
		if a.Health == HealthHealthy || (s.dep != nil && a.DeploymentID != s.dep.ID) {
			n++
		}
	}
	return n
}

func (s *deploySim) reportAll(h Health) int {
	_, cur := s.live()
	n := 0
	for _, a := range cur {
		if a.DeploymentID == s.dep.ID && a.Health == HealthUnknown {
			a.Health = h
			n++
		}
	}
	return n
}

func TestRollingUpdateReplacesInBatches(t *testing.T) {
	for _, tt := range []struct{ count, maxParallel, batches int }{
		{4, 1, 4}, {4, 2, 2}, {5, 2, 3}, {3, 5, 1},
	} {
		t.Run(fmt.Sprintf("count%d_max%d", tt.count, tt.maxParallel), func(t *testing.T) {
			s := newDeploySim(t, tt.count, tt.maxParallel, 0)
			s.newVersion(deployJob(tt.count, tt.maxParallel, 0, "web@2.0.0"))
			batches := 0
			for range 20 {
				p := s.step()
				if len(p.Place) > tt.maxParallel {
					t.Fatalf("a batch placed %d, more than max_parallel %d", len(p.Place), tt.maxParallel)
				}
				if len(p.Place) > 0 {
					batches++
				}
				// Nothing happens until the batch is healthy.
				if again := s.step(); len(again.Place)+len(again.Stop) != 0 {
					t.Fatalf("an evaluation before any health report changed %d placements, %d stops", len(again.Place), len(again.Stop))
				}
				old, _ := s.live()
				if s.reportAll(HealthHealthy) == 0 && len(old) == 0 {
					break
				}
			}
			s.step() // stops the last replaced ones
			old, cur := s.live()
			if len(old) != 0 || len(cur) != tt.count {
				t.Fatalf("after the update: %d old, %d new running; want 0 and %d", len(old), len(cur), tt.count)
			}
			if batches != tt.batches || s.placed != tt.count || s.stops != tt.count {
				t.Errorf("batches %d placed %d stopped %d; want %d, %d, %d", batches, s.placed, s.stops, tt.batches, tt.count, tt.count)
			}
		})
	}
}

func TestOldStopsOnlyAfterItsReplacementIsHealthy(t *testing.T) {
	s := newDeploySim(t, 2, 1, 0)
	s.newVersion(deployJob(2, 1, 0, "web@2.0.0"))
	p := s.step()
	if len(p.Place) != 1 || len(p.Stop) != 0 || p.Place[0].Index != 0 {
		t.Fatalf("first batch: place %d (index %d) stop %d; want one at index 0 beside the old", len(p.Place), p.Place[0].Index, len(p.Stop))
	}
	if old, cur := s.live(); len(old) != 2 || len(cur) != 1 {
		t.Fatalf("running %d old, %d new; want 2 and 1", len(old), len(cur))
	}
	s.reportAll(HealthHealthy)
	p = s.step()
	if len(p.Stop) != 1 || p.Stop[0].Index != 0 || p.Stop[0].DesiredDesc != "job updated to version 2" {
		t.Fatalf("after health: stops %+v; want the old copy of index 0", p.Stop)
	}
	if len(p.Place) != 1 || p.Place[0].Index != 1 {
		t.Fatalf("after health: next batch %+v; want index 1", p.Place)
	}
}

func TestUnhealthyReplacementStopsTheRollout(t *testing.T) {
	s := newDeploySim(t, 3, 1, 0)
	s.newVersion(deployJob(3, 1, 0, "web@2.0.0"))
	s.step()
	s.reportAll(HealthUnhealthy)
	p := s.step()
	if len(p.Place)+len(p.Stop) != 0 {
		t.Fatalf("after an unhealthy replacement: place %d stop %d; want nothing", len(p.Place), len(p.Stop))
	}
	if old, _ := s.live(); len(old) != 3 {
		t.Fatalf("%d old allocations run; want all 3 kept", len(old))
	}
}

func TestStaggerHoldAndInactiveDeployment(t *testing.T) {
	s := newDeploySim(t, 3, 1, 0)
	s.newVersion(deployJob(3, 1, 0, "web@2.0.0"))
	s.step()
	s.reportAll(HealthHealthy)
	s.dep.Groups["g"].Hold = true
	p := s.step()
	if len(p.Stop) != 1 || len(p.Place) != 0 {
		t.Fatalf("held: stop %d place %d; want the replaced one stopped and no new batch", len(p.Stop), len(p.Place))
	}
	s.dep.Groups["g"].Hold = false
	s.dep.Active = false
	if p := s.step(); len(p.Place) != 0 {
		t.Fatalf("inactive deployment placed %d", len(p.Place))
	}
	s.dep.Active = true
	if p := s.step(); len(p.Place) != 1 {
		t.Fatalf("active again: placed %d, want 1", len(p.Place))
	}
}

func TestCanariesWaitForPromotion(t *testing.T) {
	s := newDeploySim(t, 4, 1, 1)
	s.newVersion(deployJob(4, 1, 1, "web@2.0.0"))
	p := s.step()
	if len(p.Place) != 1 || !p.Place[0].Canary || len(p.Stop) != 0 {
		t.Fatalf("canary phase: %d placed (canary %v), %d stopped; want 1 canary beside the 4", len(p.Place), len(p.Place) > 0 && p.Place[0].Canary, len(p.Stop))
	}
	s.reportAll(HealthHealthy)
	for range 3 {
		if p := s.step(); len(p.Place)+len(p.Stop) != 0 {
			t.Fatalf("an unpromoted healthy canary changed things: place %d stop %d", len(p.Place), len(p.Stop))
		}
	}
	if old, cur := s.live(); len(old) != 4 || len(cur) != 1 {
		t.Fatalf("running %d old and %d canaries; want 4 and 1", len(old), len(cur))
	}
	s.dep.Groups["g"].Promoted = true
	p = s.step()
	if len(p.Stop) != 1 || len(p.Place) != 1 || p.Place[0].Canary {
		t.Fatalf("promoted: stop %d place %d; want the canary's old one stopped and a normal replacement", len(p.Stop), len(p.Place))
	}
}

func TestBlueGreen(t *testing.T) {
	s := newDeploySim(t, 4, 1, 4)
	s.newVersion(deployJob(4, 1, 4, "web@2.0.0"))
	if p := s.step(); len(p.Place) != 4 || len(p.Stop) != 0 {
		t.Fatalf("green: placed %d stopped %d; want 4 beside the blue 4", len(p.Place), len(p.Stop))
	}
	s.reportAll(HealthHealthy)
	s.dep.Groups["g"].Promoted = true
	if p := s.step(); len(p.Stop) != 4 || len(p.Place) != 0 {
		t.Fatalf("promoted: stopped %d placed %d; want the 4 blue stopped at once", len(p.Stop), len(p.Place))
	}
}

func TestCountOnlyChangeScalesInPlace(t *testing.T) {
	s := newDeploySim(t, 4, 1, 0)
	s.old[s.ver] = s.job
	s.ver++
	s.job = deployJob(6, 1, 0, "web@1.0.0")
	p := s.step()
	if len(p.InPlace) != 4 || len(p.Stop) != 0 || len(p.Place) != 2 {
		t.Fatalf("scale 4 -> 6: in place %d, stop %d, place %d; want 4, 0, 2", len(p.InPlace), len(p.Stop), len(p.Place))
	}
	for _, a := range p.InPlace {
		if a.JobVersion != 2 {
			t.Fatalf("in-place allocation at version %d", a.JobVersion)
		}
	}
	// Without the old version to compare with, the change is treated as
	// destructive: replaced, never silently kept.
	s2 := newDeploySim(t, 2, 0, 0)
	s2.ver++
	s2.job = deployJob(2, 0, 0, "web@1.0.0")
	if p := s2.step(); len(p.Stop) != 2 || len(p.Place) != 2 {
		t.Fatalf("unknown old version: stop %d place %d; want 2 and 2", len(p.Stop), len(p.Place))
	}
}

// A job that was healthy never has fewer than count - max_parallel healthy
// allocations, whatever the order and outcome of health reports,
// promotions and holds; and once everything is healthy and promoted, the
// new version runs exactly count allocations and the old none.
func TestDeploymentKeepsEnoughHealthy(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 14))
	for iter := range 300 {
		count := 1 + r.IntN(8)
		maxParallel := 1 + r.IntN(3)
		canary := 0
		if r.IntN(3) == 0 {
			canary = 1 + r.IntN(count)
		}
		s := newDeploySim(t, count, maxParallel, canary)
		s.newVersion(deployJob(count, maxParallel, canary, "web@2.0.0"))
		check := func(when string) {
			if h := s.healthyCount(); h < count-maxParallel {
				t.Fatalf("iteration %d (count %d, max_parallel %d, canary %d) %s: %d healthy < %d",
					iter, count, maxParallel, canary, when, h, count-maxParallel)
			}
		}
		for range 200 {
			s.step()
			check("after an evaluation")
			_, cur := s.live()
			for _, a := range cur {
				if a.DeploymentID == s.dep.ID && a.Health == HealthUnknown && r.IntN(3) > 0 {
					a.Health = HealthHealthy
					if r.IntN(15) == 0 {
						a.Health = HealthUnhealthy
					}
				}
			}
			check("after health reports")
			s.dep.Groups["g"].Hold = r.IntN(4) == 0
			if r.IntN(4) == 0 {
				s.dep.Groups["g"].Promoted = true
			}
		}
		// Finish: unhealthy ones are replaced by a new version in real
		// life; here, end with every report healthy and promoted.
		for _, a := range s.allocs {
			if a.Health == HealthUnhealthy {
				a.Health = HealthHealthy
			}
		}
		s.dep.Groups["g"].Hold, s.dep.Groups["g"].Promoted = false, true
		for range 4*count + 4 {
			s.step()
			s.reportAll(HealthHealthy)
		}
		old, cur := s.live()
		if len(old) != 0 || len(cur) != count {
			t.Fatalf("iteration %d (count %d, max_parallel %d, canary %d): ends with %d old and %d new running",
				iter, count, maxParallel, canary, len(old), len(cur))
		}
	}
}
