package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/internal/boltcheck"
	"github.com/strata-run/strata/internal/wire"
)

// localState is the agent's own bbolt file: the last allocation set the
// servers sent, so that after a restart the agent runs its tasks at once,
// before (or without) reaching a server, and their tasks' states and
// events, so that their history survives the restart.
type localState struct {
	db *bolt.DB
}

var (
	bucketAllocs     = []byte("allocs")      // alloc ID -> wire.Alloc
	bucketServers    = []byte("servers")     // agent address of a server -> nil
	bucketTaskStates = []byte("task-states") // alloc ID -> map[task]wire.TaskState
	bucketMeta       = []byte("meta")        // keyAllocsFormat
)

// keyAllocsFormat names the encoding of the stored allocations: the wire
// protocol version whose wire.Alloc they are. An agent of another
// version does not run what it cannot read faithfully.
var (
	keyAllocsFormat = []byte("allocs-format")
	allocsFormat    = []byte(fmt.Sprintf("wire/%d", wire.Version))
)

// ErrCorruptLocalState is returned when the agent's state file cannot be trusted.
var ErrCorruptLocalState = errors.New("edge: corrupt local state")

// errStaleLocalState: the stored allocations were written by an agent of
// another protocol version.
var errStaleLocalState = errors.New("edge: allocations stored by an agent of another version")

// openLocalStateOrReset opens the agent's state file; a damaged one is
// moved aside (path.damaged-<time>, logged by name) and the agent starts
// with an empty one: what it held is the servers' to tell again, which
// they do once the agent reconnects.
func openLocalStateOrReset(path string, log *slog.Logger) (*localState, error) {
	l, err := openLocalState(path)
	if !errors.Is(err, ErrCorruptLocalState) {
		return l, err
	}
	aside := fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405.000Z"))
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, fmt.Errorf("%w; moving it aside failed: %v", err, rerr)
	}
	log.Warn("agent state file damaged: moved aside, starting empty until a server sends this node's allocations", "file", path, "moved_to", aside, "err", err)
	return openLocalState(path)
}

// openLocalState opens the agent's state file, or refuses a damaged one
// with ErrCorruptLocalState naming it (never a panic: bbolt panics on
// some damaged pages).
func openLocalState(path string) (l *localState, err error) {
	if err := boltcheck.Preflight(path); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptLocalState, err)
	}
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorruptLocalState, path, r)
		}
		if err != nil && db != nil {
			func() {
				defer func() { _ = recover() }()
				db.Close()
			}()
			l = nil
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("edge: %s is locked by another process: is another agent running on this data dir?", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrCorruptLocalState, path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketServers); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketTaskStates); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketMeta); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketAllocs)
		return err
	}); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptLocalState, path, err)
	}
	return &localState{db: db}, nil
}

// save replaces the stored allocation set, and drops the task states of
// allocations no longer in it.
func (l *localState) save(allocs []wire.Alloc) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketAllocs); err != nil {
			return err
		}
		b, err := tx.CreateBucket(bucketAllocs)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyAllocsFormat, allocsFormat); err != nil {
			return err
		}
		for _, a := range allocs {
			raw, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(a.ID), raw); err != nil {
				return err
			}
		}
		var gone [][]byte
		ts := tx.Bucket(bucketTaskStates)
		if err := ts.ForEach(func(k, _ []byte) error {
			if b.Get(k) == nil {
				gone = append(gone, k)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range gone {
			if err := ts.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// saveTaskStates replaces an allocation's stored task states.
func (l *localState) saveTaskStates(allocID string, states map[string]*wire.TaskState) error {
	raw, err := json.Marshal(states)
	if err != nil {
		return err
	}
	return l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTaskStates).Put([]byte(allocID), raw)
	})
}

// taskStates returns an allocation's stored task states, or nil.
func (l *localState) taskStates(allocID string) (map[string]*wire.TaskState, error) {
	var out map[string]*wire.TaskState
	err := l.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTaskStates).Get([]byte(allocID))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &out); err != nil {
			return fmt.Errorf("%w: task states of %q: %v", ErrCorruptLocalState, allocID, err)
		}
		return nil
	})
	return out, err
}

// deleteTaskStates forgets an allocation's task states.
func (l *localState) deleteTaskStates(allocID string) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTaskStates).Delete([]byte(allocID))
	})
}

// load returns the stored allocation set; errStaleLocalState if an agent
// of another protocol version stored it.
func (l *localState) load() ([]wire.Alloc, error) {
	var out []wire.Alloc
	err := l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAllocs)
		if k, _ := b.Cursor().First(); k == nil {
			return nil
		}
		if f := tx.Bucket(bucketMeta).Get(keyAllocsFormat); !bytes.Equal(f, allocsFormat) {
			return fmt.Errorf("%w: format %q, this agent reads %q", errStaleLocalState, f, allocsFormat)
		}
		return b.ForEach(func(k, v []byte) error {
			var a wire.Alloc
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("%w: allocation %q: %v", ErrCorruptLocalState, k, err)
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// addServers remembers server addresses learned from the cluster.
func (l *localState) addServers(addrs []string) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketServers)
		for _, a := range addrs {
			if err := b.Put([]byte(a), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// servers returns the remembered server addresses.
func (l *localState) servers() ([]string, error) {
	var out []string
	err := l.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketServers).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

func (l *localState) close() error { return l.db.Close() }
