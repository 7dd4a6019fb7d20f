package coordinator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/internal/boltcheck"

	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// Buckets of the state database. Keys inside are documented at each use.
var (
	bucketMeta        = []byte("meta")          // "index" -> uint64 last applied Raft index
	bucketJobs        = []byte("jobs")          // job ID -> JobRecord
	bucketJobVersions = []byte("job_versions")  // job ID \x00 BE uint64 version -> spec.Job
	bucketModules     = []byte("modules")       // name@version -> Module
	bucketNodes       = []byte("nodes")         // node ID -> NodeRecord
	bucketAllocs      = []byte("allocs")        // alloc ID -> Alloc, binary (appendAllocRecord)
	bucketAllocsByJob = []byte("allocs_by_job") // job ID \x00 alloc ID -> nil
	bucketEvals       = []byte("evals")         // eval ID -> Eval
	bucketServices    = []byte("services")      // service \x00 alloc ID \x00 n -> registry.Endpoint

	// Allocations by node are indexed in memory (usageIndex), not here:
	// a plan spreads over hundreds of nodes, so a bbolt index by node
	// dirtied a random page per placement.
	allBuckets = [][]byte{bucketMeta, bucketJobs, bucketJobVersions, bucketModules,
		bucketNodes, bucketAllocs, bucketAllocsByJob, bucketEvals, bucketServices, bucketTokens}

	keyIndex  = []byte("index")
	keyCA     = []byte("ca") // ClusterCA
	keyFormat = []byte("format")
)

// stateFormat is written into meta/format; a file without it, or with
// another value, is not a Strata state file. v2: allocations are binary
// records and have no bbolt index by node.
const stateFormat = "strata-state-v2"

// ErrCorruptState is returned when a state file or snapshot cannot be trusted.
var ErrCorruptState = errors.New("coordinator: corrupt state")

// Store is the FSM's durable state in bbolt. Writes happen only through
// the FSM (one bbolt transaction per Raft batch, applied index included);
// reads open their own read transaction.
type Store struct {
	path string

	mu     sync.RWMutex // guards db swaps on restore
	db     *bolt.DB
	allocs allocCache // committed allocations, for the FSM's updates
	usage  usageIndex // nodes with what they hold, for the scheduler
	watchM sync.Mutex
	watch  chan struct{} // closed and replaced after every commit
}

// OpenStore opens (creating if absent) the state file at path. An existing
// file that is not a valid Strata state file is an error naming the file;
// it is never replaced by an empty state.
func OpenStore(path string) (*Store, error) {
	db, err := openStateDB(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, db: db, watch: make(chan struct{}), allocs: allocCache{m: map[string]*Alloc{}}}
	if err := db.View(s.usage.rebuild); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func openStateDB(path string) (db *bolt.DB, err error) {
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
			db, err = nil, fmt.Errorf("%w: %s: %v", ErrCorruptState, path, r)
		}
	}()
	// The freelist is rebuilt at open instead of written on every commit:
	// fewer pages per Raft batch.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrCorruptState, path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
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
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = checkDB(db, path)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// checkDB walks every page of the file (bbolt's consistency check), so a
// truncated or scribbled file fails at start, not on first read.
func checkDB(db *bolt.DB, path string) error {
	return db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("%w: %s: %v", ErrCorruptState, path, err)
		}
		return nil
	})
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

// Watch returns a channel closed at the next commit. Take it before reading
// to never miss a change between the read and the wait.
func (s *Store) Watch() <-chan struct{} {
	s.watchM.Lock()
	defer s.watchM.Unlock()
	return s.watch
}

