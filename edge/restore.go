package edge

import (
	"context"
	"sync"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// DefaultRestoreWait is Config.RestoreWait's default.
const DefaultRestoreWait = 2 * time.Second

// restoreGate decides, after an agent restart, whether the allocations
// kept in local state start, or the servers' allocation set replaces
// them. The servers may have stopped or replaced some while the agent was
// away (its node was down: they were lost and placed elsewhere), so the
// set from local state starts only when no server sent one within the
// wait (an edge host offline keeps serving, a short moment later); once a
// server's set arrived first, the stored set is never started, and what
// the previous run left (containers) is kept only for allocations in the
// server's set.
//
// It is a small state machine: waiting until the first of serverSet and
// timeout, then resolved. Both steps run their action under its lock, so
// a stored set started at the timeout is always reconciled before a
// server's set that arrives at the same moment.
type restoreGate struct {
	mu       sync.Mutex
	stored   []wire.Alloc // nil once resolved
	resolved chan struct{}
	// startStored starts the stored set (offline start); fromServer
	// applies a server's set, with whether it is the first since the
	// restart (it replaces the stored set).
	startStored func(stored []wire.Alloc)
	fromServer  func(set []wire.Alloc, first bool)
}

func newRestoreGate(stored []wire.Alloc, startStored func([]wire.Alloc), fromServer func([]wire.Alloc, bool)) *restoreGate {
	g := &restoreGate{stored: stored, resolved: make(chan struct{}), startStored: startStored, fromServer: fromServer}
	if len(stored) == 0 {
		g.stored = nil
		close(g.resolved)
	}
	return g
}

// serverSet applies an allocation set a server sent.
func (g *restoreGate) serverSet(set []wire.Alloc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	first := g.stored != nil
	if first {
		g.stored = nil
		close(g.resolved)
	}
	g.fromServer(set, first)
}

// timeout starts the stored set if no server's set came first.
func (g *restoreGate) timeout() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stored == nil {
		return
	}
	stored := g.stored
	g.stored = nil
	close(g.resolved)
	g.startStored(stored)
}

// run waits wait, then calls timeout, unless a server's set resolved the
// gate first or ctx ended.
func (g *restoreGate) run(ctx context.Context, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-g.resolved:
	case <-t.C:
		g.timeout()
	}
}
