package wasmhost

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// listenerRun is a RunListener in the background.
type listenerRun struct {
	cancel    context.CancelFunc
	done      chan error
	listening chan struct{}
}

func startListener(t *testing.T, h *Host, m *Module, cfg ListenerConfig) *listenerRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	run := &listenerRun{cancel: cancel, done: make(chan error, 1), listening: make(chan struct{})}
	cfg.OnListening = func() { close(run.listening) }
	go func() { run.done <- h.RunListener(ctx, m, cfg) }()
	t.Cleanup(func() { run.stop() })
	return run
}

// waitListening waits until the listener is open, or the run ended.
func (r *listenerRun) waitListening(t *testing.T) {
	t.Helper()
	select {
	case <-r.listening:
	case err := <-r.done:
		r.done <- err
		select {
		case <-r.listening: // it listened, and already ended
		default:
			t.Fatalf("RunListener ended before listening: %v", err)
		}
	}
}

// stop stops the instance and returns RunListener's result.
func (r *listenerRun) stop() error {
	r.cancel()
	err, ok := <-r.done
	if ok {
		close(r.done)
	}
	return err
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServerExample runs examples/server in listener mode: it serves its
// pre-opened listener over real TCP, keeps serving across requests, and once
// stopped has freed its port for the next instance.
func TestServerExample(t *testing.T) {
	h, m := sharedGoModule(t, serverPkg)
	addr := freeAddr(t)
	var stderr bytes.Buffer
	run := startListener(t, h, m, ListenerConfig{Name: "server", Addr: addr, Stderr: &lockedWriter{w: &stderr}, Limits: Limits{MaxMemory: 128 << 20}})
	run.waitListening(t)
	for _, path := range []string{"/x", "/healthz", "/a/b"} {
		code, body := get(t, "http://"+addr+path)
		want := "hello from " + path + "\n"
		if path == "/healthz" {
			want = "ok\n"
		}
		if code != http.StatusOK || body != want {
			t.Fatalf("GET %s: %d %q, want 200 %q", path, code, body, want)
		}
	}
	if err := run.stop(); err != nil {
		t.Fatalf("stopped listener returned %v, want nil", err)
	}

	// The port is free: the next instance gets it.
	run = startListener(t, h, m, ListenerConfig{Name: "server", Addr: addr})
	run.waitListening(t)
	if code, body := get(t, "http://"+addr+"/again"); code != http.StatusOK || body != "hello from /again\n" {
		t.Fatalf("second instance: %d %q", code, body)
	}
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still taken after the instance stopped: %v", err)
	}
	ln.Close()
}

func TestListenerPortTaken(t *testing.T) {
	h := newHost(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = h.RunListener(context.Background(), mustCompile(t, h, pollModule(pollSub{fd: 3})), ListenerConfig{Addr: ln.Addr().String()})
	var exit *ExitError
	if err == nil || errors.As(err, &exit) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("RunListener on a taken port = %v, want an address-in-use error", err)
	}
}

// A listener that exits is a failure, whatever its code: a server is not
// meant to end.
func TestListenerExit(t *testing.T) {
	h := newHost(t)
	for _, mod := range [][]byte{okModule, exit7Module, trapModule} {
		err := h.RunListener(context.Background(), mustCompile(t, h, mod), ListenerConfig{Addr: freeAddr(t)})
		var exit *ExitError
		if !errors.As(err, &exit) {
			t.Errorf("RunListener = %v, want an ExitError", err)
		}
	}
}

// pollResult runs a pollModule in listener mode; connect says whether to
// connect to the listener first (it then expects "hi" back). It returns the
// events the module saw.
func pollResult(t *testing.T, connect bool, subs ...pollSub) []pollEventOut {
	t.Helper()
	h := newHost(t)
	var stdout bytes.Buffer
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	listening := make(chan struct{})
	go func() {
		done <- h.RunListener(ctx, mustCompile(t, h, pollModule(subs...)), ListenerConfig{
			Addr: addr, Stdout: &stdout, OnListening: func() { close(listening) },
		})
	}()
	select {
	case <-listening:
	case err := <-done:
		select {
		case <-listening: // it listened, and already ended
			done <- err
		default:
			t.Fatalf("RunListener: %v", err)
		}
	}
	if connect {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, _ := io.ReadAll(io.LimitReader(c, 2))
		if string(b) != "hi" {
			t.Errorf("read %q from the module's connection, want hi", b)
		}
	}
	var exit *ExitError
	if err := <-done; !errors.As(err, &exit) || exit.Kind != ExitCode || exit.Code != 0 {
		t.Fatalf("RunListener = %v, want the module's exit", err)
	}
	out := stdout.Bytes()
	if len(out) < 4 {
		t.Fatalf("module wrote %d bytes", len(out))
	}
	n := binary.LittleEndian.Uint32(out)
	var events []pollEventOut
	for i := range n {
		e := out[4+32*i:]
		events = append(events, pollEventOut{userdata: binary.LittleEndian.Uint64(e), errno: binary.LittleEndian.Uint16(e[8:]), typ: e[10]})
	}
	return events
}

