package netfault

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// Relay forwards UDP datagrams between one client and one server. The
// client sends to Addr(); the relay sends them on to the server from its
// own upstream socket and relays the answers back to the client's last
// address.
type Relay struct {
	front *net.UDPConn

	mu      sync.Mutex
	server  *net.UDPAddr // nil until SetServer when NewRelay had none
	up      *net.UDPConn // current upstream socket
	client  *net.UDPAddr // last address the client sent from
	closed  bool
	cut     atomic.Bool
	wg      sync.WaitGroup
	dropped atomic.Int64
}

// NewRelay listens on listen (e.g. "127.0.0.1:0") and relays to server.
// server may be "" and set later with SetServer (when the server must be
// told the relay's address before it starts); until then datagrams from
// the client are dropped.
func NewRelay(listen, server string) (*Relay, error) {
	la, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, err
	}
	front, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, err
	}
	r := &Relay{front: front}
	if server != "" {
		if err := r.SetServer(server); err != nil {
			front.Close()
			return nil, err
		}
	}
	if err := r.Rebind(); err != nil {
		front.Close()
		return nil, err
	}
	r.wg.Add(1)
	go r.forwardUp()
	return r, nil
}

// SetServer sets where the relay forwards to.
func (r *Relay) SetServer(server string) error {
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.server = sa
	r.mu.Unlock()
	return nil
}

// Addr is where the client should send.
func (r *Relay) Addr() string { return r.front.LocalAddr().String() }

// Cut drops every datagram in both directions until Heal.
func (r *Relay) Cut() { r.cut.Store(true) }

// Heal ends a Cut.
func (r *Relay) Heal() { r.cut.Store(false) }

// Dropped counts the datagrams dropped while cut.
func (r *Relay) Dropped() int64 { return r.dropped.Load() }

// Rebind moves the relay's upstream to a new socket, so the server sees
// the client arrive from a new address, as after a NAT rebinding or a
// change of network. The old socket is closed: whatever the server still
// sends to the old address is lost, as with an expired NAT mapping.
func (r *Relay) Rebind() error {
	up, err := net.ListenUDP("udp", &net.UDPAddr{IP: r.front.LocalAddr().(*net.UDPAddr).IP})
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		up.Close()
		return errors.New("netfault: relay closed")
	}
	if r.up != nil {
		r.up.Close() // its forwardDown returns
	}
	r.up = up
	r.wg.Add(1)
	go r.forwardDown(up)
	return nil
}

// UpstreamAddr is the address the server currently sees the client at.
func (r *Relay) UpstreamAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up.LocalAddr().String()
}

// Close stops the relay and waits for its goroutines.
func (r *Relay) Close() {
	r.mu.Lock()
	r.closed = true
	r.front.Close()
	r.up.Close()
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *Relay) forwardUp() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.cut.Load() {
			r.dropped.Add(1)
			continue
		}
		r.mu.Lock()
		r.client = from
		up, server := r.up, r.server
		r.mu.Unlock()
		if server != nil {
			up.WriteToUDP(buf[:n], server)
		}
	}
}

func (r *Relay) forwardDown(up *net.UDPConn) {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, _, err := up.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.cut.Load() {
			r.dropped.Add(1)
			continue
		}
		r.mu.Lock()
		client := r.client
		r.mu.Unlock()
		if client != nil {
			r.front.WriteToUDP(buf[:n], client)
		}
	}
}