func (s *Store) notify() {
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

// beginRead opens a read transaction that outlives the call; release ends
// it. It holds off Restore until released.
func (s *Store) beginRead() (*bolt.Tx, func(), error) {
	s.mu.RLock()
	tx, err := s.db.Begin(false)
	if err != nil {
		s.mu.RUnlock()
		return nil, nil, err
	}
	var once sync.Once
	return tx, func() {
		once.Do(func() {
			tx.Rollback()
			s.mu.RUnlock()
		})
	}, nil
}

// WriteTo writes a consistent copy of the whole state (a bbolt file) to w.
func (s *Store) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Restore replaces the state with a snapshot read from r. The snapshot is
// written beside the state file and checked before it replaces anything;
// a bad snapshot leaves the current state untouched.
func (s *Store) Restore(r io.Reader) error {
	tmp := s.path + ".restore"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("coordinator: read snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	f.Close()
	check, err := openStateDB(tmp)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("coordinator: snapshot rejected: %w", err)
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
	db, err := openStateDB(s.path)
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

// ---- reads ----

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

// Job returns a job record, or nil.
func (s *Store) Job(id string) (*JobRecord, error) {
	var rec *JobRecord
	err := s.view(func(tx *bolt.Tx) error {
		var r JobRecord
		ok, err := getJSON(tx.Bucket(bucketJobs), []byte(id), &r)
		if ok {
			rec = &r
		}
		return err
	})
	return rec, err
}

// Jobs returns every job record sorted by ID.
func (s *Store) Jobs() ([]*JobRecord, error) {
	var out []*JobRecord
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			var r JobRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: job %q: %v", ErrCorruptState, k, err)
			}
			out = append(out, &r)
			return nil
		})
	})
	return out, err
}

// JobVersions returns every stored version of a job, oldest first.
func (s *Store) JobVersions(id string) ([]*spec.Job, error) {
	var out []*spec.Job
	prefix := append([]byte(id), 0)
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobVersions).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var j spec.Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("%w: job version %q: %v", ErrCorruptState, k, err)
			}
			out = append(out, &j)
		}
		return nil
	})
	return out, err
}

// JobVersion returns one version of a job, or nil.
func (s *Store) JobVersion(id string, version uint64) (*spec.Job, error) {
	var j *spec.Job
	err := s.view(func(tx *bolt.Tx) error {
		var v spec.Job
		ok, err := getJSON(tx.Bucket(bucketJobVersions), jobVersionKey(id, version), &v)
		if ok {
			j = &v
		}
		return err
	})
	return j, err
}

func jobVersionKey(id string, version uint64) []byte {
	k := make([]byte, len(id)+9)
	copy(k, id)
	binary.BigEndian.PutUint64(k[len(id)+1:], version)
	return k
}

// Module returns name@version, or nil.
func (s *Store) Module(name, version string) (*Module, error) {
	var m *Module
	err := s.view(func(tx *bolt.Tx) error {
		var v Module
		ok, err := getJSON(tx.Bucket(bucketModules), []byte(name+"@"+version), &v)
		if ok {
			m = &v
		}
		return err
	})
	return m, err
}

// ModuleByDigest returns any module version with that digest, or nil.
func (s *Store) ModuleByDigest(digest string) (*Module, error) {
	mods, err := s.Modules()
	for _, m := range mods {
		if m.Digest == digest {
			return m, err
		}
	}
	return nil, err
}

// Modules returns every module version, sorted by name then push order.
func (s *Store) Modules() ([]*Module, error) {
	var out []*Module
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketModules).ForEach(func(k, v []byte) error {
			var m Module
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("%w: module %q: %v", ErrCorruptState, k, err)
			}
			out = append(out, &m)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].CreateIndex < out[j].CreateIndex
	})
	return out, err
}

// Node returns a node, or nil.
func (s *Store) Node(id string) (*NodeRecord, error) {
	var n *NodeRecord
	err := s.view(func(tx *bolt.Tx) error {
		var v NodeRecord
		ok, err := getJSON(tx.Bucket(bucketNodes), []byte(id), &v)
		if ok {
			n = &v
		}
		return err
	})
	return n, err
}

