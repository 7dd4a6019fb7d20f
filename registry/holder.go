package registry

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Holder publishes the current Snapshot of a catalog: readers load it with one
// atomic read (no lock), writers replace it whole, and waiters block until the
// index passes a value. It is safe for concurrent use; the zero value is not
// usable, use NewHolder.
//
// The coordinator keeps one Holder, replaced as its FSM applies endpoint changes;
// an agent keeps one as its replica, fed by the deltas it receives.
type Holder struct {
	cur atomic.Pointer[published]

	mu       sync.Mutex // serialises writers and guards the delta log
	log      []Delta    // the last deltas applied, oldest first, at most maxDeltaLog
	logStart uint64     // the index the first delta in log applies to
}

// maxDeltaLog bounds the deltas a Holder keeps for DeltaSince: an agent that
// is further behind gets a whole snapshot.
const maxDeltaLog = 4096

// published pairs a snapshot with the channel closed when it is superseded.
type published struct {
	snap *Snapshot
	next chan struct{}
}

// NewHolder returns a holder publishing s (an empty snapshot at index 0 if s is nil).
func NewHolder(s *Snapshot) *Holder {
	if s == nil {
		s = emptySnapshot
	}
	h := &Holder{logStart: s.index}
	h.cur.Store(&published{snap: s, next: make(chan struct{})})
	return h
}

// Snapshot returns the current snapshot.
func (h *Holder) Snapshot() *Snapshot { return h.cur.Load().snap }

// Index returns the current snapshot's index.
func (h *Holder) Index() uint64 { return h.cur.Load().snap.index }

// Set publishes s. Its index must not go backwards (a replica that reloads from
// its own disk starts a new Holder instead): Set returns ErrStaleDelta then.
// Publishing a snapshot with the same index is allowed (a rebuild that changes
// nothing a watcher can see) and wakes no one.
func (h *Holder) Set(s *Snapshot) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.publishLocked(s); err != nil {
		return err
	}
	h.log, h.logStart = nil, s.index // no delta leads to s
	return nil
}

// Replace publishes s whatever its index, waking every waiter: for a replica
// that resynchronises from a full snapshot after its own local changes (an
// agent that kept its allocations' health current while its link was down).
// A waiter for an index above s's keeps waiting for a later publication.
func (h *Holder) Replace(s *Snapshot) error {
	if s == nil {
		return fmt.Errorf("registry: Holder.Replace(nil)")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.cur.Load()
	h.cur.Store(&published{snap: s, next: make(chan struct{})})
	close(old.next)
	h.log, h.logStart = nil, s.index
	return nil
}

// Apply applies d to the current snapshot and publishes the result.
func (h *Holder) Apply(d Delta) (*Snapshot, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	next, err := h.cur.Load().snap.Apply(d)
	if err != nil {
		return nil, err
	}
	if err := h.publishLocked(next); err != nil {
		return nil, err
	}
	// Log the delta as applied: upserts as the snapshot holds them (normalised,
	// immutable), so the caller may reuse its slices.
	logged := Delta{Index: d.Index, Deletes: slices.Clone(d.Deletes)}
	if len(d.Upserts) > 0 {
		logged.Upserts = make([]Instance, len(d.Upserts))
		for i := range d.Upserts {
			logged.Upserts[i] = next.byID[d.Upserts[i].ID].Instance
		}
	}
	if len(h.log) == maxDeltaLog {
		h.logStart = h.log[0].Index
		h.log = slices.Delete(h.log, 0, 1)
	}
	h.log = append(h.log, logged)
	return next, nil
}

// DeltaSince returns one delta that takes a snapshot at index to the current
// one: for an agent that reconnects at the index of its replica, so it is not
// sent the whole catalog again. ok is false when the Holder no longer has (or
// never had) the deltas after index (it keeps the last 4096, and none from
// before a Set or Replace): send Snapshot() instead. A replica already at the
// current index gets an empty delta at that index, which it must skip (Apply
// would refuse it as stale).
func (h *Holder) DeltaSince(index uint64) (d Delta, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.cur.Load().snap.index
	if index < h.logStart || index > cur {
		return Delta{}, false
	}
	upserts := map[string]Instance{}
	deleted := map[string]bool{}
	for _, l := range h.log {
		if l.Index <= index {
			continue
		}
		for _, id := range l.Deletes {
			delete(upserts, id)
			deleted[id] = true
		}
		for _, in := range l.Upserts {
			delete(deleted, in.ID)
			upserts[in.ID] = in
		}
	}
	d.Index = cur
	for _, id := range slices.Sorted(maps.Keys(upserts)) {
		d.Upserts = append(d.Upserts, upserts[id])
	}
	d.Deletes = slices.Sorted(maps.Keys(deleted))
	return d, true
}

func (h *Holder) publishLocked(s *Snapshot) error {
	old := h.cur.Load()
	switch {
	case s == nil:
		return fmt.Errorf("registry: Holder.Set(nil)")
	case s.index < old.snap.index:
		return fmt.Errorf("%w: index %d, holder at %d", ErrStaleDelta, s.index, old.snap.index)
	case s.index == old.snap.index:
		h.cur.Store(&published{snap: s, next: old.next})
		return nil
	}
	h.cur.Store(&published{snap: s, next: make(chan struct{})})
	close(old.next)
	return nil
}

// Wait returns the first published snapshot whose index is above index: at once
// if the current one is, else when one is published. It returns ctx's error (and
// the current snapshot) if ctx ends first. It never polls: it sleeps on a channel
// closed by the next publication.
func (h *Holder) Wait(ctx context.Context, index uint64) (*Snapshot, error) {
	for {
		p := h.cur.Load()
		if p.snap.index > index {
			return p.snap, nil
		}
		select {
		case <-p.next:
		case <-ctx.Done():
			return h.Snapshot(), ctx.Err()
		}
	}
}

// Changed returns the current snapshot and a channel closed when a snapshot with
// a higher index is published: for a caller that waits on other things too.
func (h *Holder) Changed() (*Snapshot, <-chan struct{}) {
	p := h.cur.Load()
	return p.snap, p.next
}
