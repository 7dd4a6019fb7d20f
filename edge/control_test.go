package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// The control protocol over an in-memory pipe, on synctest's fake clock:
// registration with the protocol versions, heartbeats at the server's
// pace and a retuned one, allocation pushes, the status outbox, and
// what is re-sent after a reconnect.

// pipeStream is one end of a net.Pipe as a control or server stream.
type pipeStream struct{ net.Conn }

func (p pipeStream) CancelRead(quic.StreamErrorCode)  { p.Conn.Close() }
func (p pipeStream) CancelWrite(quic.StreamErrorCode) { p.Conn.Close() }

// controlUnderTest is a control part with fakes around it.
type controlUnderTest struct {
	c       *control
	allocs  chan wire.Allocs
	learned []string
}

func newControlUnderTest() *controlUnderTest {
	cu := &controlUnderTest{allocs: make(chan wire.Allocs, 8)}
	cu.c = &control{
		registration: func() wire.Register { return wire.Register{NodeID: "n1", Name: "edge-1", Address: "127.0.0.1"} },
		outbox:       newOutbox(),
		allocs:       func(_ context.Context, m wire.Allocs) { cu.allocs <- m },
		learn:        func(addrs []string) { cu.learned = append(cu.learned, addrs...) },
		log:          testLoggerDiscard(),
	}
	return cu
}

// session runs one session on a new pipe; the test gets the server's end.
func (cu *controlUnderTest) session(ctx context.Context) (server net.Conn, up chan struct{}, done chan error) {
	agent, server := net.Pipe()
	up, done = make(chan struct{}), make(chan error, 1)
	go func() {
		done <- cu.c.run(ctx, pipeStream{agent}, func() { close(up) }, func(ctx context.Context) { <-ctx.Done() })
	}()
	return server, up, done
}

// expect reads frames from the server's end until one of type want, and
// returns it decoded into v, with the heartbeats read on the way.
func expect(t *testing.T, server net.Conn, want wire.Type, v any) (beats int) {
	t.Helper()
	for {
		typ, payload, err := wire.Read(server)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		if typ == want {
			if err := wire.Decode(typ, payload, v); err != nil {
				t.Fatal(err)
			}
			return beats
		}
		if typ != wire.TypeHeartbeat {
			t.Fatalf("waiting for %s, got %s", want, typ)
		}
		beats++
	}
}

func TestControlProtocol(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cu := newControlUnderTest()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cu.c.outbox.report(wire.AllocStatus{AllocID: "a1", ClientStatus: "running"})
		server, up, done := cu.session(ctx)

		var reg wire.Register
		expect(t, server, wire.TypeRegister, &reg)
		if !slices.Equal(reg.Versions, wire.Versions()) || reg.NodeID != "n1" {
			t.Fatalf("Register %+v: want the node with every version this build speaks", reg)
		}
		wire.Write(server, wire.TypeRegistered, wire.Registered{Version: wire.Version, NodeID: "n1", HeartbeatMillis: 1000, Servers: []string{"10.0.0.2:4702"}})
		<-up
		// What was reported before the session is sent once it is up.
		var st wire.AllocStatus
		expect(t, server, wire.TypeAllocStatus, &st)
		if st.AllocID != "a1" || !slices.Equal(cu.learned, []string{"10.0.0.2:4702"}) {
			t.Fatalf("first status %+v, learned servers %v", st, cu.learned)
		}

		// Heartbeats come every second of the fake clock.
		start := time.Now()
		var hb wire.Heartbeat
		for range 3 {
			expect(t, server, wire.TypeHeartbeat, &hb)
		}
		if el := time.Since(start); el != 3*time.Second {
			t.Fatalf("three heartbeats took %s, want 3s at the server's interval of 1s", el)
		}
		// A new interval: a beat at once, then at the new pace.
		wire.Write(server, wire.TypeHeartbeatInterval, wire.HeartbeatInterval{Millis: 2500})
		at := time.Now()
		expect(t, server, wire.TypeHeartbeat, &hb)
		expect(t, server, wire.TypeHeartbeat, &hb)
		if el := time.Since(at); el != 2500*time.Millisecond || cu.c.beatEvery.Load() != int64(2500*time.Millisecond) {
			t.Fatalf("after the retune the next beat came %s later (interval %s), want 2.5s", el, time.Duration(cu.c.beatEvery.Load()))
		}

		// Pushed allocation sets reach the allocation set.
		wire.Write(server, wire.TypeAllocs, wire.Allocs{Index: 7, Allocs: []wire.Alloc{{ID: "a2", DesiredStatus: "run"}}})
		if m := <-cu.allocs; m.Index != 7 || m.Allocs[0].ID != "a2" {
			t.Fatalf("allocs %+v", m)
		}
		// A status reported during the session is sent at once.
		cu.c.outbox.report(wire.AllocStatus{AllocID: "a2", ClientStatus: "pending"})
		if beats := expect(t, server, wire.TypeAllocStatus, &st); st.AllocID != "a2" || beats != 0 {
			t.Fatalf("status %+v after %d heartbeats, want a2 at once", st, beats)
		}

		// The server goes away; a new session sends every status again.
		server.Close()
		if err := <-done; err == nil {
			t.Fatal("the session ended without an error")
		}
		server, up, done = cu.session(ctx)
		expect(t, server, wire.TypeRegister, &reg)
		wire.Write(server, wire.TypeRegistered, wire.Registered{Version: wire.Version, NodeID: "n1", HeartbeatMillis: 1000})
		<-up
		var resent []string
		for range 2 {
			expect(t, server, wire.TypeAllocStatus, &st)
			resent = append(resent, st.AllocID)
		}
		if slices.Sort(resent); !slices.Equal(resent, []string{"a1", "a2"}) {
			t.Fatalf("re-sent after the reconnect: %v, want every status", resent)
		}
		// An Error frame ends the session with the server's reason.
		wire.Write(server, wire.TypeError, wire.Error{Message: "node drained and removed"})
		var r *wire.Refusal
		if err := <-done; !errors.As(err, &r) || r.Message != "node drained and removed" {
			t.Fatalf("session after an Error frame: %v", err)
		}
	})
}

