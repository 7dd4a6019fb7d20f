package state

import (
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
)

// Entry is one committed Raft log entry. Only a command entry (Data is
// what Encode returned) changes the state; any other (a configuration
// change) only advances the applied index.
type Entry struct {
	Index   uint64
	Command bool
	Data    []byte
}

// Result is what applying one entry gives its proposer.
type Result struct {
	// Value is the command's result: *JobRegisterResult for a
	// JobRegister, nil for the others.
	Value any
	// Err is set when the command was refused (malformed, or not valid in
	// the current state): it changed nothing.
	Err error
}

// Effects is what a batch did that the rest of the server reacts to.
type Effects struct {
	// Index is the state's applied index after the batch.
	Index uint64
	// Evals are the evaluations the batch wrote as pending or blocked:
	// the leader queues them.
	Evals []*structs.Eval
	// Capacity is set when capacity may have grown (a node registered or
	// became eligible, an allocation stopped or finished): blocked
	// evaluations retry.
	Capacity bool
	// Nodes are the nodes whose allocations the batch wrote, sorted:
	// their agents need a new allocation set (NodeAllocChanges moved).
	Nodes []string
	// Deployments are the deployments the batch created or changed
	// (counters, status), sorted: the leader's watcher steps them.
	Deployments []string
	// Modules is set when the batch deleted module versions or collected
	// garbage: every server deletes the blobs no module version names.
	Modules bool
	// Catalog is the batch's change to the registry catalog (endpoints
	// registered, changed or gone), stamped with Index; nil when no
	// allocation's endpoints changed. Every server applies it to the
	// catalog it serves (CatalogSnapshot is the same catalog whole).
	Catalog *registry.Delta
	// Events are the changes to jobs, allocations, deployments and nodes,
	// in the order of the entries that made them (events.go): the event
	// stream's source.
	Events []Event
}

