package edge

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// gateLog records what a restoreGate did, and when.
type gateLog struct {
	start  time.Time
	events []string
}

func (l *gateLog) add(what string, set []wire.Alloc) {
	ids := ""
	for _, a := range set {
		ids += a.ID
	}
	l.events = append(l.events, time.Since(l.start).String()+" "+what+" "+ids)
}

func newLoggedGate(l *gateLog, stored []wire.Alloc) *restoreGate {
	return newRestoreGate(stored,
		func(s []wire.Alloc) { l.add("stored", s) },
		func(s []wire.Alloc, first bool) {
			if first {
				l.add("server-first", s)
			} else {
				l.add("server", s)
			}
		})
}

func TestRestoreGate(t *testing.T) {
	stored := []wire.Alloc{{ID: "a"}, {ID: "b"}}
	tests := []struct {
		name     string
		stored   []wire.Alloc
		serverAt []time.Duration // when server sets arrive ("c" each)
		want     []string
	}{
		{"a server answers within the wait: local state never starts", stored,
			[]time.Duration{500 * time.Millisecond, 3 * time.Second},
			[]string{"500ms server-first c", "3s server c"}},
		{"no server within the wait: local state starts, the server's set follows", stored,
			[]time.Duration{5 * time.Second},
			[]string{"2s stored ab", "5s server c"}},
		{"nothing stored: the server's set as usual", nil,
			[]time.Duration{time.Second},
			[]string{"1s server c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := &gateLog{start: time.Now()}
				g := newLoggedGate(l, tt.stored)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() {
					defer close(done)
					g.run(ctx, DefaultRestoreWait)
				}()
				for _, at := range tt.serverAt {
					time.Sleep(at - time.Since(l.start)) // the fake clock: no real waiting
					g.serverSet([]wire.Alloc{{ID: "c"}})
				}
				synctest.Wait()
				cancel()
				<-done
				if len(l.events) != len(tt.want) {
					t.Fatalf("events %q, want %q", l.events, tt.want)
				}
				for i := range tt.want {
					if l.events[i] != tt.want[i] {
						t.Fatalf("events %q, want %q", l.events, tt.want)
					}
				}
			})
		})
	}
}
