package coordinator

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStreamLayer is Raft's TCP stream layer over a listener bound before
// Raft starts, so a ":0" address advertises the real port it got.
type tcpStreamLayer struct {
	net.Listener
}

func (t *tcpStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

func newRaftTransport(bind string) (*raft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("coordinator: raft listener on %s: %w", bind, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("coordinator: raft address %s must be a specific IP that other servers can reach", bind)
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &tcpStreamLayer{ln}, MaxPool: 3, Timeout: 10 * time.Second,
	}), nil
}
