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

// AllocLogs opens a task's log on the agent that runs the allocation: on
// a new QUIC stream of the agent's connection when it is connected to this
// server, else through the server it is connected to (server RPC "logs"
// over the Raft port). The reader ends with the log (or, with Follow,
// when closed); closing it stops the agent's streaming. req.Task may be
// empty for an allocation of one task.
func (s *Server) AllocLogs(ctx context.Context, req structs.LogRequest) (io.ReadCloser, error) {
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
	if conn := s.agents.conn(al.NodeID); conn != nil {
		rc, err := s.agents.openLogs(ctx, conn, req)
		if err == nil || conn.Context().Err() == nil {
			return rc, err
		}
		// The connection ended just now: the agent may be on another
		// server already, or on none.
	}
	peers, err := s.RaftPeers()
	if err != nil {
		return nil, err
	}
	var unreachable []string
	for _, p := range peers {
		if p.Address == s.RaftAddr() {
			continue
		}
		rc, err := s.forwardLogs(ctx, p.Address, al.NodeID, req)
		switch {
		case err == nil:
			return rc, nil
		case errors.Is(err, errNodeNotConnected):
		case errors.As(err, new(*remoteError)):
			return nil, err // the agent's own answer, through that server
		default:
			unreachable = append(unreachable, p.Address)
		}
	}
	where := ""
	if len(unreachable) > 0 {
		where = fmt.Sprintf(" that answered (unreachable: %s)", strings.Join(unreachable, ", "))
	}
	return nil, fmt.Errorf("%w: node %s (%s) is not connected to any server%s", ErrNodeUnavailable, name, short8(al.NodeID), where)
}

// allocTask resolves the task a log read names; "" is the group's only task.
func (s *Server) allocTask(al *structs.Alloc, task string) (string, error) {
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

// conn returns the connection of a node's agent to this server, or nil.
func (a *agentEndpoint) conn(nodeID string) *quic.Conn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nodes[nodeID]
}

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

// openLogs opens a new stream on the agent's connection, sends req and
// reads the agent's LogHeader.
func (a *agentEndpoint) openLogs(ctx context.Context, conn *quic.Conn, req structs.LogRequest) (io.ReadCloser, error) {
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

// forwardLogs asks the server at addr (a Raft address) for a log of a
// node connected to it; the log's bytes follow its answer on the same
// connection, which the returned reader closes.
func (s *Server) forwardLogs(ctx context.Context, addr, nodeID string, req structs.LogRequest) (io.ReadCloser, error) {
	c, err := s.dialRPC(ctx, addr, "logs", logsRPC{NodeID: nodeID, Request: req})
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

// serveLogsRPC answers a forwarded log read: the log's bytes follow the
// response until the log ends, the caller closes the connection, or this
// server shuts down.
func (s *Server) serveLogsRPC(c net.Conn, body json.RawMessage, reply func(any, error)) {
	var lr logsRPC
	if err := json.Unmarshal(body, &lr); err != nil {
		reply(nil, badRequest{err})
		return
	}
	conn := s.agents.conn(lr.NodeID)
	if conn == nil {
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
	rc, err := s.agents.openLogs(ctx, conn, lr.Request)
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
