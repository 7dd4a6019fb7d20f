package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/internal/boltcheck"
)

// openState opens the state file at path and checks it against what the
// Raft log and snapshots in node (openLog) hold. The state is derived
// from Raft, so a file that cannot be trusted is never fatal while Raft
// can rebuild it:
//
//   - damaged (state.Open's checks: header, format record, every page;
//     a bbolt panic included), or ahead of everything Raft holds (a file
//     from another cluster, or a Raft dir that was replaced): it is moved
//     aside to path.damaged-<time>, logged by name, and an empty state
//     takes its place;
//   - behind the newest snapshot (an empty or rebuilt state, an old copy
//     put back): restore is true, and Raft's start restores the snapshot
//     into it before replaying the log after it.
//
// catchUp is the Raft log's last index when the state was rebuilt or
// restored (0 otherwise): until the state has applied it, it lacks
// entries the log holds.
//
// What is left is an error naming the files: a state Raft cannot bring
// up to date (its log starts after the state's index and no snapshot
// covers the gap).
func openState(path string, node *raftNode, log *slog.Logger) (st *state.Store, restore bool, catchUp uint64, err error) {
	first, last, snap, err := raftHolds(node)
	if err != nil {
		return nil, false, 0, err
	}
	st, err = state.Open(path)
	rebuilt := false
	if errors.Is(err, state.ErrCorruptState) {
		st, err = replaceState(path, err.Error(), log)
		rebuilt = true
	}
	if err != nil {
		return nil, false, 0, err
	}
	if idx := st.Index(); idx > max(last, snap) {
		st.Close()
		why := fmt.Sprintf("%s has applied Raft index %d, beyond the Raft log's last index %d and the newest snapshot's %d: it is not this Raft's state", path, idx, last, snap)
		if st, err = replaceState(path, why, log); err != nil {
			return nil, false, 0, err
		}
		rebuilt = true
	}
	idx := st.Index()
	switch {
	case idx < snap:
		log.Info("state is behind the newest Raft snapshot: restoring it from the snapshot, then replaying the log", "file", path, "index", idx, "snapshot", snap)
		return st, true, last, nil
	case first > 0 && idx+1 < first:
		st.Close()
		return nil, false, 0, fmt.Errorf("%w: %s has applied index %d, but the Raft log starts at %d and no snapshot covers the entries between: move it aside to rebuild it from a peer",
			state.ErrCorruptState, path, idx, first)
	}
	if rebuilt {
		catchUp = last
	}
	return st, false, catchUp, nil
}

// raftHolds returns the first and last index of the Raft log (0, 0 when
// empty) and the newest snapshot's index (0 when none).
func raftHolds(node *raftNode) (first, last, snap uint64, err error) {
	if first, err = node.logDB.FirstIndex(); err != nil {
		return 0, 0, 0, fmt.Errorf("coordinator: raft log: %w", err)
	}
	if last, err = node.logDB.LastIndex(); err != nil {
		return 0, 0, 0, fmt.Errorf("coordinator: raft log: %w", err)
	}
	snaps, err := node.snaps.List()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("coordinator: raft snapshots: %w", err)
	}
	if len(snaps) > 0 {
		snap = snaps[0].Index
	}
	return first, last, snap, nil
}

// replaceState moves the damaged file at path aside and opens an empty
// state in its place.
func replaceState(path, why string, log *slog.Logger) (*state.Store, error) {
	aside := fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405.000Z"))
	if err := os.Rename(path, aside); err != nil {
		return nil, fmt.Errorf("coordinator: %s: %s; moving it aside failed: %w", path, why, err)
	}
	log.Warn("state file damaged: moved aside, rebuilding it from the Raft snapshot and log", "file", path, "moved_to", aside, "why", why)
	st, err := state.Open(path)
	if err != nil {
		return nil, fmt.Errorf("coordinator: a new state file in place of the damaged %s: %w", path, err)
	}
	return st, nil
}

// StateReport is what CheckDataDir found in a data dir.
type StateReport struct {
	StateFile string         // the state file checked
	RaftLog   string         // the Raft log whose pages were checked
	Format    string         // the state's format record
	Index     uint64         // the state's applied Raft index
	Records   map[string]int // records decoded, by bucket
}

// CheckDataDir fully checks a stopped server's data dir (`strata
// operator state check`): every page and record of state.db
// (state.CheckFile), and every page of the Raft log. It changes nothing.
// An error names the file it is about.
func CheckDataDir(dataDir string) (*StateReport, error) {
	path := filepath.Join(dataDir, "state.db")
	rep, err := state.CheckFile(path)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dataDir, "raft", "raft.db")
	if err := boltcheck.Preflight(logPath); err != nil {
		return nil, fmt.Errorf("coordinator: raft log: %w", err)
	}
	return &StateReport{StateFile: path, RaftLog: logPath, Format: rep.Format, Index: rep.Index, Records: rep.Records}, nil
}
