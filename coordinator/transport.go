package coordinator

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The Raft port carries three protocols, told apart by the first byte of
// each connection (as Consul does): Raft's own, the servers' RPC
// (forwarded writes, join, cluster info, module blobs), and HTTP API
// requests a server forwards to the leader with their token (consistent
// reads; writes when ACLs are on: see leaderProxy).
const (
	muxRaft byte = 'R'
	muxRPC  byte = 'C'
	muxHTTP byte = 'H'
)

// muxLayer is Raft's stream layer over a listener bound before Raft
// starts, so a ":0" address advertises the real port it got. Connections
// starting with muxRPC go to rpc instead of Raft.
type muxLayer struct {
	ln     net.Listener
	raft   chan net.Conn
	http   chan net.Conn // forwarded HTTP requests: httpListener
	rpc    func(net.Conn)
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func newMuxLayer(bind string, rpc func(net.Conn)) (*muxLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft listener on %s: %w", bind, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("coordinator: raft address %s must be a specific IP that other servers can reach", bind)
	}
	m := &muxLayer{ln: ln, raft: make(chan net.Conn), http: make(chan net.Conn), rpc: rpc, closed: make(chan struct{})}
	m.wg.Add(1)
	go m.serve()
	return m, nil
}

func (m *muxLayer) serve() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(c)
		}()
	}
}

func (m *muxLayer) route(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch b[0] {
	case muxRaft:
		select {
		case m.raft <- c:
		case <-m.closed:
			c.Close()
		}
	case muxRPC:
		m.rpc(c)
	case muxHTTP:
		select {
		case m.http <- c:
		case <-m.closed:
			c.Close()
		}
	default:
		c.Close() // not a Strata server
	}
}

// Accept returns the next Raft connection.
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raft:
		return c, nil
	case <-m.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections already routed to RPC finish on
// their own deadlines.
func (m *muxLayer) Close() error {
	m.once.Do(func() {
		close(m.closed)
		m.ln.Close()
	})
	return nil
}

// wait waits for the accept loop and the routing goroutines.
func (m *muxLayer) wait() { m.wg.Wait() }

func (m *muxLayer) Addr() net.Addr { return m.ln.Addr() }

// httpListener is a listener of the forwarded HTTP requests: the
// connections that start with muxHTTP. Closing it ends its Accept.
func (m *muxLayer) httpListener() net.Listener {
	return &muxHTTPListener{m: m, done: make(chan struct{})}
}

type muxHTTPListener struct {
	m    *muxLayer
	done chan struct{}
	once sync.Once
}

func (l *muxHTTPListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.http:
		return c, nil
	case <-l.m.closed:
		return nil, net.ErrClosed
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *muxHTTPListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *muxHTTPListener) Addr() net.Addr { return l.m.ln.Addr() }

// Dial opens a Raft connection to another server.
func (m *muxLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialMux(m.localIP(), string(addr), muxRaft, timeout)
}

// localIP is the IP the Raft port is bound to: every connection this
// server opens to another server's Raft port leaves from it.
func (m *muxLayer) localIP() net.IP {
	if tcp, ok := m.ln.Addr().(*net.TCPAddr); ok {
		return tcp.IP
	}
	return nil
}

// bindIP is the IP of a Raft bind address ("ip:port"), nil if it names
// none.
func bindIP(bind string) net.IP {
	host, _, err := net.SplitHostPort(bind)
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}

func dialMux(from net.IP, addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return dialMuxContext(ctx, from, addr, kind)
}

// dialMuxContext dials the Raft port at addr for protocol kind, from the
// IP this server's own Raft port is bound to (from; nil: any): servers
// see each other at their Raft addresses, and a firewall rule written
// for those addresses holds for every connection between them.
func dialMuxContext(ctx context.Context, from net.IP, addr string, kind byte) (net.Conn, error) {
	var d net.Dialer
	if from != nil && !from.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: from}
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func newRaftTransport(m *muxLayer) *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: m, MaxPool: 3, Timeout: 10 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "raft-net", Level: hclog.Warn}),
	})
}
