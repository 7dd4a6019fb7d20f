package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
)

// withPadding appends a custom section of n bytes to a wasm module: the
// same program, n bytes larger.
func withPadding(b []byte, n int) []byte {
	uleb := func(v int) []byte {
		var out []byte
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				return append(out, c)
			}
			out = append(out, c|0x80)
		}
	}
	name := "padding"
	content := append(uleb(len(name)), name...)
	content = append(content, make([]byte, n)...)
	out := append(bytes.Clone(b), 0)
	out = append(out, uleb(len(content))...)
	return append(out, content...)
}

// End to end over QUIC: an agent's module download is cut when its
// connection to the server breaks; the agent reconnects, and the
// download resumes from the partial file on the new session.
func TestDownloadResumesOverANewSession(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a coordinator")
	}
	srv := startCoordinator(t, coordinator.Config{})
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	module := withPadding(tiny, 2<<20)
	m, _, err := srv.PushModule(context.Background(), "big", "1.0.0", module)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok, err := srv.CreateJoinToken(structs.JoinTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(ctx, Config{Servers: []string{srv.AgentAddr()}, CAPin: srv.CAPin(), JoinToken: tok.Secret, DataDir: t.TempDir(), NodeName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	select {
	case <-a.Registered():
	case <-ctx.Done():
		t.Fatal("agent did not register")
	}

	// The first download breaks the agent's connection after cut bytes.
	const cut = 700_000
	var offsets []int64
	var firstConn any
	src := &moduleSource{cache: a.mods, conn: a.link.liveConn}
	cutting := func(ctx context.Context, digest string, offset int64) (wire.ModuleHeader, io.ReadCloser, error) {
		offsets = append(offsets, offset)
		hdr, body, err := src.open(ctx, digest, offset)
		if err != nil || len(offsets) > 1 {
			return hdr, body, err
		}
		conn, _ := a.link.liveConn(ctx)
		firstConn = conn
		return hdr, &breakAfter{r: body, n: cut, brk: func() { conn.CloseWithError(0, "test: link lost") }}, nil
	}
	got, err := a.mods.fetch(ctx, m.Digest, cutting)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, module) {
		t.Fatal("downloaded module differs from the pushed one")
	}
	if len(offsets) != 2 || offsets[0] != 0 || offsets[1] != cut {
		t.Fatalf("offsets asked = %v, want [0 %d]", offsets, cut)
	}
	if conn, _ := a.link.liveConn(ctx); any(conn) == firstConn {
		t.Fatal("the download resumed on the connection that was broken")
	}
}

// breakAfter passes n bytes through, then breaks the link and fails.
type breakAfter struct {
	r   io.ReadCloser
	n   int64
	brk func()
}

func (b *breakAfter) Read(p []byte) (int, error) {
	if b.n <= 0 {
		b.brk()
		return 0, errors.New("link lost")
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

func (b *breakAfter) Close() error { return b.r.Close() }
