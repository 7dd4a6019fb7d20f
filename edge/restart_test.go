package edge

import (
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

func policy(attempts int, interval, delay time.Duration, mode string) *wire.RestartPolicy {
	return &wire.RestartPolicy{Attempts: attempts, Interval: interval, Delay: delay, Mode: mode}
}

type step struct {
	at        time.Duration // since t0
	wantOK    bool
	wantDelay time.Duration
}

func TestRestartTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		policy *wire.RestartPolicy
		steps  []step
	}{
		{"fail mode gives up after attempts within interval", policy(2, time.Minute, 15*time.Second, "fail"), []step{
			{0, true, 15 * time.Second},
			{16 * time.Second, true, 15 * time.Second},
			{32 * time.Second, false, 0},
		}},
		{"a new interval resets the count", policy(2, time.Minute, time.Second, "fail"), []step{
			{0, true, time.Second},
			{10 * time.Second, true, time.Second},
			{61 * time.Second, true, time.Second},
			{62 * time.Second, true, time.Second},
			{63 * time.Second, false, 0},
		}},
		{"delay mode waits out the interval", policy(1, time.Minute, 5*time.Second, "delay"), []step{
			{0, true, 5 * time.Second},
			{20 * time.Second, true, 40 * time.Second}, // until t0+60s
			{61 * time.Second, true, 5 * time.Second},  // fresh interval
		}},
		{"zero attempts never restarts in fail mode", policy(0, time.Minute, time.Second, "fail"), []step{
			{0, false, 0},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newRestartTracker(c.policy)
			for i, s := range c.steps {
				d, ok := tr.next(t0.Add(s.at))
				if ok != s.wantOK || d != s.wantDelay {
					t.Fatalf("step %d at +%s: next = (%s, %v), want (%s, %v)", i, s.at, d, ok, s.wantDelay, s.wantOK)
				}
			}
		})
	}
}

func TestJitterBounded(t *testing.T) {
	for range 1000 {
		if j := jitter(100 * time.Millisecond); j < 0 || j > 25*time.Millisecond {
			t.Fatalf("jitter(100ms) = %s, want within [0, 25ms]", j)
		}
	}
	if jitter(0) != 0 {
		t.Fatal("jitter(0) must be 0")
	}
}
