package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
)

// A rolling update of 200 allocations over 20 simulated agents at
// max_parallel 20 takes the fewest possible batches, 10: each batch
// starts as soon as the one before is healthy, and never more than 20
// new allocations are in flight.
func TestRolloutTakesTheFewestBatches(t *testing.T) {
	tiny, err := os.ReadFile("../../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	srv, client := startInProcessServer(t, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tok, err := srv.CreateJoinToken(structs.JoinTokenRequest{Reusable: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := startFleet(ctx, SimLink{AgentAddr: srv.AgentAddr(), CAPin: srv.CAPin(), JoinToken: tok.Secret}, 20, "sim", false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.stop()
	r, err := rollingUpdate(ctx, client, RolloutConfig{Count: 200, MaxParallel: 20}, tiny, func() {})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("200 allocations rolled out in %s, %d batches", r.took.Round(time.Millisecond), r.batches)
	if r.batches != r.fewest || r.fewest != 10 {
		t.Fatalf("%d batches, want the fewest possible: %d", r.batches, r.fewest)
	}
}