// Nodes returns every node sorted by ID.
func (s *Store) Nodes() ([]*NodeRecord, error) {
	var out []*NodeRecord
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var n NodeRecord
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("%w: node %q: %v", ErrCorruptState, k, err)
			}
			out = append(out, &n)
			return nil
		})
	})
	return out, err
}

// Alloc returns an allocation, or nil.
func (s *Store) Alloc(id string) (*Alloc, error) {
	var a *Alloc
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		a, err = getAlloc(tx, []byte(id))
		return err
	})
	return a, err
}

// AllocsByPrefix returns the allocations whose ID starts with prefix
// (every one for ""), or, if none does, those whose ID ends with it,
// sorted by ID. Allocation IDs are time-ordered (ids.go), so allocations
// created in the same minute share their first characters; the CLI shows
// and people type the last ones, which are random.
func (s *Store) AllocsByPrefix(prefix string) ([]*Alloc, error) {
	var out []*Alloc
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAllocs).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			a, err := decodeAllocRecord(v)
			if err != nil {
				return fmt.Errorf("%w: allocation %q: %v", ErrCorruptState, k, err)
			}
			out = append(out, a)
		}
		if len(out) > 0 || prefix == "" {
			return nil
		}
		for _, id := range s.usage.allocsWithSuffix(prefix) {
			a, err := getAlloc(tx, []byte(id))
			if err != nil {
				return err
			}
			if a != nil {
				out = append(out, a)
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

func getAlloc(tx *bolt.Tx, id []byte) (*Alloc, error) {
	raw := tx.Bucket(bucketAllocs).Get(id)
	if raw == nil {
		return nil, nil
	}
	a, err := decodeAllocRecord(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: allocation %q: %v", ErrCorruptState, id, err)
	}
	return a, nil
}

// allocsByIndex reads the allocations listed under prefix in an index bucket.
func allocsByIndex(tx *bolt.Tx, index []byte, owner string) ([]*Alloc, error) {
	var out []*Alloc
	prefix := append([]byte(owner), 0)
	c := tx.Bucket(index).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		a, err := getAlloc(tx, k[len(prefix):])
		if err != nil {
			return nil, err
		}
		if a == nil {
			return nil, fmt.Errorf("%w: index %s lists missing allocation %q", ErrCorruptState, index, k[len(prefix):])
		}
		out = append(out, a)
	}
	return out, nil
}

// JobAllocs returns a job's allocations sorted by name then creation.
func (s *Store) JobAllocs(jobID string) ([]*Alloc, error) {
	var out []*Alloc
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = allocsByIndex(tx, bucketAllocsByJob, jobID)
		return err
	})
	sortAllocs(out)
	return out, err
}

// NodeAllocs returns a node's allocations (listed by the in-memory
// index, which holds committed allocations only; allocations are never
// deleted, so each is in bbolt).
func (s *Store) NodeAllocs(nodeID string) ([]*Alloc, error) {
	ids := s.usage.nodeAllocs(nodeID)
	out := make([]*Alloc, 0, len(ids))
	err := s.view(func(tx *bolt.Tx) error {
		for _, id := range ids {
			a, err := getAlloc(tx, []byte(id))
			if err != nil {
				return err
			}
			if a == nil {
				return fmt.Errorf("%w: node %s lists missing allocation %q", ErrCorruptState, nodeID, id)
			}
			out = append(out, a)
		}
		return nil
	})
	sortAllocs(out)
	return out, err
}

func sortAllocs(as []*Alloc) {
	sort.Slice(as, func(i, j int) bool {
		if as[i].Name != as[j].Name {
			return as[i].Name < as[j].Name
		}
		return as[i].CreateIndex < as[j].CreateIndex
	})
}

