package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// errCatalogRefused: the server answered the catalog stream with an Error
// frame (it keeps no catalog) or reset it (it predates the stream).
// Retrying on the same connection cannot help.
var errCatalogRefused = errors.New("the server does not replicate the service catalog")

// catalogRetryCode is the stream error code a current server resets a
// catalog stream with when it failed to serve it (the coordinator's
// catalogRetry): the agent opens a new one.
const catalogRetryCode quic.StreamErrorCode = 2

// watch keeps the replica current over conn's catalog stream until ctx
// ends or the connection closes (the link's session then ends, and the
// next session watches again from the replica's index). A frame the
// replica cannot apply (bad bytes, a delta that does not fit) restarts
// the stream from index 0, for a whole snapshot, a few times at most.
func (r *replica) watch(ctx context.Context, conn *quic.Conn) {
	defer r.unlink()
	from := r.index()
	b := newBackoff(time.Second, 30*time.Second)
	for attempt := 1; ; attempt++ {
		err := r.watchStream(ctx, conn, from)
		if ctx.Err() != nil || conn.Context().Err() != nil {
			return
		}
		if errors.Is(err, errCatalogRefused) {
			r.log.Warn("no catalog replication from this server: DNS answers from the replica as it is", "index", r.index(), "err", err)
			return
		}
		if attempt == 5 {
			r.log.Error("catalog stream failed: giving up until the next connection", "attempts", attempt, "err", err)
			return
		}
		r.log.Warn("catalog stream failed: asking for the whole catalog", "err", err)
		from = 0
		r.unlink()
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.next()):
		}
	}
}

// watchStream opens a catalog stream for a replica at index from and
// applies what it carries until the stream or ctx ends.
func (r *replica) watchStream(ctx context.Context, conn *quic.Conn, from uint64) error {
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	// The agent never closes its side (the server takes that as the end):
	// it resets both when it is done.
	defer st.CancelWrite(0)
	defer st.CancelRead(0)
	stop := context.AfterFunc(ctx, func() { st.CancelRead(0) })
	defer stop()
	if err := wire.Write(st, wire.TypeCatalogWatch, wire.CatalogWatch{Index: from}); err != nil {
		return err
	}
	err = r.follow(st)
	var se *quic.StreamError
	if errors.As(err, &se) && se.Remote && se.ErrorCode != 0 && se.ErrorCode != catalogRetryCode {
		// What a server that predates the stream does to a stream it cannot
		// read (code 1); a current one resets with 0 (its connection ends)
		// or catalogRetryCode.
		return fmt.Errorf("%w: it reset the stream (a server older than the catalog stream?)", errCatalogRefused)
	}
	return err
}

// follow applies the frames of a catalog stream to the replica until the
// stream ends: the error says why (never nil).
func (r *replica) follow(st io.Reader) error {
	for {
		t, payload, err := wire.Read(st)
		if err != nil {
			return err
		}
		switch t {
		case wire.TypeCatalogSnapshot:
			var m wire.CatalogSnapshot
			if err := wire.Decode(t, payload, &m); err != nil {
				return err
			}
			if err := r.setSnapshot(m.Index, m.Catalog); err != nil {
				return fmt.Errorf("catalog snapshot at %d: %w", m.Index, err)
			}
			r.log.Debug("catalog snapshot applied", "index", m.Index)
		case wire.TypeCatalogDelta:
			var m wire.CatalogDelta
			if err := wire.Decode(t, payload, &m); err != nil {
				return err
			}
			if err := r.applyDelta(m.Index, m.Delta); err != nil {
				return fmt.Errorf("catalog delta to %d: %w", m.Index, err)
			}
		case wire.TypeError:
			var e wire.Error
			if err := wire.Decode(t, payload, &e); err != nil {
				return err
			}
			return fmt.Errorf("%w: %w", errCatalogRefused, (*wire.Refusal)(&e))
		default:
			return fmt.Errorf("unexpected %s frame on the catalog stream", t)
		}
	}
}