// Apply applies a batch of committed entries in one bbolt transaction
// that also records the last applied index, so an entry at or below the
// stored index (replayed after a restart) is skipped. Results are per
// entry: a refused command changes nothing and does not fail the batch.
// Watchers are woken once the in-memory views show the batch.
//
// An error is a storage failure: nothing of the batch was applied, and
// the state no longer follows the log (the caller must not go on).
func (s *Store) Apply(entries []Entry) ([]Result, *Effects, error) {
	results := make([]Result, len(entries))
	b := &batch{cache: &s.allocs}
	err := s.update(func(tx *bolt.Tx) error {
		b.tx = tx
		// Allocation IDs are time-ordered, so these buckets grow at their
		// end: fill pages instead of splitting them in half (bbolt's
		// default), which left the state file twice its size.
		tx.Bucket(bucketAllocs).FillPercent = allocFillPercent
		tx.Bucket(bucketAllocsByJob).FillPercent = allocFillPercent
		applied := appliedIndex(tx)
		b.fx.Index = applied
		for i, e := range entries {
			if e.Index <= applied {
				continue // replayed after a restart: already in the state
			}
			b.fx.Index = e.Index
			if !e.Command {
				continue
			}
			b.index = e.Index
			res, err := b.apply(e.Data)
			if s.onApply != nil && len(e.Data) > 0 {
				s.onApply(CmdType(e.Data[0]))
			}
			var r *refusal
			if errors.As(err, &r) {
				results[i].Err = r
				b.endEntry(0, false)
				continue
			}
			if err != nil {
				return fmt.Errorf("apply index %d: %w", e.Index, err)
			}
			b.endEntry(CmdType(e.Data[0]), true)
			results[i].Value = res
		}
		var err error
		if b.fx.Catalog, err = b.catalogDelta(); err != nil {
			return err
		}
		if b.fx.Index > applied {
			return setAppliedIndex(tx, b.fx.Index)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("state: storage failed: %w", err)
	}
	s.allocs.publish(b.pending)
	s.allocs.drop(b.dropped)
	s.usage.publish(b.usage)
	s.usage.publishStatuses(b.before, b.pending, b.dropped)
	b.fx.Nodes = b.allocNodes()
	b.fx.Deployments = sortedKeys(b.deployments)
	s.notify() // after the in-memory views: a woken watcher reads them current
	return results, &b.fx, nil
}

// allocFillPercent is how full bbolt packs a page of allocations before
// it starts the next one.
const allocFillPercent = 0.9

func refuse(format string, args ...any) error {
	return &refusal{fmt.Errorf(format, args...)}
}

// batch is one Apply call: its write transaction, the index of the entry
// being applied, and what the entries did so far.
type batch struct {
	tx    *bolt.Tx
	index uint64
	fx    Effects
	ev    entryEvents // what the entry being applied touched

	cache   *allocCache
	pending map[string]pendingAlloc // allocations written by this batch, not yet committed
	dropped map[string]bool         // allocations deleted by this batch
	before  map[string]AllocStatus  // committed status of the allocations the batch read (counts.go)
	usage   map[string]*usageDelta  // per node: the batch's change to the usage index
	// deployments are those the batch wrote, by ID (the latest copy).
	deployments map[string]*structs.Deployment
	// catalog is each allocation whose endpoints the batch replaced;
	// movedNodes the nodes that registered with a new address.
	catalog    map[string]*endpointChange
	movedNodes map[string]bool

	arena        arena  // keys and values written to bbolt by this batch
	scratch, key []byte // encoding buffers, copied into the arena
}

// apply decodes one command and applies it.
func (b *batch) apply(data []byte) (any, error) {
	c, err := decodeCommand(data)
	if err != nil {
		return nil, err
	}
	return c.apply(b)
}

// alloc returns an allocation for a command to change: a copy, from this
// batch's writes, the committed cache, or bbolt; nil if there is none.
func (b *batch) alloc(id string) (*structs.Alloc, error) {
	if b.dropped[id] {
		return nil, nil
	}
	if p, ok := b.pending[id]; ok {
		if p.at != b.index {
			// An earlier entry's event holds this copy: change another.
			p = pendingAlloc{a: cloneAlloc(p.a), at: b.index}
			b.pending[id] = p
		}
		return p.a, nil
	}
	if a := b.cache.get(id); a != nil {
		b.committed(a)
		return cloneAlloc(a), nil
	}
	a, err := getAlloc(b.tx, []byte(id))
	if a != nil {
		b.committed(a)
	}
	return a, err
}

// committed records the status of an allocation as committed before the
// batch, which the counts by status move from.
func (b *batch) committed(a *structs.Alloc) {
	if b.before == nil {
		b.before = map[string]AllocStatus{}
	}
	b.before[a.ID] = statusOf(a)
}

// wrote records an allocation this batch wrote.
func (b *batch) wrote(a *structs.Alloc) {
	if b.pending == nil {
		b.pending = map[string]pendingAlloc{}
	}
	p, ok := b.pending[a.ID]
	b.pending[a.ID] = pendingAlloc{a: a, at: b.index, evented: true}
	b.delta(a.NodeID).allocWritten = true
	if !ok || p.at != b.index || !p.evented {
		b.ev.allocs = append(b.ev.allocs, a.ID) // its first write in this entry
	}
}

// pendingAlloc is an allocation the batch wrote, as the latest entry to
// change it left it. Events hold these copies themselves, not clones
// (a plan of 1,000 placements copied 1,000 records): the copy belongs to
// the entry at index at, and batch.alloc clones it before a later entry
// changes it. evented is set once the entry listed it for an event.
type pendingAlloc struct {
	a       *structs.Alloc
	at      uint64
	evented bool
}

// eval writes an evaluation, stamping its indexes, and queues it for the
// leader when it is pending or blocked.
func (b *batch) eval(e *structs.Eval) error {
	evals := b.tx.Bucket(bucketEvals)
	var old structs.Eval
	ok, err := getJSON(evals, []byte(e.ID), &old)
	if err != nil {
		return err
	}
	v := *e
	v.CreateIndex, v.ModifyIndex = b.index, b.index
	if ok {
		v.CreateIndex = old.CreateIndex
	}
	if e.Status == structs.EvalPending || e.Status == structs.EvalBlocked {
		b.fx.Evals = append(b.fx.Evals, e)
	}
	return putJSON(evals, []byte(e.ID), &v)
}

// putAlloc writes an allocation's record in its binary form.
func (b *batch) putAlloc(a *structs.Alloc) error {
	b.scratch = appendAllocRecord(b.scratch[:0], a)
	return b.tx.Bucket(bucketAllocs).Put(b.arena.add(append(b.key[:0], a.ID...)), b.arena.add(b.scratch))
}

// putNewAlloc writes a new allocation and adds it to the by-job index
// (an allocation never changes job or node, so updates skip this). The
// by-node index is in memory (usageIndex), rebuilt at open.
func (b *batch) putNewAlloc(a *structs.Alloc) error {
	if err := b.putAlloc(a); err != nil {
		return err
	}
	b.key = append(append(append(b.key[:0], a.JobID...), 0), a.ID...)
	return b.tx.Bucket(bucketAllocsByJob).Put(b.arena.add(b.key), nil)
}

// allocNodes lists, sorted, the nodes whose allocations the batch wrote.
func (b *batch) allocNodes() []string {
	var out []string
	for id, d := range b.usage {
		if d.allocWritten {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// arenaChunk is the size of the arena's blocks.
const arenaChunk = 64 << 10

// arena holds the keys and values a batch hands to bbolt, which keeps
// references to them until the transaction commits: one allocation per
// 64 KiB instead of two or three per allocation written.
type arena struct{ buf []byte }

// add returns a copy of b that lives as long as the arena.
func (ar *arena) add(b []byte) []byte {
	if len(b) > arenaChunk/8 {
		return slices.Clone(b)
	}
	if cap(ar.buf)-len(ar.buf) < len(b) {
		ar.buf = make([]byte, 0, arenaChunk)
	}
	start := len(ar.buf)
	ar.buf = append(ar.buf, b...)
	return ar.buf[start:len(ar.buf):len(ar.buf)]
}
