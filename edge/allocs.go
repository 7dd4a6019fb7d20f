package edge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// allocSet keeps the node's allocation runners in the state the servers
// ask for: it starts a runner for each allocation to run, stops those no
// longer wanted, confirms stops to the servers, and stops the allocations
// whose group says so once the agent has been offline too long.
type allocSet struct {
	deps   *runnerDeps
	outbox *outbox
	// states are the task states kept in local state (nil: none kept).
	states taskStateStore
	// inUse is told the modules the allocations to run need, before any
	// runner fetches one, so the module cache never evicts them.
	inUse func(digests map[string]bool)
	log   *slog.Logger

	mu      sync.Mutex
	runners map[string]*allocRunner
	// stopping are the runners shutting down (deregistered, waiting their
	// shutdown delay, then stopping): their stop is confirmed to the
	// servers only once their tasks ended, so their ports stay theirs.
	stopping  map[string]*allocRunner
	hurry     chan struct{}  // closed by stopAll: cut shutdown delays short
	shutdowns notifier       // told each time a shutdown is confirmed
	wg        sync.WaitGroup // runners and shutdowns
}

// taskStateStore is the part of local state that keeps task histories.
type taskStateStore interface {
	taskStates(allocID string) (map[string]*wire.TaskState, error)
	deleteTaskStates(allocID string) error
}

func newAllocSet(deps *runnerDeps, o *outbox, states taskStateStore, inUse func(map[string]bool), log *slog.Logger) *allocSet {
	return &allocSet{deps: deps, outbox: o, states: states, inUse: inUse, log: log,
		runners: map[string]*allocRunner{}, stopping: map[string]*allocRunner{}, hurry: make(chan struct{})}
}

// reconcile brings the runners to the servers' desired set. reattach
// says the set comes from local state after an agent restart: its tasks
// first try to re-attach to what the previous run left running.
func (s *allocSet) reconcile(desired []wire.Alloc, reattach bool) {
	want := make(map[string]wire.Alloc, len(desired))
	modules := map[string]bool{}
	for _, al := range desired {
		want[al.ID] = al
		if al.DesiredStatus != "run" {
			continue
		}
		for _, t := range al.Tasks {
			if t.Config.ModuleDigest != "" {
				modules[t.Config.ModuleDigest] = true
			}
		}
	}
	// Before any runner starts fetching: what they need is never evicted.
	s.inUse(modules)
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.runners {
		al, ok := want[id]
		if !ok || al.DesiredStatus != "run" {
			delete(s.runners, id)
			s.stopping[id] = r
			s.wg.Go(func() { s.shutdown(r, al, ok) })
		}
	}
	for id, al := range want {
		if _, ok := s.stopping[id]; ok {
			continue // its shutdown confirms the stop
		}
		if al.DesiredStatus != "run" {
			// Stopped by the server while we were not running it:
			// confirm it is done.
			if _, ok := s.runners[id]; !ok {
				s.confirmStopped(al, nil)
			}
			continue
		}
		if r, ok := s.runners[id]; ok {
			r.update(al)
			continue
		}
		if s.outbox.finished(id) {
			continue // an allocation ID never runs again once it ended here
		}
		r := newAllocRunner(s.deps, al, s.storedTaskStates(id), reattach)
		s.runners[id] = r
		s.wg.Go(r.run)
	}
}

// shutdown stops a runner the servers no longer want, deregistering its
// services first (allocRunner.shutdown), and then confirms the stop: a
// stopped allocation is reported complete, a forgotten one is dropped.
func (s *allocSet) shutdown(r *allocRunner, al wire.Alloc, listed bool) {
	r.shutdown("stopped by the coordinator", s.hurry)
	states := r.taskStates()
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.shutdowns.notify()
	delete(s.stopping, r.alloc.ID)
	if !listed {
		s.outbox.forget(r.alloc.ID)
		s.forgetTaskStates(r.alloc.ID)
		return
	}
	s.confirmStopped(al, states)
}

