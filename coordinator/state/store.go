package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/boltcheck"
)

// Buckets of the state database. Keys inside are documented at each use.
// These names and encodings are the durable format (stateFormat): never
// rename or re-encode them without a new format version.
var (
	bucketMeta        = []byte("meta")             // "index" -> uint64 last applied Raft index; "format"; "ca" -> ClusterCA
	bucketJobs        = []byte("jobs")             // job ID -> JobRecord
	bucketJobVersions = []byte("job_versions")     // job ID \x00 BE uint64 version -> spec.Job
	bucketModules     = []byte("modules")          // name@version -> Module
	bucketNodes       = []byte("nodes")            // node ID -> NodeRecord
	bucketAllocs      = []byte("allocs")           // alloc ID -> Alloc, binary (appendAllocRecord)
	bucketAllocsByJob = []byte("allocs_by_job")    // job ID \x00 alloc ID -> nil
	bucketEvals       = []byte("evals")            // eval ID -> Eval
	bucketServices    = []byte("services")         // service \x00 alloc ID \x00 n -> registry.Endpoint
	bucketTokens      = []byte("join_tokens")      // token ID -> JoinToken
	bucketDeployments = []byte("deployments")      // deployment ID -> Deployment
	bucketVersionInfo = []byte("job_version_info") // job ID \x00 BE uint64 version -> VersionInfo

	// Allocations by node are indexed in memory (usageIndex), not here:
	// a plan spreads over hundreds of nodes, so a bbolt index by node
	// dirtied a random page per placement.
	allBuckets = [][]byte{bucketMeta, bucketJobs, bucketJobVersions, bucketModules,
		bucketNodes, bucketAllocs, bucketAllocsByJob, bucketEvals, bucketServices, bucketTokens,
		bucketDeployments, bucketVersionInfo}

	keyIndex  = []byte("index")
	keyCA     = []byte("ca")
	keyFormat = []byte("format")
)

// stateFormat is written into meta/format; a file without it, or with
// another value, is not a Strata state file. v2: allocations are binary
// records and have no bbolt index by node.
const stateFormat = "strata-state-v2"

// ErrCorruptState is returned when a state file or snapshot cannot be trusted.
var ErrCorruptState = errors.New("state: corrupt state")

// Store is the replicated state machine's state, durable in one bbolt
// file, with the in-memory views the scheduler and the agents' pushes
// read (the usage index, the allocation cache). Writes happen only
// through Apply (one bbolt transaction per batch of entries, applied
// index included); reads open their own read transaction.
type Store struct {
	path string

	mu     sync.RWMutex // guards db swaps on restore
	db     *bolt.DB
	allocs allocCache // committed allocations, for Apply's updates
	usage  usageIndex // nodes with what they hold, for the scheduler
	// onApply, if set, is called after each command Apply applied or
	// refused, inside the batch's transaction (OnApply).
	onApply func(CmdType)
	watchM  sync.Mutex
	watch   chan struct{} // closed and replaced after every commit

	// notifyHook, if set, runs just before watchers are woken (tests
	// observe what a woken watcher would read).
	notifyHook func()
}

// Open opens (creating if absent) the state file at path. An existing
// file that is not a valid Strata state file is an error naming the file;
// it is never replaced by an empty state.
//
// Open never panics on bad bytes: bbolt panics on some damaged pages, and
// such a panic is turned into an error naming the file.
func Open(path string) (*Store, error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, db: db, watch: make(chan struct{}), allocs: allocCache{m: map[string]*structs.Alloc{}}}
	if err := viewRecovering(db, path, s.usage.rebuild); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// viewRecovering runs fn in a read transaction, turning a bbolt panic on
// a damaged page into an error naming the file.
func viewRecovering(db *bolt.DB, path string, fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorruptState, path, r)
		}
	}()
	if err := db.View(fn); err != nil {
		if errors.Is(err, ErrCorruptState) {
			return fmt.Errorf("%s: %w", path, err)
		}
		return err
	}
	return nil
}

func openDB(path string) (db *bolt.DB, err error) {
	fresh := false
	if fi, statErr := os.Stat(path); errors.Is(statErr, os.ErrNotExist) {
		fresh = true
	} else if statErr == nil && fi.Size() == 0 {
		return nil, fmt.Errorf("%w: %s is empty (a crash while it was created?); move it aside to start with an empty state", ErrCorruptState, path)
	}
	if err := boltcheck.Preflight(path); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	defer func() {
		// bbolt panics on some malformed files instead of returning an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorruptState, path, r)
		}
		if err != nil && db != nil {
			closeQuietly(db)
			db = nil
		}
	}()
	// The freelist is rebuilt at open instead of written on every commit:
	// fewer pages per Raft batch.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("state: %s is locked by another process: is another server running on this data dir?", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrCorruptState, path, err)
	}
	// Check the pages before writing anything: a write into a damaged
	// file could spread the damage.
	if err = checkDB(db, path); err != nil {
		return db, err
	}
	if err = db.Update(func(tx *bolt.Tx) error { return initBuckets(tx, path, fresh) }); err != nil {
		return db, err
	}
	return db, nil
}