// A server that shares no protocol version with the agent refuses it,
// naming both sides' versions: the session ends with an
// *incompatibleError saying so. So does a server that picks a version the
// agent did not offer.
func TestControlVersionRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cu := newControlUnderTest()
		ctx := context.Background()
		server, up, done := cu.session(ctx)
		var reg wire.Register
		expect(t, server, wire.TypeRegister, &reg)
		_, nerr := wire.Negotiate(reg.Versions, []int{wire.Version + 1})
		var vm *wire.VersionMismatch
		errors.As(nerr, &vm)
		wire.Write(server, wire.TypeError, wire.Error{Message: nerr.Error(), Versions: vm})
		err := <-done
		var inc *incompatibleError
		if !errors.As(err, &inc) || !strings.Contains(err.Error(), fmt.Sprintf("the agent speaks %d", wire.Version)) || !strings.Contains(err.Error(), fmt.Sprintf("the server speaks %d", wire.Version+1)) {
			t.Fatalf("refused session: %v, want an incompatibleError naming both sides' versions", err)
		}
		select {
		case <-up:
			t.Fatal("a refused session came up")
		default:
		}

		server, _, done = cu.session(ctx)
		expect(t, server, wire.TypeRegister, &reg)
		wire.Write(server, wire.TypeRegistered, wire.Registered{Version: wire.Version + 5, NodeID: "n1", HeartbeatMillis: 1000})
		if err := <-done; !errors.As(err, &inc) || !strings.Contains(err.Error(), "picked protocol version") {
			t.Fatalf("a server picking an unknown version: %v", err)
		}
	})
}

// The link gives up once every server refused the agent's protocol in a
// row, with the refusal; a refusal from some servers only is retried.
func TestLinkStopsWhenNoServerSpeaksTheProtocol(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLink(nil, identity{}, "", nil, []string{"s1", "s2"}, nil, testLoggerDiscard())
		refusal := &incompatibleError{errors.New("no common protocol version: the agent speaks 1, the server speaks 2")}
		var tried []string
		// Sessions never dial here: the link's session step is replaced.
		err := l.runWith(context.Background(), func(_ context.Context, server string) error {
			tried = append(tried, server)
			if len(tried) == 1 {
				return errors.New("link lost") // s1 once unreachable, then incompatible
			}
			return refusal
		}, func(time.Duration) {})
		if !errors.Is(err, refusal.err) || !slices.Equal(tried, []string{"s1", "s2", "s1"}) {
			t.Fatalf("run = %v after trying %v; want the refusal once s2 and s1 both refused in a row", err, tried)
		}
	})
}
