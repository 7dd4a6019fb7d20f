package edge

import (
	"context"
	"fmt"
	"io"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// moduleSource is the agent's module fetching: a module's bytes come from
// the disk cache (modules.go), and what is missing from the server, on a
// stream of its own of the session that is up (waiting for one while the
// link is down), so a download never delays a heartbeat; a download broken
// with the link resumes on the next session.
type moduleSource struct {
	cache *moduleCache
	// conn waits for the connection of a session that is up.
	conn func(ctx context.Context) (*quic.Conn, error)
}

// fetch returns a module's bytes by digest, verified.
func (m *moduleSource) fetch(ctx context.Context, digest string) ([]byte, error) {
	return m.cache.fetch(ctx, digest, m.open)
}

// open asks the server for digest's bytes from offset on a new stream.
func (m *moduleSource) open(ctx context.Context, digest string, offset int64) (wire.ModuleHeader, io.ReadCloser, error) {
	conn, err := m.conn(ctx)
	if err != nil {
		return wire.ModuleHeader{}, nil, err
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return wire.ModuleHeader{}, nil, fmt.Errorf("open download stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(0) })
	body := &downloadStream{st: st, stop: stop}
	if err := wire.Write(st, wire.TypeFetchModule, wire.FetchModule{Digest: digest, Offset: offset}); err != nil {
		body.Close()
		return wire.ModuleHeader{}, nil, err
	}
	st.Close() // nothing more to send
	var hdr wire.ModuleHeader
	if err := wire.Expect(st, wire.TypeModule, &hdr); err != nil {
		body.Close()
		return hdr, nil, err
	}
	return hdr, body, nil
}

// downloadStream is a download's byte stream; Close abandons what is unread.
type downloadStream struct {
	st   *quic.Stream
	stop func() bool
}

func (d *downloadStream) Read(p []byte) (int, error) { return d.st.Read(p) }

func (d *downloadStream) Close() error {
	d.stop()
	d.st.CancelRead(0)
	return d.st.Close()
}
