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
	for {
		snap, changed := a.catalog.Changed()
		if first || snap.Index() > sent {
			idx, snapshot, err := a.sendCatalog(st, sent, first)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				st.CancelWrite(catalogRetry)
				return err
			}
			if snapshot {
				log.Debug("catalog snapshot sent", "from", sent, "index", idx)
			}
			sent, first = idx, false
			continue // the catalog may have moved on while writing
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// sendCatalog writes the frame that takes a replica at index to the
// catalog's current index: a delta when the catalog still has the changes
// since index, else the whole snapshot (always on the first frame for a
// replica at 0). It returns the index written.
func (a *agentEndpoint) sendCatalog(st catalogStream, index uint64, first bool) (uint64, bool, error) {
	st.SetWriteDeadline(time.Now().Add(catalogWriteTimeout))
	defer st.SetWriteDeadline(time.Time{})
	if d, ok := a.catalog.DeltaSince(index); ok && !(first && index == 0) {
		if d.Index == index && !first {
			return index, false, nil // nothing new after all
		}
		b, err := d.MarshalBinary()
		if err != nil {
			return 0, false, fmt.Errorf("encoding the delta to %d: %w", d.Index, err)
		}
		return d.Index, false, wire.Write(st, wire.TypeCatalogDelta, wire.CatalogDelta{Index: d.Index, Delta: b})
	}
	snap := a.catalog.Snapshot()
	b, err := snap.MarshalBinary()
	if err != nil {
		return 0, false, fmt.Errorf("encoding the snapshot at %d: %w", snap.Index(), err)
	}
	return snap.Index(), true, wire.Write(st, wire.TypeCatalogSnapshot, wire.CatalogSnapshot{Index: snap.Index(), Catalog: b})
}
