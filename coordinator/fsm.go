package coordinator

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-run/strata/coordinator/state"
)

// fsm adapts the state machine (package state) to raft.BatchingFSM: Raft
// log entries in, results and effects out.
type fsm struct {
	store *state.Store
	// hook, if set, hears of each committed batch's effects and status
	// changes. It runs on every server, on the FSM goroutine; the
	// leader's scheduling side acts on it.
	hook applyHook
	// blobs, if set, is told (without blocking) when module blobs may
	// have lost their last module version: a batch deleted some or
	// collected garbage, or a snapshot replaced the state.
	blobs func()
	// catalog, if set, is handed each batch's change to the service
	// catalog, and rebuilt after a restore.
	catalog *catalogFeed
	// metrics times batches and, with the store's OnApply, commands.
	metrics *serverMetrics
	// events, if set, keeps each batch's events for the event stream.
	events *eventBuffer
}

// applyHook is what the adapter tells of each batch (leaderHooks: the
// scheduler and the deployment watcher).
type applyHook interface {
	// watching reports whether the hook acts on status changes now; if
	// not, the adapter does not look for them.
	watching() bool
	applied(fx *state.Effects, changes []statusChange)
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies logs in one transaction. Results are per log: the
// command's result, or the error of a command the state refused.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now()
	f.metrics.batchStart(start)
	defer f.metrics.batchDone(start)
	var reported *reportedAllocs
	if f.hook != nil && f.hook.watching() {
		reported = f.reportedAllocs(logs)
	}
	entries := make([]state.Entry, len(logs))
	for i, l := range logs {
		entries[i] = state.Entry{Index: l.Index, Command: l.Type == raft.LogCommand, Data: l.Data}
	}
	results, fx, err := f.store.Apply(entries)
	if err != nil {
		// A storage failure must not be silently skipped: the FSM would
		// diverge from the log. Raft has no way to retry an Apply, so stop.
		panic(fmt.Sprintf("coordinator: refusing to diverge from the Raft log: %v", err))
	}
	out := make([]any, len(results))
	for i, r := range results {
		if r.Err != nil {
			out[i] = r.Err
		} else {
			out[i] = r.Value
		}
	}
	if f.catalog != nil {
		f.catalog.applied(fx.Catalog)
	}
	if f.events != nil {
		f.events.publish(fx.Index, fx.Events)
	}
	if fx.Modules && f.blobs != nil {
		f.blobs()
	}
	changes := reported.changes(f.store)
	if f.hook != nil && (len(fx.Evals) > 0 || fx.Capacity || len(changes) > 0 || len(fx.Deployments) > 0) {
		f.hook.applied(fx, changes)
	}
	return out
}

// reportedAllocs holds, for the allocations a batch's AllocUpdate
// commands name, their client status before the batch.
//
// The state's Effects say which nodes' allocations a batch wrote but not
// how each allocation's status moved, which the scheduling side's rules
// need (evalTrigger); this reads it before and after the batch, for
// AllocUpdate commands only (agents' reports, and the leader's own when
// it declares unknown allocations lost), so plans and other writes cost
// nothing here.
type reportedAllocs struct {
	ids    []string
	before map[string]statusChange
}

func (f *fsm) reportedAllocs(logs []*raft.Log) *reportedAllocs {
	var r *reportedAllocs
	for _, l := range logs {
		if l.Type != raft.LogCommand || len(l.Data) == 0 || state.CmdType(l.Data[0]) != state.CmdAllocUpdate {
			continue
		}
		var c state.AllocUpdate
		if json.Unmarshal(l.Data[1:], &c) != nil {
			continue // the state refuses it: it changes nothing
		}
		for _, u := range c.Updates {
			if r == nil {
				r = &reportedAllocs{before: map[string]statusChange{}}
			}
			if _, seen := r.before[u.AllocID]; seen {
				continue
			}
			a, err := f.store.Alloc(u.AllocID)
			if err != nil || a == nil {
				continue
			}
			r.ids = append(r.ids, u.AllocID)
			r.before[u.AllocID] = statusChange{AllocID: a.ID, JobID: a.JobID, Before: a.ClientStatus, WasLive: !a.Terminal()}
		}
	}
	return r
}

// changes returns, in the order the batch named them, the allocations
// whose client status the batch changed.
func (r *reportedAllocs) changes(store *state.Store) []statusChange {
	if r == nil {
		return nil
	}
	var out []statusChange
	for _, id := range r.ids {
		c := r.before[id]
		a, err := store.Alloc(id)
		if err != nil || a == nil || a.ClientStatus == c.Before {
			continue
		}
		c.After = a.ClientStatus
		out = append(out, c)
	}
	return out
}

// fsmSnapshot streams the state as of the moment Raft asked for it: its
// snapshot is opened in Snapshot (on the FSM goroutine) and written out
// in Persist, concurrently with later Applies.
type fsmSnapshot struct{ snap *state.Snapshot }

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := f.store.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{snap: snap}, nil
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.snap.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("coordinator: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.snap.Release() }

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	err := f.store.Restore(r)
	if err != nil {
		return err
	}
	if f.catalog != nil {
		f.catalog.rebuild()
	}
	if f.events != nil {
		f.events.reset(f.store.Index())
	}
	if f.blobs != nil {
		f.blobs()
	}
	return nil
}
