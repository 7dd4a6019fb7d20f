package coordinator

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/strata-run/strata/coordinator/state"
)

// fsm adapts the state machine (package state) to raft.BatchingFSM: Raft
// log entries in, results and effects out.
type fsm struct {
	store *state.Store
	// onApply, if set, receives each committed batch's effects. It runs on
	// every server; the leader uses it to queue evaluations.
	onApply func(*state.Effects)
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies logs in one transaction. Results are per log: the
// command's result, or the error of a command the state refused.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
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
	if f.onApply != nil && (len(fx.Evals) > 0 || fx.Capacity) {
		f.onApply(fx)
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
	return f.store.Restore(r)
}
