package coordinator

import (
	"fmt"
	"sync"

	"github.com/strata-run/strata/coordinator/state"
)

// defaultEventBuffer is how many events a server keeps for the event
// stream's subscribers and resumes (about a megabyte or two of records).
const defaultEventBuffer = 4096

// eventEntry is one Raft index's events: the unit the stream sends
// (Nomad's {"Index":N,"Events":[…]}). Published entries are never changed.
type eventEntry struct {
	Index  uint64
	Events []state.Event
}

// eventBuffer keeps the latest events the FSM applied on this server, a
// bounded ring (oldest entries dropped first), and wakes subscribers when
// more arrive. The FSM only appends under a short lock: a subscriber,
// slow or not, never holds it up (subscribers read with after and wait
// on the channel it returns).
type eventBuffer struct {
	mu      sync.Mutex
	max     int // events kept (an entry larger than max is kept alone)
	entries []eventEntry
	count   int
	// floor is the highest index whose events may be missing here: the
	// state's index when the server started (events before it were
	// applied by an earlier process), raised as entries are dropped or
	// a snapshot replaces the state. A resume from below it has a gap.
	floor uint64
	last  uint64        // the latest index applied
	wake  chan struct{} // closed at each publish
}

func newEventBuffer(max int, index uint64) *eventBuffer {
	if max <= 0 {
		max = defaultEventBuffer
	}
	return &eventBuffer{max: max, floor: index, last: index, wake: make(chan struct{})}
}

// publish records a batch's events (state.Effects.Events, in index
// order) and the index the batch reached.
func (b *eventBuffer) publish(index uint64, events []state.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := 0; i < len(events); {
		j := i
		for j < len(events) && events[j].Index == events[i].Index {
			j++
		}
		b.entries = append(b.entries, eventEntry{Index: events[i].Index, Events: events[i:j:j]})
		b.count += j - i
		i = j
	}
	for len(b.entries) > 1 && b.count > b.max {
		b.floor = b.entries[0].Index
		b.count -= len(b.entries[0].Events)
		b.entries[0] = eventEntry{}
		b.entries = b.entries[1:]
	}
	if index > b.last {
		b.last = index
	}
	close(b.wake)
	b.wake = make(chan struct{})
}

// reset forgets every event: a snapshot replaced the state at index, so
// what happened between the last entry and it is not known here.
func (b *eventBuffer) reset(index uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries, b.count = nil, 0
	b.floor, b.last = index, index
	close(b.wake)
	b.wake = make(chan struct{})
}

// errEventGap is a subscriber's position the buffer no longer covers.
type errEventGap struct{ from, floor uint64 }

func (e *errEventGap) Error() string {
	return fmt.Sprintf("event stream: the events after index %d are no longer kept on this server (it keeps those after index %d): read the current state and subscribe again from its index", e.from, e.floor)
}

// after returns the entries with an index above from (at most limit of
// them), the index they reach (the next call's from), and a channel
// closed when more are published. A from below the buffer's floor is a
// gap: *errEventGap.
func (b *eventBuffer) after(from uint64, limit int) ([]eventEntry, uint64, <-chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if from < b.floor {
		return nil, from, nil, &errEventGap{from: from, floor: b.floor}
	}
	// Entries are in index order: find the first above from.
	lo, hi := 0, len(b.entries)
	for lo < hi {
		m := (lo + hi) / 2
		if b.entries[m].Index <= from {
			lo = m + 1
		} else {
			hi = m
		}
	}
	out := b.entries[lo:min(len(b.entries), lo+limit)]
	to := max(from, b.last)
	if lo+limit < len(b.entries) {
		to = out[len(out)-1].Index
	}
	return out, to, b.wake, nil
}

// check reports whether a subscription may start after from.
func (b *eventBuffer) check(from uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if from < b.floor {
		return &errEventGap{from: from, floor: b.floor}
	}
	return nil
}

// position is the index a subscription with no index starts after.
func (b *eventBuffer) position() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}
