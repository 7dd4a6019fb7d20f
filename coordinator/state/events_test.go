package state

import (
	"fmt"
	"testing"

	"github.com/strata-run/strata/sched"
)

// eventLine is an event in a few words, for comparing sequences.
func eventLine(e Event) string {
	s := fmt.Sprintf("%d %s %s %s", e.Index, e.Topic, e.Type, e.Key)
	switch {
	case e.Payload.Allocation != nil:
		s += " " + e.Payload.Allocation.ClientStatus
	case e.Payload.Deployment != nil:
		s += fmt.Sprintf(" %s healthy=%d", e.Payload.Deployment.Status, e.Payload.Deployment.Groups["g"].HealthyAllocs)
	case e.Payload.Job != nil:
		s += fmt.Sprintf(" v%d stopped=%v", e.Payload.Job.Version, e.Payload.Job.Stopped)
	case e.Payload.Node != nil:
		s += " " + e.Payload.Node.Status
	}
	return s
}

// The events of a batch follow its entries, each with the record as that
// entry left it, even when a later entry of the same batch changes it; a
// refused entry makes none.
func TestEventsFollowTheEntries(t *testing.T) {
	h := newHarness(t)
	t0 := int64(1_000_000_000_000)
	a := testAlloc("a1", "web", "n1")
	a.DeploymentID = "d1"
	_, fx := h.apply(
		&NodeRegister{Node: testNode("n1", 10000, 10000)},
		&JobRegister{Job: rollingJob("a@1.0.0", 1, 0), SubmitTime: t0, EvalID: "e1", DeploymentID: "d1"},
		&JobStop{JobID: "nope"}, // refused: no events
		&PlanApply{Place: []*sched.Allocation{a}, Time: t0},
		&AllocUpdate{NodeID: "n1", Time: t0, Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientRunning}}},
		&AllocUpdate{NodeID: "n1", Time: t0 + 1, Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientRunning, Health: sched.HealthHealthy, HealthTime: t0 + 1}}},
		&AllocUpdate{NodeID: "n1", Time: t0 + 2, Updates: []ClientUpdate{{AllocID: "a1", ClientStatus: sched.ClientComplete}}},
		&JobStop{JobID: "web", EvalID: "e2"},
	)
	want := []string{
		"1 Node NodeRegistration n1 ready",
		"2 Job JobRegistered web v0 stopped=false",
		"2 Deployment DeploymentStatusUpdate d1 running healthy=0",
		"4 Deployment DeploymentStatusUpdate d1 running healthy=0",
		"4 Allocation PlanResult a1 pending",
		"5 Allocation AllocationUpdated a1 running",
		"6 Deployment DeploymentStatusUpdate d1 running healthy=1",
		"6 Allocation AllocationUpdated a1 running",
		"7 Allocation AllocationUpdated a1 complete",
		"8 Job JobDeregistered web v0 stopped=true",
	}
	var got []string
	for _, e := range fx.Events {
		got = append(got, eventLine(e))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events:\n%s\nwant:\n%s", join(got), join(want))
	}
}

func join(lines []string) string {
	s := ""
	for _, l := range lines {
		s += "  " + l + "\n"
	}
	return s
}
