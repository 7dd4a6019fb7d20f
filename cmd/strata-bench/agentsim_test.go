package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/structs"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/internal/testutil"
)

// startInProcessServer runs a single-server cluster with its HTTP API.
func startInProcessServer(t *testing.T, minTTL time.Duration) (*coordinator.Server, *api.Client) {
	t.Helper()
	srv, err := coordinator.New(coordinator.Config{DataDir: t.TempDir(), Bootstrap: true, DevMode: true, MinHeartbeatTTL: minTTL,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	// The leader commits the cluster CA: wait on the store's commits.
	testutil.Await(t, 30*time.Second, "a leader with the cluster CA", srv.Store().Watch, func() error {
		if !srv.IsLeader() || srv.CAPin() == "" {
			return fmt.Errorf("leader %v, CA pin %q", srv.IsLeader(), srv.CAPin())
		}
		return nil
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return srv, api.NewClient(hs.URL)
}

// Issue 7 point 5: a 20 MB module reaches 50 agents, each checking its
// sha256, while their heartbeats stay on time: the server never marks a
// node down and no heartbeat arrives after its node's deadline. (Under
// the race detector, which slows QUIC tenfold, the module is smaller and
// the TTL longer: race_test.go.)
func TestModuleFanoutKeepsHeartbeats(t *testing.T) {
	const agents = 50
	tiny, err := os.ReadFile("../../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	module := withCustomSection(tiny, "strata-test-padding", make([]byte, fanoutModuleMB<<20))
	srv, client := startInProcessServer(t, fanoutMinTTL)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tok, err := srv.CreateJoinToken(structs.JoinTokenRequest{Reusable: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := startFleet(ctx, SimLink{AgentAddr: srv.AgentAddr(), CAPin: srv.CAPin(), JoinToken: tok.Secret}, agents, "fan", true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.stop()
	r, err := allocateEverywhere(ctx, client, f, "fanout", module, agents)
	if err != nil {
		t.Fatal(err)
	}
	// Every agent's first heartbeat is due within a third of the TTL; a
	// download that finished sooner (a small module under -race) must not
	// leave the check below with nothing to look at. The leader counts
	// heartbeats in memory and announces none (no commit, no hook), and
	// they cross a real QUIC link: the count is asked for again, through
	// the one bounded poll, for at most fanoutMinTTL (under -race 15s;
	// otherwise 0, one look: 20 MB downloads outlast the first heartbeats).
	var hb structs.HeartbeatStats
	_ = testutil.Poll(fanoutMinTTL, 100*time.Millisecond, "a heartbeat from every agent", func() error { // late: the checks below say so
		if hb = srv.HeartbeatStats(); hb.Beats < agents {
			return fmt.Errorf("%d heartbeats", hb.Beats)
		}
		return nil
	})
	t.Logf("%d MiB to %d agents: allocations received after %s, modules verified after %s, statuses back after %s; heartbeats %+v",
		len(module)>>20, agents, r.pushAll, r.modulesAll, r.statusAll, hb)
	if f.verified != agents || r.moduleBytes != int64(agents*len(module)) {
		t.Fatalf("%d agents verified %d bytes, want %d × %d", f.verified, r.moduleBytes, agents, len(module))
	}
	if err := checkHeartbeats(&hb, client, ctx, agents); err != nil {
		t.Fatal(err)
	}
	if hb.Beats < agents || hb.MinMarginMillis <= 0 {
		t.Fatalf("heartbeats %+v: want at least one per agent, each before its node's deadline", hb)
	}
}
