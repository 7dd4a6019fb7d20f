package deploy

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC).UnixNano()

func at(d time.Duration) int64 { return t0 + int64(d) }

// deployment is a running deployment of one group "web" of count 4 placed
// at t0 (the state machine's counters as a test sets them).
func deployment(mod ...func(*structs.DeploymentGroup)) *structs.Deployment {
	g := &structs.DeploymentGroup{
		DesiredTotal: 4, PlacedAllocs: 1,
		ProgressDeadline: int64(10 * time.Minute), Stagger: int64(30 * time.Second),
		RequireProgressBy: at(10 * time.Minute), LastBatchAt: t0,
	}
	for _, m := range mod {
		m(g)
	}
	return &structs.Deployment{ID: "d1", JobID: "web", JobVersion: 2, Status: structs.DeploymentRunning,
		StatusDescription: DescRunning, Groups: map[string]*structs.DeploymentGroup{"web": g}}
}

func TestStep(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    *structs.Deployment
		now  int64
		want Decision
	}{
		{
			name: "first batch in flight: evaluate, wake at the end of the stagger",
			d:    deployment(), now: at(time.Second),
			want: Decision{Evaluate: true, WakeAt: at(30 * time.Second)},
		},
		{
			name: "stagger over: wake at the progress deadline",
			d:    deployment(), now: at(time.Minute),
			want: Decision{Evaluate: true, WakeAt: at(10 * time.Minute)},
		},
		{
			name: "an unhealthy allocation fails it",
			d:    deployment(func(g *structs.DeploymentGroup) { g.UnhealthyAllocs = 1 }), now: at(time.Second),
			want: Decision{Status: structs.DeploymentFailed, Description: DescUnhealthy, Evaluate: true},
		},
		{
			name: "with auto_revert it reverts",
			d: deployment(func(g *structs.DeploymentGroup) {
				g.UnhealthyAllocs, g.AutoRevert = 1, true
			}), now: at(time.Second),
			want: Decision{Status: structs.DeploymentFailed, Description: DescUnhealthy, Evaluate: true, Revert: true},
		},
		{
			name: "the progress deadline passed",
			d:    deployment(), now: at(10 * time.Minute),
			want: Decision{Status: structs.DeploymentFailed, Description: DescProgressDeadline, Evaluate: true},
		},
		{
			name: "every allocation healthy: successful",
			d:    deployment(func(g *structs.DeploymentGroup) { g.HealthyAllocs = 4 }), now: at(time.Minute),
			want: Decision{Status: structs.DeploymentSuccessful, Description: DescSuccessful, Evaluate: true},
		},
		{
			name: "healthy canary without auto_promote waits for a person, past the deadline",
			d: deployment(func(g *structs.DeploymentGroup) {
				g.DesiredCanaries, g.HealthyCanaries, g.HealthyAllocs, g.PlacedCanaries = 1, 1, 1, []string{"c1"}
			}), now: at(time.Hour),
			want: Decision{Evaluate: true, Description: DescNeedsPromotion, WakeAt: 0},
		},
		{
			name: "healthy canaries with auto_promote are promoted",
			d: deployment(func(g *structs.DeploymentGroup) {
				g.DesiredCanaries, g.HealthyCanaries, g.HealthyAllocs, g.AutoPromote, g.PlacedCanaries = 2, 2, 2, true, []string{"c1", "c2"}
			}), now: at(time.Minute),
			want: Decision{Evaluate: true, Promote: []string{"web"}, WakeAt: at(10 * time.Minute)},
		},
		{
			name: "blue/green: all canaries healthy and auto-promoted completes at once",
			d: deployment(func(g *structs.DeploymentGroup) {
				g.DesiredCanaries, g.HealthyCanaries, g.HealthyAllocs, g.AutoPromote, g.PlacedCanaries = 4, 4, 4, true, []string{"a", "b", "c", "d"}
			}), now: at(time.Minute),
			want: Decision{Status: structs.DeploymentSuccessful, Description: DescSuccessful, Evaluate: true, Promote: []string{"web"}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Step(tt.d, tt.now)
			if got.Status != tt.want.Status || got.Description != tt.want.Description || got.Revert != tt.want.Revert ||
				got.Evaluate != tt.want.Evaluate || got.WakeAt != tt.want.WakeAt || !slices.Equal(got.Promote, tt.want.Promote) {
				t.Errorf("Step =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

// A group whose instances all moved to the new version in place (a
// revert to the version that runs) has no canary to wait for.
func TestNoCanaryToPromoteWhenAllMovedInPlace(t *testing.T) {
	d := deployment(func(g *structs.DeploymentGroup) { g.DesiredCanaries, g.HealthyAllocs = 1, 4 })
	if got := Step(d, at(time.Second)); got.Status != structs.DeploymentSuccessful {
		t.Fatalf("all 4 healthy in place, no canary placed: %+v; want successful", got)
	}
	// But placed canaries are promoted first, even when healthy enough
	// in number (blue/green: canary = count).
	d = deployment(func(g *structs.DeploymentGroup) {
		g.DesiredCanaries, g.HealthyCanaries, g.HealthyAllocs, g.PlacedCanaries = 4, 4, 4, []string{"a", "b", "c", "d"}
	})
	if got := Step(d, at(time.Second)); got.Status != "" || got.Description != DescNeedsPromotion {
		t.Fatalf("blue/green with healthy canaries: %+v; want waiting for promotion", got)
	}
}

func TestRevertDeploymentIsNotRevertedAgain(t *testing.T) {
	d := deployment(func(g *structs.DeploymentGroup) { g.UnhealthyAllocs, g.AutoRevert = 1, true })
	v := uint64(2)
	d.RevertOf = &v
	if got := Step(d, at(time.Second)); got.Status != structs.DeploymentFailed || got.Revert {
		t.Fatalf("a failed revert: %+v; want failed without another revert", got)
	}
}

func TestAutoPromoteWaitsForEveryGroup(t *testing.T) {
	d := deployment(func(g *structs.DeploymentGroup) {
		g.DesiredCanaries, g.HealthyCanaries, g.AutoPromote, g.PlacedCanaries = 1, 1, true, []string{"c1"}
	})
	d.Groups["api"] = &structs.DeploymentGroup{DesiredTotal: 2, DesiredCanaries: 1, AutoPromote: true, PlacedCanaries: []string{"c2"}}
	if got := Step(d, at(time.Second)); len(got.Promote) != 0 {
		t.Fatalf("promoted %v while group api's canary is not healthy", got.Promote)
	}
	d.Groups["api"].HealthyCanaries = 1
	if got := Step(d, at(time.Second)); !slices.Equal(got.Promote, []string{"api", "web"}) {
		t.Fatalf("promote = %v, want both groups", got.Promote)
	}
}

func TestEndedDeploymentDoesNothing(t *testing.T) {
	for _, st := range []string{structs.DeploymentSuccessful, structs.DeploymentFailed, structs.DeploymentCancelled} {
		d := deployment(func(g *structs.DeploymentGroup) { g.UnhealthyAllocs = 1 })
		d.Status = st
		if got := Step(d, at(time.Hour)); got.Status != "" || got.Evaluate || got.WakeAt != 0 {
			t.Errorf("%s deployment: %+v", st, got)
		}
	}
}

func TestHold(t *testing.T) {
	g := deployment().Groups["web"]
	if !Hold(g, at(29*time.Second)) || Hold(g, at(30*time.Second)) {
		t.Fatal("the stagger holds the next batch for 30s after the last")
	}
	if Hold(&structs.DeploymentGroup{Stagger: int64(time.Minute)}, t0) {
		t.Fatal("no batch yet: nothing to wait for")
	}
}
