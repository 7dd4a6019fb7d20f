package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/sched"
)

// ErrNodeUnavailable: the node holding an allocation is down or not
// connected to any server, so nothing can be read from it.
var ErrNodeUnavailable = errors.New("node unavailable")

// errNodeNotConnected is a server's answer to a forwarded log read for a
// node that is not connected to it: the caller asks the next server.
var errNodeNotConnected = errors.New("coordinator: node not connected to this server")

// agentError is a refusal the agent sent (no such log, bad request).
type agentError struct{ msg string }

func (e *agentError) Error() string        { return e.msg }
func (e *agentError) Is(target error) bool { return target == ErrNotFound }

// logRouter opens a task's log on the agent that runs the allocation: on
// a new QUIC stream of the agent's connection when it is connected to
// this server, else through the server it is connected to (server RPC
// "logs" over the Raft port).
type logRouter struct {
	store  *state.Store
	agents agentLogs
	rpc    *rpcClient
	others func() ([]string, error) // the other servers' Raft addresses
	life   context.Context          // ends at Shutdown: forwarded reads stop
}

// agentLogs opens logs on the agents connected to this server
// (agentEndpoint).
type agentLogs interface {
	connected(nodeID string) bool
	// openLogs returns errNodeNotConnected if the node's agent is not
	// (or no longer) connected here.
	openLogs(ctx context.Context, nodeID string, req structs.LogRequest) (io.ReadCloser, error)
}

// open opens the log req names. The reader ends with the log (or, with
// Follow, when closed); closing it stops the agent's streaming. req.Task
// may be empty for an allocation of one task.
func (s *logRouter) open(ctx context.Context, req structs.LogRequest) (io.ReadCloser, error) {
	if req.Type == "" {
		req.Type = "stdout"
	}
	if req.Type != "stdout" && req.Type != "stderr" {
		return nil, badRequest{fmt.Errorf("log type %q: want stdout or stderr", req.Type)}
	}
	al, err := s.store.Alloc(req.AllocID)
	if err != nil {
		return nil, err
	}
	if al == nil {
		return nil, fmt.Errorf("allocation %q: %w", req.AllocID, ErrNotFound)
	}
	if req.Task, err = s.allocTask(al, req.Task); err != nil {
		return nil, err
	}
	node, err := s.store.Node(al.NodeID)
	if err != nil {
		return nil, err
	}
	name := al.NodeName
	if node != nil && node.Status == sched.NodeDown {
		return nil, fmt.Errorf("%w: node %s (%s) is down; its logs can be read once it reconnects", ErrNodeUnavailable, name, short8(al.NodeID))
	}
	rc, err := s.agents.openLogs(ctx, al.NodeID, req)
	if !errors.Is(err, errNodeNotConnected) {
		return rc, err
	}
	// Not connected here (or the connection ended just now): the agent
	// may be on another server, or on none.
	peers, err := s.others()
	if err != nil {
		return nil, err
	}
	var unreachable []string
	for _, addr := range peers {
		rc, err := s.forward(ctx, addr, al.NodeID, req)
		switch {
		case err == nil:
			return rc, nil
		case errors.Is(err, errNodeNotConnected):
		case errors.As(err, new(*remoteError)):
			return nil, err // the agent's own answer, through that server
		default:
			unreachable = append(unreachable, addr)
		}
	}
	where := ""
	if len(unreachable) > 0 {
		where = fmt.Sprintf(" that answered (unreachable: %s)", strings.Join(unreachable, ", "))
	}
	return nil, fmt.Errorf("%w: node %s (%s) is not connected to any server%s", ErrNodeUnavailable, name, short8(al.NodeID), where)
}

// allocTask resolves the task a log read names; "" is the group's only task.
func (s *logRouter) allocTask(al *structs.Alloc, task string) (string, error) {
	job, err := s.store.JobVersion(al.JobID, al.JobVersion)
	if err != nil {
		return "", err
	}
	var names []string
	if job != nil {
		if g := job.Lookup(al.Group); g != nil {
			for _, t := range g.Tasks {
				names = append(names, t.Name)
			}
		}
	}
	switch {
	case task == "" && len(names) == 1:
		return names[0], nil
	case task == "":
		return "", badRequest{fmt.Errorf("allocation %s has tasks %s: name one", short8(al.ID), strings.Join(names, ", "))}
	case !slices.Contains(names, task):
		return "", fmt.Errorf("allocation %s has no task %q (its tasks: %s): %w", short8(al.ID), task, strings.Join(names, ", "), ErrNotFound)
	}
	return task, nil
}

