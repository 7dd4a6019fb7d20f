package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// A job asking for a host volume no node has stays unplaced, the reason
// counted in its evaluation; a node that declares the volume takes it
// (the blocked evaluation is retried when capacity changes).
func TestHostVolumePlacement(t *testing.T) {
	s := startTestServer(t)
	ctx := context.Background()
	node := func(id string, vols map[string]sched.HostVolume) sched.Node {
		return sched.Node{ID: id, Name: id, Datacenter: "dc1", Address: "127.0.0.1", Drivers: map[string]bool{"docker": true},
			Capacity: sched.Resources{CPU: 4000, MemoryMB: 4096}, Status: sched.NodeReady, Eligible: true, HostVolumes: vols}
	}
	if err := s.RegisterNodes(ctx, []sched.Node{node("plain", nil), node("logs", map[string]sched.HostVolume{"logs": {Path: "/var/log"}})}); err != nil {
		t.Fatal(err)
	}
	job := dockerJob("certs", nil)
	job.Groups[0].Volumes = []*spec.Volume{{Name: "c", Type: spec.VolumeTypeHost, Source: "certs", ReadOnly: true}}
	job.Groups[0].Tasks[0].VolumeMounts = []*spec.VolumeMount{{Volume: "c", Destination: "/certs"}}
	resp, err := s.RegisterJob(job)
	if err != nil {
		t.Fatal(err)
	}
	var e *structs.Eval
	waitState(t, s, "the evaluation blocked", 10*time.Second, func() bool {
		e, _ = s.store.Eval(resp.EvalID)
		return e != nil && e.Status == structs.EvalBlocked
	})
	if f := e.Failed["g"]; f == nil || f.Missing != 1 || f.Reasons["missing host volume certs"] != 2 {
		t.Fatalf("explanation %+v, want 1 missing copy and 2 nodes missing host volume certs", f)
	}
	if n := len(liveAllocs(t, s, "certs")); n != 0 {
		t.Fatalf("%d allocations placed without the volume", n)
	}

	if err := s.RegisterNodes(ctx, []sched.Node{node("certs-node", map[string]sched.HostVolume{"certs": {Path: "/etc/ssl/certs", ReadOnly: true}})}); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "the job placed on the node with the volume", 10*time.Second, func() bool {
		as := liveAllocs(t, s, "certs")
		return len(as) == 1 && as[0].NodeID == "certs-node"
	})
}