// waitShutdowns returns once no allocation is shutting down, or ctx ends.
func (s *allocSet) waitShutdowns(ctx context.Context) error {
	for {
		changed := s.shutdowns.wait()
		s.mu.Lock()
		n := len(s.stopping)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// stopOffline stops the allocations whose group asked to be stopped
// after this long without the servers (disconnect.stop_on_client_after).
// The link calls it between reconnection attempts, at most 5s apart.
func (s *allocSet) stopOffline(offline time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.runners {
		limit := time.Duration(r.alloc.StopAfterOfflineMillis) * time.Millisecond
		if limit <= 0 || offline < limit {
			continue
		}
		s.log.Warn("stopping allocation: no server reachable for longer than stop_on_client_after",
			"alloc", r.alloc.Name, "offline", offline.Round(time.Second), "limit", limit)
		desc := fmt.Sprintf("stopped by the agent after %s without a server (stop_on_client_after)", offline.Round(time.Second))
		r.stop(desc)
		delete(s.runners, id)
		s.outbox.report(wire.AllocStatus{AllocID: id, ClientStatus: "complete", Description: desc, TaskStates: r.taskStates()})
	}
}

// stopAll stops every runner and waits for them; runners shutting down
// skip the rest of their shutdown delay.
func (s *allocSet) stopAll(reason string) {
	s.mu.Lock()
	select {
	case <-s.hurry:
	default:
		close(s.hurry)
	}
	for id, r := range s.runners {
		r.stop(reason)
		delete(s.runners, id)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// handle is the running attempt of a task, for signals and stats.
func (s *allocSet) handle(allocID, task string) (taskHandle, error) {
	s.mu.Lock()
	r := s.runners[allocID]
	s.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("allocation %s does not run on this node", allocID)
	}
	return r.handle(task)
}

// signal sends a signal to a running task.
func (s *allocSet) signal(ctx context.Context, allocID, task, sig string) error {
	sig, err := normalizeSignal(sig)
	if err != nil {
		return err
	}
	h, err := s.handle(allocID, task)
	if err != nil {
		return err
	}
	s.log.Info("signalling task", "alloc_id", allocID, "task", task, "signal", sig)
	return h.signal(ctx, sig)
}

// restart restarts a running task of an allocation in place, or every
// running one for task "" (RestartTask), and returns the tasks restarted.
func (s *allocSet) restart(_ context.Context, allocID, task string) ([]string, error) {
	s.mu.Lock()
	r := s.runners[allocID]
	s.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("allocation %s does not run on this node", allocID)
	}
	return r.restartTasks(task)
}

// stats measures a running task's resource use.
func (s *allocSet) stats(ctx context.Context, allocID, task string) (wire.TaskStats, error) {
	h, err := s.handle(allocID, task)
	if err != nil {
		return wire.TaskStats{}, err
	}
	st, err := h.stats(ctx)
	st.AllocID, st.Task, st.Time = allocID, task, time.Now().UnixNano()
	return st, err
}

// confirmStopped reports a stopped allocation complete once, so the
// server can free its resources; states are its tasks' final states when
// a runner was just stopped (else the last reported ones are kept).
func (s *allocSet) confirmStopped(al wire.Alloc, states map[string]*wire.TaskState) {
	st, ok := s.outbox.last(al.ID)
	if ok && (st.ClientStatus == "complete" || st.ClientStatus == "failed") {
		return
	}
	if states == nil {
		states = st.TaskStates
	}
	s.outbox.report(wire.AllocStatus{AllocID: al.ID, ClientStatus: "complete", Description: "stopped by the coordinator", TaskStates: states})
}

// storedTaskStates are an allocation's task states kept in local state
// (from before an agent restart), or nil.
func (s *allocSet) storedTaskStates(id string) map[string]*wire.TaskState {
	if s.states == nil {
		return nil
	}
	states, err := s.states.taskStates(id)
	if err != nil {
		s.log.Warn("reading stored task states", "alloc_id", id, "err", err)
	}
	return states
}

// forgetTaskStates drops an allocation's stored task states once the
// servers no longer list it (they hold its last reported states).
func (s *allocSet) forgetTaskStates(id string) {
	if s.states == nil {
		return
	}
	if err := s.states.deleteTaskStates(id); err != nil {
		s.log.Warn("deleting task states", "alloc_id", id, "err", err)
	}
}
