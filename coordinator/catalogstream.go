package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
)

// errNoCatalog refuses a catalog stream on a server that keeps no catalog.
var errNoCatalog = errors.New("this server keeps no service catalog to replicate")

// catalogWriteTimeout bounds one frame's write on the catalog stream: an
// agent that stops reading (while its connection stays up) has its stream
// reset rather than held by a blocked writer; it opens a new one, at its
// replica's index, when it reads again.
const catalogWriteTimeout = time.Minute

// catalogRetry is the stream error code of a catalog stream the server
// ended on an error (a write timed out): the agent opens a new one. Code 1,
// what every other failed agent stream is reset with, is what a server
// that predates the catalog stream answers it with: the agent does not
// retry that one.
const catalogRetry quic.StreamErrorCode = 2

// catalogStream is the catalog stream as serveCatalog uses it (a *quic.Stream).
type catalogStream interface {
	io.ReadWriter
	CancelRead(quic.StreamErrorCode)
	CancelWrite(quic.StreamErrorCode)
	SetWriteDeadline(time.Time) error
}

// serveCatalog serves one agent's catalog stream (wire/catalog.go): the
// snapshot or the delta that brings the agent's replica at w.Index up to
// date, then a delta per change until ctx ends (the connection closed).
//
// Buffering is bounded without a queue: the server remembers only the
// index it last sent, and after each write asks the catalog for one delta
// from there to the current index (Holder.DeltaSince). Changes that
// happen while a write is blocked on a slow link are merged into the next
// delta instead of piling up; the stream's flow-control window is the
// only buffer. It waits on the catalog's change channel, never polling.
func (a *agentEndpoint) serveCatalog(ctx context.Context, st catalogStream, w wire.CatalogWatch, log *slog.Logger) error {
	if a.catalog == nil {
		return wire.Write(st, wire.TypeError, wire.Error{Message: errNoCatalog.Error()})
	}
	// The agent ends the stream by resetting it: reading sees that, and the
	// server stops writing.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer cancel()
		var b [1]byte
		st.Read(b[:]) // the agent sends nothing after CatalogWatch: returns at its reset, or at ours below
	}()
	defer func() {
		st.CancelRead(0)
		<-readerDone
	}()
	stop := context.AfterFunc(ctx, func() { st.CancelWrite(0) })
	defer stop()

	sent, first := w.Index, true
	var seen *registry.Snapshot // the catalog the agent's replica now matches; nil if not known
	for {
		snap, changed := a.catalog.Changed()
		if first || snap != seen {
			// A catalog replaced whole (rebuilt after a snapshot restore)
			// at an index the agent already has: no delta describes the
			// change, so it gets the snapshot.
			whole := !first && seen != nil && snap.Index() <= sent
			f, err := a.sendCatalog(st, sent, first, whole)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				st.CancelWrite(catalogRetry)
				return err
			}
			if f.snapshot {
				log.Debug("catalog snapshot sent", "from", sent, "index", f.index)
			}
			sent, first, seen = f.index, false, f.matches
			continue // the catalog may have moved on while writing
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// catalogFrame is what sendCatalog sent.
type catalogFrame struct {
	index    uint64
	snapshot bool
	// matches is the published snapshot the agent's replica matches once it
	// applied the frame: the one sent, or for a delta the one published at
	// its index just after it was computed (nil if another was already
	// published: the next round then sends the delta from index). A
	// catalog replaced whole at the same index between those two reads
	// would be missed until the next change: a rebuild lands in that
	// window of microseconds only by rare chance.
	matches *registry.Snapshot
}

// sendCatalog writes the frame that takes a replica at index to the
// catalog's current index: a delta when the catalog still has the changes
// since index, else the whole snapshot (always on the first frame for a
// replica at 0, and when whole is set).
func (a *agentEndpoint) sendCatalog(st catalogStream, index uint64, first, whole bool) (catalogFrame, error) {
	st.SetWriteDeadline(time.Now().Add(catalogWriteTimeout))
	defer st.SetWriteDeadline(time.Time{})
	if d, ok := a.catalog.DeltaSince(index); ok && !whole && !(first && index == 0) {
		f := catalogFrame{index: d.Index, matches: a.catalog.Snapshot()}
		if f.matches.Index() != d.Index {
			f.matches = nil
		}
		if d.Index == index && !first {
			return f, nil // nothing new after all
		}
		b, err := d.MarshalBinary()
		if err != nil {
			return f, fmt.Errorf("encoding the delta to %d: %w", d.Index, err)
		}
		return f, wire.Write(st, wire.TypeCatalogDelta, wire.CatalogDelta{Index: d.Index, Delta: b})
	}
	snap := a.catalog.Snapshot()
	f := catalogFrame{index: snap.Index(), snapshot: true, matches: snap}
	b, err := snap.MarshalBinary()
	if err != nil {
		return f, fmt.Errorf("encoding the snapshot at %d: %w", snap.Index(), err)
	}
	return f, wire.Write(st, wire.TypeCatalogSnapshot, wire.CatalogSnapshot{Index: snap.Index(), Catalog: b})
}