// Eval returns an evaluation, or nil.
func (s *Store) Eval(id string) (*Eval, error) {
	var e *Eval
	err := s.view(func(tx *bolt.Tx) error {
		var v Eval
		ok, err := getJSON(tx.Bucket(bucketEvals), []byte(id), &v)
		if ok {
			e = &v
		}
		return err
	})
	return e, err
}

// Evals returns evaluations with the given status ("" = all).
func (s *Store) Evals(status string) ([]*Eval, error) {
	var out []*Eval
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvals).ForEach(func(k, v []byte) error {
			var e Eval
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: eval %q: %v", ErrCorruptState, k, err)
			}
			if status == "" || e.Status == status {
				out = append(out, &e)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out, err
}

// Endpoints implements registry.Catalog; service names match
// case-insensitively.
func (s *Store) Endpoints(service string) []registry.Endpoint {
	var out []registry.Endpoint
	prefix := append([]byte(strings.ToLower(service)), 0)
	s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketServices).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e registry.Endpoint
			if json.Unmarshal(v, &e) == nil {
				out = append(out, e)
			}
		}
		return nil
	})
	return out
}

// Services returns every service name with its endpoint count.
func (s *Store) Services() map[string]int {
	out := map[string]int{}
	s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketServices).ForEach(func(k, _ []byte) error {
			if i := bytes.IndexByte(k, 0); i > 0 {
				out[string(k[:i])]++
			}
			return nil
		})
	})
	return out
}

// NodeStates returns every node with the resources and ports its
// non-terminal allocations hold: the scheduler's view of the cluster,
// from memory. The values are shared and immutable: copy before changing.
func (s *Store) NodeStates() ([]*sched.NodeState, error) {
	return s.usage.snapshot(), nil
}

// NodeAllocChanges counts the committed batches that wrote allocations on
// a node (from memory; it restarts at 0 with the process).
func (s *Store) NodeAllocChanges(nodeID string) uint64 { return s.usage.allocChanges(nodeID) }

// NodeCount is the number of registered nodes (from memory).
func (s *Store) NodeCount() int { return s.usage.count() }

// NodeState returns one node's view, or nil (shared and immutable).
func (s *Store) NodeState(id string) *sched.NodeState { return s.usage.get(id) }

// allocCacheMax bounds the allocation cache; past it, the oldest entries
// are dropped (they are read back from bbolt on the next miss). Picking a
// victim by map iteration cost 0.9 s of CPU over a million placements.
const allocCacheMax = 200_000

// allocCache holds committed allocations so the FSM need not decode an
// allocation's JSON for every status update. Values are never mutated:
// the FSM works on copies and publishes them after its transaction
// commits.
type allocCache struct {
	mu    sync.RWMutex
	m     map[string]*Alloc
	order []string // IDs in the order they entered m: a ring, oldest at next once full
	next  int
}

func (c *allocCache) get(id string) *Alloc {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[id]
}

func (c *allocCache) publish(pending map[string]*Alloc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, a := range pending {
		if _, ok := c.m[id]; !ok {
			if len(c.order) < allocCacheMax {
				c.order = append(c.order, id)
			} else {
				delete(c.m, c.order[c.next])
				c.order[c.next] = id
				c.next = (c.next + 1) % allocCacheMax
			}
		}
		c.m[id] = a
	}
}

func (c *allocCache) clear() {
	c.mu.Lock()
	c.m, c.order, c.next = map[string]*Alloc{}, nil, 0
	c.mu.Unlock()
}

// CA returns the cluster CA, or nil before a leader created it.
func (s *Store) CA() (*ClusterCA, error) {
	var ca *ClusterCA
	err := s.view(func(tx *bolt.Tx) error {
		var c ClusterCA
		ok, err := getJSON(tx.Bucket(bucketMeta), keyCA, &c)
		if ok {
			ca = &c
		}
		return err
	})
	return ca, err
}

// LiveAllocs returns how many allocations hold resources (from memory).
func (s *Store) LiveAllocs() int { return s.usage.liveAllocs() }
