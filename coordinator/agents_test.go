package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

func startTestServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{DataDir: t.TempDir(), Bootstrap: true, DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !s.IsLeader() || s.CAPin() == "" {
		if time.Now().After(deadline) {
			t.Fatal("no leadership (and cluster CA) within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

func dialAgent(t *testing.T, s *Server) *quic.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM())
	tc := &tls.Config{RootCAs: pool, ServerName: "server.strata", NextProtos: []string{wire.ALPN}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, s.AgentAddr(), tc, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

// Garbage on the control stream closes that agent's connection with a
// reason; the server keeps serving other agents.
func TestAgentEndpointRefusesGarbage(t *testing.T) {
	s := startTestServer(t)
	cases := map[string][]byte{
		"oversized frame": {0xff, 0xff, 0xff, 0xff, 1},
		"unknown type":    {0, 0, 0, 3, 200, '{', '}'},
		"not register":    {0, 0, 0, 3, byte(wire.TypeHeartbeat), '{', '}'},
		"bad json":        {0, 0, 0, 4, byte(wire.TypeRegister), '{', 'x', '}'},
	}
	for name, garbage := range cases {
		t.Run(name, func(t *testing.T) {
			conn := dialAgent(t, s)
			st, err := conn.OpenStreamSync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			st.Write(garbage)
			select {
			case <-conn.Context().Done():
			case <-time.After(10 * time.Second):
				t.Fatal("server did not close the connection after garbage")
			}
			var appErr *quic.ApplicationError
			if err := context.Cause(conn.Context()); !errors.As(err, &appErr) || appErr.ErrorCode != closeProtocol || appErr.ErrorMessage == "" {
				t.Fatalf("close cause = %v, want a protocol error with a reason", err)
			}
		})
	}

	// A well-behaved agent still registers.
	conn := dialAgent(t, s)
	st, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.Write(st, wire.TypeRegister, wire.Register{NodeID: "n1", Name: "n1", Address: "127.0.0.1", CPU: 1000, MemoryMB: 1024, Drivers: map[string]bool{"wasm": true}}); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := wire.Read(st)
	if err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register: %v %v", typ, err)
	}
	var ack wire.Registered
	wire.Decode(typ, payload, &ack)
	if ack.NodeID != "n1" || ack.HeartbeatMillis <= 0 {
		t.Fatalf("ack = %+v", ack)
	}
	typ, _, err = wire.Read(st)
	if err != nil || typ != wire.TypeAllocs {
		t.Fatalf("expected the initial Allocs push, got %v %v", typ, err)
	}
	if n, _ := s.Store().Node("n1"); n == nil || n.Datacenter != "dc1" {
		t.Fatalf("registered node = %+v, want datacenter dc1 by default", n)
	}
}

// A module download names a missing digest: the agent gets an error
// header, not a hang.
func TestModuleDownloadOfUnknownDigest(t *testing.T) {
	s := startTestServer(t)
	conn := dialAgent(t, s)
	ctrl, _ := conn.OpenStreamSync(context.Background())
	wire.Write(ctrl, wire.TypeRegister, wire.Register{NodeID: "n1", Name: "n1", Address: "127.0.0.1"})
	if typ, _, err := wire.Read(ctrl); err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register: %v %v", typ, err)
	}
	st, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("nothing"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	wire.Write(st, wire.TypeFetchModule, wire.FetchModule{Digest: digest})
	typ, payload, err := wire.Read(st)
	if err != nil || typ != wire.TypeModule {
		t.Fatalf("download: %v %v", typ, err)
	}
	var hdr wire.ModuleHeader
	wire.Decode(typ, payload, &hdr)
	if !strings.Contains(hdr.Error, "not stored") {
		t.Fatalf("header = %+v, want an error saying the module is not stored", hdr)
	}
}

// A download names an offset: the server sends the module from there
// (a resumed download), and refuses an offset past the end.
func TestModuleDownloadFromOffset(t *testing.T) {
	s := startTestServer(t)
	b, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := s.PushModule(context.Background(), "tiny", "1.0.0", b)
	if err != nil {
		t.Fatal(err)
	}
	conn := dialAgent(t, s)
	ctrl, _ := conn.OpenStreamSync(context.Background())
	wire.Write(ctrl, wire.TypeRegister, wire.Register{NodeID: "n1", Name: "n1", Address: "127.0.0.1"})
	if typ, _, err := wire.Read(ctrl); err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register: %v %v", typ, err)
	}
	fetch := func(offset int64) (wire.ModuleHeader, []byte) {
		t.Helper()
		st, err := conn.OpenStreamSync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wire.Write(st, wire.TypeFetchModule, wire.FetchModule{Digest: m.Digest, Offset: offset})
		st.Close()
		typ, payload, err := wire.Read(st)
		if err != nil || typ != wire.TypeModule {
			t.Fatalf("download: %v %v", typ, err)
		}
		var hdr wire.ModuleHeader
		wire.Decode(typ, payload, &hdr)
		rest, err := io.ReadAll(st)
		if err != nil {
			t.Fatal(err)
		}
		return hdr, rest
	}
	for _, off := range []int64{0, 10, int64(len(b))} {
		hdr, rest := fetch(off)
		if hdr.Error != "" || hdr.Size != int64(len(b)) || hdr.Offset != off || !bytes.Equal(rest, b[off:]) {
			t.Fatalf("from %d: header %+v and %d bytes, want the module's last %d", off, hdr, len(rest), len(b)-int(off))
		}
	}
	if hdr, rest := fetch(int64(len(b)) + 1); !strings.Contains(hdr.Error, "outside") || len(rest) != 0 {
		t.Fatalf("past the end: header %+v, %d bytes", hdr, len(rest))
	}
}
