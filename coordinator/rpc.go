package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/strata-run/strata/coordinator/state"
)

// Server-to-server RPC: one request per connection on the Raft port
// (first byte muxRPC), a JSON rpcRequest, a JSON rpcResponse, and for
// "blob" and "logs" raw bytes after it. Each part registers the methods
// it answers (Server.New): the cluster "info", "join" and "remove-peer",
// Raft "apply", the failure detector "heartbeat", the log router "logs",
// the blob copier "blob".

type rpcRequest struct {
	Method string          `json:"Method"`
	From   *ServerInfo     `json:"From,omitempty"` // the caller, so servers learn each other
	Body   json.RawMessage `json:"Body,omitempty"`
}

type rpcResponse struct {
	Body  json.RawMessage `json:"Body,omitempty"`
	Error string          `json:"Error,omitempty"`
	Kind  string          `json:"Kind,omitempty"` // not-leader, module-exists, not-found, node-not-connected, node-unavailable
	Size  int64           `json:"Size,omitempty"` // "blob": raw bytes that follow
}

const rpcTimeout = 30 * time.Second

// rpcDialTimeout bounds opening a connection to another server. Servers
// share a LAN, where a connection opens in a millisecond; a peer that
// does not answer a SYN in 2 s is cut off, and a forwarded write or read
// index is refused (and retried by the client) instead of hanging.
const rpcDialTimeout = 2 * time.Second

// remoteError is an error returned by another server, keeping the
// sentinel it matched there.
type remoteError struct{ kind, msg string }

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	switch e.kind {
	case "module-exists":
		return target == ErrModuleExists
	case "not-found":
		return target == ErrNotFound
	case "node-not-connected":
		return target == errNodeNotConnected
	case "node-unavailable":
		return target == ErrNodeUnavailable
	case "index-mismatch":
		return target == state.ErrIndexMismatch || target == state.ErrRefused
	case "deployment-ended":
		return target == state.ErrDeploymentEnded || target == state.ErrRefused
	case "refused":
		return target == state.ErrRefused
	}
	return false
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, ErrNotLeader):
		var nl *NotLeaderError
		if errors.As(err, &nl) && nl.NotApplied {
			return "not-leader-not-applied"
		}
		return "not-leader"
	case errors.Is(err, ErrModuleExists):
		return "module-exists"
	case errors.Is(err, ErrNotFound):
		return "not-found"
	case errors.Is(err, errNodeNotConnected):
		return "node-not-connected"
	case errors.Is(err, ErrNodeUnavailable):
		return "node-unavailable"
	case errors.Is(err, state.ErrIndexMismatch):
		return "index-mismatch"
	case errors.Is(err, state.ErrDeploymentEnded):
		return "deployment-ended"
	case errors.Is(err, state.ErrRefused):
		return "refused"
	}
	return ""
}

// rpcMethod answers one request on c: it calls reply once with the
// answer, and may write raw bytes to c after it.
type rpcMethod func(c net.Conn, body json.RawMessage, reply func(any, error))

// unary is a method that answers with one value or an error.
func unary(f func(body json.RawMessage) (any, error)) rpcMethod {
	return func(_ net.Conn, body json.RawMessage, reply func(any, error)) { reply(f(body)) }
}

// rpcServer dispatches the RPC connections of the Raft port.
type rpcServer struct {
	// ready is closed once methods is complete: the Raft port opens
	// before the server is fully built.
	ready   chan struct{}
	methods map[string]rpcMethod
	learn   func(*ServerInfo) // told who every caller is
}

// serve answers one request on c.
func (r *rpcServer) serve(c net.Conn) {
	defer c.Close()
	select {
	case <-r.ready:
	case <-time.After(10 * time.Second):
		return
	}
	c.SetDeadline(time.Now().Add(rpcTimeout))
	var req rpcRequest
	if err := json.NewDecoder(io.LimitReader(c, maxJobSize)).Decode(&req); err != nil {
		return
	}
	if req.From != nil {
		r.learn(req.From)
	}
	enc := json.NewEncoder(c)
	reply := func(v any, err error) {
		resp := rpcResponse{}
		if err != nil {
			resp.Error, resp.Kind = err.Error(), errorKind(err)
		} else if v != nil {
			resp.Body, _ = json.Marshal(v)
		}
		enc.Encode(resp)
	}
	m, ok := r.methods[req.Method]
	if !ok {
		reply(nil, fmt.Errorf("unknown method %q", req.Method))
		return
	}
	m(c, req.Body, reply)
}

// rpcClient calls other servers' RPC methods.
type rpcClient struct {
	// self describes this server in every request (cluster.info), so
	// the callee learns of it. Set once the cluster part exists.
	self func() *ServerInfo
	// from is the IP connections leave from: the Raft port's (dialMux).
	from net.IP
}

// call sends one request to the server at addr (a Raft address).
func (r *rpcClient) call(ctx context.Context, addr, method string, body, out any) error {
	c, err := r.dial(ctx, addr, method, body)
	if err != nil {
		return err
	}
	defer c.Close()
	var resp rpcResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("server %s: %s: %w", addr, method, err)
	}
	if resp.Error != "" {
		switch resp.Kind {
		case "not-leader":
			return &NotLeaderError{}
		case "not-leader-not-applied":
			return &NotLeaderError{NotApplied: true}
		}
		return &remoteError{kind: resp.Kind, msg: resp.Error}
	}
	if out != nil && resp.Body != nil {
		return json.Unmarshal(resp.Body, out)
	}
	return nil
}

// dial sends a request and returns the connection, its answer unread.
func (r *rpcClient) dial(ctx context.Context, addr, method string, body any) (net.Conn, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	c, err := dialMux(r.from, addr, muxRPC, rpcDialTimeout)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", addr, err)
	}
	deadline := time.Now().Add(rpcTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	if err := json.NewEncoder(c).Encode(rpcRequest{Method: method, From: r.self(), Body: raw}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