func short8(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// connected reports whether a node's agent is connected to this server.
func (a *agentEndpoint) connected(nodeID string) bool { return a.conn(nodeID) != nil }

// logStream is a log being read from an agent's stream.
type logStream struct{ st *quic.Stream }

func (l *logStream) Read(p []byte) (int, error) { return l.st.Read(p) }

// Close resets both sides: the agent's reader sees it and stops streaming.
func (l *logStream) Close() error {
	l.st.CancelRead(0)
	l.st.CancelWrite(0)
	return nil
}

// logHeaderTimeout bounds the wait for the agent's LogHeader.
const logHeaderTimeout = 30 * time.Second

// openLogs opens a new stream on the connection of a node's agent, sends
// req and reads the agent's LogHeader.
func (a *agentEndpoint) openLogs(ctx context.Context, nodeID string, req structs.LogRequest) (io.ReadCloser, error) {
	conn := a.conn(nodeID)
	if conn == nil {
		return nil, errNodeNotConnected
	}
	rc, err := openLogStream(ctx, conn, req)
	if err != nil && ctx.Err() == nil && conn.Context().Err() != nil {
		return nil, errNodeNotConnected // the connection ended just now
	}
	return rc, err
}

func openLogStream(ctx context.Context, conn *quic.Conn, req structs.LogRequest) (io.ReadCloser, error) {
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: opening a log stream to the agent: %v", ErrNodeUnavailable, err)
	}
	ls := &logStream{st: st}
	stop := context.AfterFunc(ctx, func() { ls.Close() })
	defer stop()
	if err := wire.Write(st, wire.TypeLogRequest, req); err != nil {
		ls.Close()
		return nil, fmt.Errorf("%w: sending the log request: %v", ErrNodeUnavailable, err)
	}
	st.SetReadDeadline(time.Now().Add(logHeaderTimeout))
	t, payload, err := wire.Read(st)
	if err == nil && t != wire.TypeLogHeader {
		err = fmt.Errorf("expected LogHeader, got %s", t)
	}
	var hdr wire.LogHeader
	if err == nil {
		err = wire.Decode(t, payload, &hdr)
	}
	if err != nil {
		ls.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: reading the agent's log header: %v", ErrNodeUnavailable, err)
	}
	if hdr.Error != "" {
		ls.Close()
		return nil, &agentError{msg: hdr.Error}
	}
	st.SetReadDeadline(time.Time{})
	return ls, nil
}

// logsRPC is the body of the server RPC "logs".
type logsRPC struct {
	NodeID  string             `json:"NodeID"`
	Request structs.LogRequest `json:"Request"`
}

// forward asks the server at addr (a Raft address) for a log of a node
// connected to it; the log's bytes follow its answer on the same
// connection, which the returned reader closes.
func (s *logRouter) forward(ctx context.Context, addr, nodeID string, req structs.LogRequest) (io.ReadCloser, error) {
	c, err := s.rpc.dial(ctx, addr, "logs", logsRPC{NodeID: nodeID, Request: req})
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	dec := json.NewDecoder(c)
	var resp rpcResponse
	if err := dec.Decode(&resp); err != nil {
		c.Close()
		return nil, fmt.Errorf("server %s: logs: %w", addr, err)
	}
	if resp.Error != "" {
		c.Close()
		return nil, &remoteError{kind: resp.Kind, msg: resp.Error}
	}
	c.SetDeadline(time.Time{})
	return &rpcStream{Reader: io.MultiReader(dec.Buffered(), c), c: c}, nil
}

type rpcStream struct {
	io.Reader
	c net.Conn
}

func (r *rpcStream) Close() error { return r.c.Close() }

// serveRPC is the server RPC "logs", a forwarded log read: the log's
// bytes follow the response until the log ends, the caller closes the
// connection, or this server shuts down.
func (s *logRouter) serveRPC(c net.Conn, body json.RawMessage, reply func(any, error)) {
	var lr logsRPC
	if err := json.Unmarshal(body, &lr); err != nil {
		reply(nil, badRequest{err})
		return
	}
	if !s.agents.connected(lr.NodeID) {
		reply(nil, errNodeNotConnected)
		return
	}
	c.SetReadDeadline(time.Time{}) // the watcher below reads for as long as the log streams
	ctx, cancel := context.WithCancel(s.life)
	defer cancel()
	watched := make(chan struct{})
	go func() {
		// The caller sends nothing more: a read returns when it closes.
		defer close(watched)
		defer cancel()
		c.Read(make([]byte, 1))
	}()
	defer func() {
		c.Close()
		<-watched
	}()
	rc, err := s.agents.openLogs(ctx, lr.NodeID, lr.Request)
	if err != nil {
		reply(nil, err)
		return
	}
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()
	defer rc.Close()
	// The answer without reply's trailing newline: the log's bytes follow
	// the JSON object at once.
	ok, _ := json.Marshal(rpcResponse{})
	if _, err := c.Write(ok); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	io.Copy(c, rc)
}