type pollEventOut struct {
	userdata uint64 // 100 + index of the subscription
	errno    uint16
	typ      byte
}

// poll_oneoff waits for sockets for real: a listener without a client is not
// ready (wazero's own poll_oneoff says it is, and an idle Go server spins),
// one with a client is, at once; a closed fd is an EBADF event.
func TestPollOneoffSockets(t *testing.T) {
	t.Run("no client: the clock fires, the socket is not ready", func(t *testing.T) {
		got := pollResult(t, false, pollSub{fd: 3}, pollSub{fd: -1, timeout: 20 * time.Millisecond})
		if len(got) != 1 || got[0] != (pollEventOut{userdata: 101, typ: eventTypeClock}) {
			t.Fatalf("events %+v, want only the clock", got)
		}
	})
	t.Run("a client: the socket is ready before the clock", func(t *testing.T) {
		got := pollResult(t, true, pollSub{fd: 3}, pollSub{fd: -1, timeout: time.Hour})
		if len(got) != 1 || got[0] != (pollEventOut{userdata: 100, typ: eventTypeFdRead}) {
			t.Fatalf("events %+v, want only the listener's read", got)
		}
	})
	t.Run("no clock: waits for the client", func(t *testing.T) {
		got := pollResult(t, true, pollSub{fd: 3})
		if len(got) != 1 || got[0] != (pollEventOut{userdata: 100, typ: eventTypeFdRead}) {
			t.Fatalf("events %+v, want the listener's read", got)
		}
	})
	t.Run("a closed fd", func(t *testing.T) {
		got := pollResult(t, false, pollSub{fd: 9}, pollSub{fd: -1, timeout: time.Hour})
		if len(got) != 1 || got[0] != (pollEventOut{userdata: 100, errno: uint16(errnoBadf), typ: eventTypeFdRead}) {
			t.Fatalf("events %+v, want EBADF on fd 9", got)
		}
	})
}

// Stopping a listener blocked in poll_oneoff with no timeout ends it: the
// context wakes the poll.
func TestListenerStopWhilePolling(t *testing.T) {
	h := newHost(t)
	run := startListener(t, h, mustCompile(t, h, pollModule(pollSub{fd: 3})), ListenerConfig{Addr: freeAddr(t)})
	run.waitListening(t)
	if err := run.stop(); err != nil {
		t.Fatalf("RunListener after stop = %v, want nil", err)
	}
}

// A module blocked in a blocking accept does not see its context end: after
// the grace period its sockets are closed under it, and the port is free.
func TestListenerStopBlockingAccept(t *testing.T) {
	h := newHost(t)
	h.stopGrace = 10 * time.Millisecond
	addr := freeAddr(t)
	run := startListener(t, h, mustCompile(t, h, acceptModule), ListenerConfig{Addr: addr})
	run.waitListening(t)
	if err := run.stop(); err != nil {
		t.Fatalf("RunListener after stop = %v, want nil", err)
	}
	// RunListener returns once the instance has, and by then its listener
	// is closed: the port is free at once, not some time later.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still taken once RunListener returned: %v", err)
	}
	ln.Close()
}

// Connections are really closed: when the module closes one (wazero alone
// leaves the host socket open until garbage collection), and when the
// instance stops with connections open. A module blocked in a blocking read
// is stopped by closing its sockets under it after the grace period.
func TestListenerClosesConnections(t *testing.T) {
	for _, tc := range []struct {
		name            string
		closeConn, read bool
	}{
		{"closed by the module", true, false},
		{"left open at stop", false, false},
		{"blocked reading at stop", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			h.stopGrace = 10 * time.Millisecond
			addr := freeAddr(t)
			run := startListener(t, h, mustCompile(t, h, connModule(tc.closeConn, tc.read)), ListenerConfig{Addr: addr})
			run.waitListening(t)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			hi := make([]byte, 2)
			if _, err := io.ReadFull(c, hi); err != nil || string(hi) != "hi" {
				t.Fatalf("read %q, %v; want hi", hi, err)
			}
			if !tc.closeConn {
				if err := run.stop(); err != nil {
					t.Fatalf("RunListener after stop = %v", err)
				}
			}
			// EOF, not a hang, once the connection is closed.
			if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
				t.Fatalf("after hi: %q, %v; want EOF", rest, err)
			}
		})
	}
}
