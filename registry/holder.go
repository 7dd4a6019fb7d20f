package registry

import (
	"context"
	"fmt"
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
	mu  sync.Mutex // serialises writers
}

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
	h := &Holder{}
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
	return h.publishLocked(s)
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
	return next, h.publishLocked(next)
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
