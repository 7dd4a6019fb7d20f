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

// serveDownloads answers module downloads, one per stream.
func (a *agentEndpoint) serveDownloads(ctx context.Context, conn *quic.Conn, log *slog.Logger) {
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
			if err := a.sendModule(st); err != nil {
				log.Warn("module download", "err", err)
				st.CancelWrite(1)
			}
		}()
	}
}

func (a *agentEndpoint) sendModule(st *quic.Stream) error {
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	t, payload, err := wire.Read(st)
	if err != nil {
		return err
	}
	if t != wire.TypeFetchModule {
		return fmt.Errorf("download stream must start with FetchModule, got %s", t)
	}
	var req wire.FetchModule
	if err := wire.Decode(t, payload, &req); err != nil {
		return err
	}
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
