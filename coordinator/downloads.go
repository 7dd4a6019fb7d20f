package coordinator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// serveAgentStreams answers the streams the agent opens after its control
// stream, one goroutine each: a module download (FetchModule) or the
// catalog stream (CatalogWatch, catalogstream.go), told apart by their
// first frame.
func (a *agentEndpoint) serveAgentStreams(ctx context.Context, conn *quic.Conn, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			if err := a.serveAgentStream(ctx, st, log); err != nil && ctx.Err() == nil {
				log.Warn("agent stream", "err", err)
				st.CancelWrite(1)
			}
		}()
	}
}

func (a *agentEndpoint) serveAgentStream(ctx context.Context, st *quic.Stream, log *slog.Logger) error {
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	t, payload, err := wire.Read(st)
	if err != nil {
		return err
	}
	st.SetReadDeadline(time.Time{})
	switch t {
	case wire.TypeFetchModule:
		var req wire.FetchModule
		if err := wire.Decode(t, payload, &req); err != nil {
			return err
		}
		if err := a.sendModule(st, req); err != nil {
			return fmt.Errorf("module download: %w", err)
		}
		return nil
	case wire.TypeCatalogWatch:
		var w wire.CatalogWatch
		if err := wire.Decode(t, payload, &w); err != nil {
			return err
		}
		if err := a.serveCatalog(ctx, st, w, log); err != nil {
			return fmt.Errorf("catalog stream: %w", err)
		}
		return nil
	}
	return fmt.Errorf("a stream the agent opens must start with FetchModule or CatalogWatch, got %s", t)
}

func (a *agentEndpoint) sendModule(st *quic.Stream, req wire.FetchModule) error {
	if !a.blobs.Has(req.Digest) {
		// Pushed through another server: copy it from there first.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := a.copier.fetch(ctx, req.Digest)
		cancel()
		if err != nil {
			a.log.Warn("module not available", "digest", req.Digest, "err", err)
		}
	}
	f, size, err := a.blobs.Open(req.Digest)
	if err != nil {
		return wire.Write(st, wire.TypeModule, wire.ModuleHeader{Digest: req.Digest, Error: err.Error()})
	}
	defer f.Close()
	if req.Offset < 0 || req.Offset > size {
		return wire.Write(st, wire.TypeModule, wire.ModuleHeader{Digest: req.Digest, Size: size,
			Error: fmt.Sprintf("offset %d is outside the module's %d bytes", req.Offset, size)})
	}
	if _, err := f.Seek(req.Offset, io.SeekStart); err != nil {
		return err
	}
	if err := wire.Write(st, wire.TypeModule, wire.ModuleHeader{Digest: req.Digest, Size: size, Offset: req.Offset}); err != nil {
		return err
	}
	_, err = io.Copy(st, f)
	return err
}