// closeQuietly closes a damaged file's handle; closing may panic too.
func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	db.Close()
}

// initBuckets checks the format of an existing file, or writes it into a
// fresh one, and creates the buckets a file lacks.
func initBuckets(tx *bolt.Tx, path string, fresh bool) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if !fresh {
			return fmt.Errorf("%w: %s has no %q bucket: not a Strata state file", ErrCorruptState, path, bucketMeta)
		}
		m, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := m.Put(keyFormat, []byte(stateFormat)); err != nil {
			return err
		}
	} else if f := meta.Get(keyFormat); string(f) != stateFormat {
		if strings.HasPrefix(string(f), "strata-state-") {
			return fmt.Errorf("%w: %s has format %q, want %q: it was written by another Strata version, which this one cannot read (there is no migration); move it aside to start with an empty state", ErrCorruptState, path, f, stateFormat)
		}
		return fmt.Errorf("%w: %s has format %q, want %q", ErrCorruptState, path, f, stateFormat)
	}
	for _, b := range slices.Concat(allBuckets, aclBuckets) {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// checkDB walks every page of the file (bbolt's consistency check), so a
// truncated or scribbled file fails at start, not on first read.
func checkDB(db *bolt.DB, path string) error {
	return db.View(func(tx *bolt.Tx) error { return checkPages(tx, path) })
}

// checkPages runs bbolt's consistency check and returns its first error.
// It reads the check to its end: the check's goroutine uses tx until then.
func checkPages(tx *bolt.Tx, path string) error {
	var first error
	n := 0
	for err := range tx.Check() {
		if first == nil {
			first = err
		}
		n++
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("%w: %s: %v (%d problems found)", ErrCorruptState, path, first, n)
}

// Close closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}

// Index returns the last applied Raft index.
func (s *Store) Index() uint64 {
	var idx uint64
	s.view(func(tx *bolt.Tx) error {
		idx = appliedIndex(tx)
		return nil
	})
	return idx
}

// Watch returns a channel closed at the next commit (or restore), once
// the in-memory views show it too. Take it before reading to never miss a
// change between the read and the wait.
func (s *Store) Watch() <-chan struct{} {
	s.watchM.Lock()
	defer s.watchM.Unlock()
	return s.watch
}

func (s *Store) notify() {
	if s.notifyHook != nil {
		s.notifyHook()
	}
	s.watchM.Lock()
	close(s.watch)
	s.watch = make(chan struct{})
	s.watchM.Unlock()
}

func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.View(fn)
}

// update runs fn in a write transaction. It does not wake watchers: the
// caller calls notify once the in-memory views (alloc cache, usage
// index) show the commit too, or a watcher woken early reads them stale
// and waits for a commit that already happened.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.Update(fn)
}

func appliedIndex(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyIndex)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func setAppliedIndex(tx *bolt.Tx, idx uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], idx)
	return tx.Bucket(bucketMeta).Put(keyIndex, b[:])
}

// Snapshot is the whole state as of one moment, to be written out later
// (while Apply goes on): Raft's FSM snapshot. It holds off Restore until
// released.
type Snapshot struct {
	tx   *bolt.Tx
	once sync.Once
	s    *Store
}

// Snapshot opens a snapshot of the state as it is now.
func (s *Store) Snapshot() (*Snapshot, error) {
	s.mu.RLock()
	tx, err := s.db.Begin(false)
	if err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	return &Snapshot{tx: tx, s: s}, nil
}

// WriteTo writes the snapshot (a bbolt file) to w.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) { return sn.tx.WriteTo(w) }

// Release ends the snapshot; it may be called more than once.
func (sn *Snapshot) Release() {
	sn.once.Do(func() {
		sn.tx.Rollback()
		sn.s.mu.RUnlock()
	})
}

// Restore replaces the state with a snapshot read from r. The snapshot is
// written beside the state file and checked before it replaces anything;
// a bad snapshot leaves the current state untouched.
func (s *Store) Restore(r io.Reader) error {
	tmp := s.path + ".restore"
	if err := writeRestoreFile(tmp, r); err != nil {
		os.Remove(tmp)
		return err
	}
	check, err := openDB(tmp)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state: snapshot rejected: %w", err)
	}
	check.Close()

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	db, err := openDB(s.path)
	if err != nil {
		return err
	}
	s.db = db
	s.allocs.clear()
	if err := db.View(s.usage.rebuild); err != nil {
		return err
	}
	s.notify()
	return nil
}

func writeRestoreFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("state: read snapshot: %w", err)
	}
	return f.Sync()
}

// getJSON reads a JSON record; false when the key is absent.
func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("%w: key %q: %v", ErrCorruptState, key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}
