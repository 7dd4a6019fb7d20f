package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-run/strata/coordinator/structs"
)

// A follower restarted while the cluster took writes is behind when it
// comes back. A default read there never misses a job the cluster
// acknowledged: it waits for the leader's read index, or is refused (503)
// while it cannot get it; ?stale answers at once from the state as it is.
func TestRestartedFollowerReadsAreConsistent(t *testing.T) {
	servers := startInProcessCluster(t, 3)
	leader := leaderOf(servers)
	var follower *Server
	for _, s := range servers {
		if s != leader {
			follower = s
			break
		}
	}
	cfg := follower.cfg
	cfg.RaftAddr = follower.RaftAddr() // the address the others know it by
	cfg.Join, cfg.BootstrapExpect = nil, 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := follower.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 60
	for i := range n {
		if _, err := leader.RegisterJob(dockerJob(fmt.Sprintf("acked-%02d", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	restarted, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	servers[indexOf(servers, follower)] = restarted // the cluster's cleanup shuts it down
	ts := httptest.NewServer(restarted.Handler())
	defer ts.Close()

	get := func(query string) (int, []structs.JobListEntry) {
		resp, err := http.Get(ts.URL + "/v1/jobs" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var js []structs.JobListEntry
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&js); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, js
	}
	// The first stale read comes before the restarted server has heard
	// from the leader: how far behind it is shows what a default read
	// must not return.
	code, stale := get("?stale")
	if code != http.StatusOK {
		t.Fatalf("?stale read on a restarted follower = %d, want 200 at once", code)
	}
	t.Logf("the first ?stale read after the restart saw %d of %d acknowledged jobs", len(stale), n)
	deadline := time.Now().Add(30 * time.Second)
	var refused int
	for {
		code, js := get("")
		switch code {
		case http.StatusServiceUnavailable:
			refused++
		case http.StatusOK:
			if len(js) != n {
				t.Fatalf("a default read on the restarted follower returned %d of %d acknowledged jobs", len(js), n)
			}
			t.Logf("the first default read returned all %d jobs after %d refusals (503)", n, refused)
			return
		default:
			t.Fatalf("default read = %d", code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted follower refused every read for 30s (%d refusals)", refused)
		}
		<-time.After(50 * time.Millisecond) // a process boundary: the follower's own catch-up
	}
}

// With no leader known, a default read is refused and ?stale still
// answers from the local state.
func TestReadWithoutLeader(t *testing.T) {
	servers := startInProcessCluster(t, 3)
	leader := leaderOf(servers)
	if _, err := leader.RegisterJob(dockerJob("before", nil)); err != nil {
		t.Fatal(err)
	}
	var follower *Server
	for _, s := range servers {
		if s != leader {
			follower = s
		}
	}
	ts := httptest.NewServer(follower.Handler())
	defer ts.Close()
	// Stop the other two: the follower is alone, with no quorum.
	for _, s := range servers {
		if s != follower {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			s.Shutdown(ctx)
			cancel()
		}
	}
	// Raft state is not a store event: poll (a process boundary, the
	// follower's election timer).
	for deadline := time.Now().Add(20 * time.Second); follower.Leader() != ""; <-time.After(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the follower still names a leader 20s after the others stopped")
		}
	}
	resp, err := http.Get(ts.URL + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a default read with no quorum = %d, want 503", resp.StatusCode)
	}
	resp, err = http.Get(ts.URL + "/v1/jobs?stale")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var js []structs.JobListEntry
	if err := json.NewDecoder(resp.Body).Decode(&js); err != nil || resp.StatusCode != http.StatusOK || len(js) != 1 {
		t.Fatalf("?stale with no quorum = %d %v %v, want the one job", resp.StatusCode, js, err)
	}
}

func indexOf(servers []*Server, s *Server) int {
	for i, x := range servers {
		if x == s {
			return i
		}
	}
	return -1
}

// -raft-multiplier scales the three timeouts; out of range is refused
// with its name.
func TestRaftMultiplier(t *testing.T) {
	for _, m := range []int{-1, 11} {
		if _, err := New(Config{DataDir: t.TempDir(), RaftMultiplier: m}); err == nil || !strings.Contains(err.Error(), "raft multiplier") {
			t.Errorf("multiplier %d: %v, want a refusal naming it", m, err)
		}
	}
	var rc raft.Config
	raftTimeouts(&rc, 3)
	if rc.HeartbeatTimeout != 900*time.Millisecond || rc.ElectionTimeout != 900*time.Millisecond || rc.LeaderLeaseTimeout != 450*time.Millisecond {
		t.Fatalf("multiplier 3: heartbeat %s, election %s, lease %s", rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout)
	}
	// hashicorp/raft refuses a lease longer than the heartbeat timeout:
	// every multiplier must give a configuration it accepts.
	for m := 1; m <= maxRaftMultiplier; m++ {
		rc := raft.DefaultConfig()
		rc.LocalID = "x"
		raftTimeouts(rc, m)
		if err := raft.ValidateConfig(rc); err != nil {
			t.Errorf("multiplier %d: %v", m, err)
		}
	}
}
