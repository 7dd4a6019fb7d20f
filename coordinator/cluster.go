package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
)

// Server-to-server RPC: one request per connection on the Raft port
// (first byte muxRPC), a JSON rpcRequest, a JSON rpcResponse, and for
// "blob" the module's raw bytes after it.

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

// ServerInfo is what servers tell each other about themselves.
type ServerInfo struct {
	ID        string `json:"ID"`
	RaftAddr  string `json:"RaftAddr"`
	HTTPAddr  string `json:"HTTPAddr,omitempty"`
	AgentAddr string `json:"AgentAddr,omitempty"` // as advertised to agents; "" if none
	// Bootstrapped: this server has Raft state (it is part of a cluster).
	Bootstrapped bool   `json:"Bootstrapped"`
	Leader       string `json:"Leader,omitempty"` // the leader's Raft address, if known
	// Known lists the Raft addresses of the other servers this one has
	// heard from, so servers find each other transitively.
	Known []string `json:"Known,omitempty"`
}

type applyRequest struct {
	Type    state.CmdType `json:"Type"`
	Payload []byte        `json:"Payload"` // a command's payload (binary for a plan)
}

type applyResponse struct {
	Result json.RawMessage `json:"Result,omitempty"`
	Index  uint64          `json:"Index"`
}

const rpcTimeout = 30 * time.Second

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
	}
	return false
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, ErrNotLeader):
		return "not-leader"
	case errors.Is(err, ErrModuleExists):
		return "module-exists"
	case errors.Is(err, ErrNotFound):
		return "not-found"
	case errors.Is(err, errNodeNotConnected):
		return "node-not-connected"
	case errors.Is(err, ErrNodeUnavailable):
		return "node-unavailable"
	}
	return ""
}

// info describes this server.
func (s *Server) info() *ServerInfo {
	si := &ServerInfo{
		ID: s.cfg.NodeID, RaftAddr: s.RaftAddr(), HTTPAddr: s.cfg.HTTPAddr, AgentAddr: s.AgentAdvertiseAddr(),
		Bootstrapped: s.bootstrapped(), Leader: s.Leader(),
	}
	for _, p := range s.Peers() {
		si.Known = append(si.Known, p.RaftAddr)
	}
	return si
}

func (s *Server) bootstrapped() bool {
	f := s.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// serveRPC answers one request on c.
func (s *Server) serveRPC(c net.Conn) {
	defer c.Close()
	// The Raft port opens before the server is fully built: hold requests
	// until it is.
	select {
	case <-s.ready:
	case <-time.After(10 * time.Second):
		return
	}
	c.SetDeadline(time.Now().Add(rpcTimeout))
	var req rpcRequest
	if err := json.NewDecoder(io.LimitReader(c, maxJobSize)).Decode(&req); err != nil {
		return
	}
	if req.From != nil {
		s.learn(req.From)
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
	switch req.Method {
	case "info":
		reply(s.info(), nil)
	case "join":
		var from ServerInfo
		if err := json.Unmarshal(req.Body, &from); err != nil {
			reply(nil, err)
			return
		}
		reply(nil, s.addVoter(&from))
	case "heartbeat":
		var nodeID string
		json.Unmarshal(req.Body, &nodeID)
		if !s.IsLeader() {
			reply(nil, &NotLeaderError{Leader: s.Leader()})
			return
		}
		reply(nil, s.heartbeat(context.Background(), nodeID))
	case "remove-peer":
		var id string
		json.Unmarshal(req.Body, &id)
		reply(nil, s.RemovePeer(id))
	case "apply":
		var ar applyRequest
		if err := json.Unmarshal(req.Body, &ar); err != nil {
			reply(nil, err)
			return
		}
		if !s.IsLeader() {
			reply(nil, &NotLeaderError{Leader: s.Leader()}) // no second hop
			return
		}
		res, idx, err := s.propose(append([]byte{byte(ar.Type)}, ar.Payload...))()
		if err != nil {
			reply(nil, err)
			return
		}
		out := applyResponse{Index: idx}
		if res != nil {
			out.Result, _ = json.Marshal(res)
		}
		reply(out, nil)
	case "logs":
		s.serveLogsRPC(c, req.Body, reply)
	case "blob":
		var digest string
		json.Unmarshal(req.Body, &digest)
		f, size, err := s.blobs.Open(digest)
		if err != nil {
			reply(nil, err)
			return
		}
		defer f.Close()
		enc.Encode(rpcResponse{Size: size})
		io.Copy(c, f)
	default:
		reply(nil, fmt.Errorf("unknown method %q", req.Method))
	}
}

// call sends one request to the server at addr (a Raft address).
func (s *Server) call(ctx context.Context, addr, method string, body, out any) error {
	c, err := s.dialRPC(ctx, addr, method, body)
	if err != nil {
		return err
	}
	defer c.Close()
	var resp rpcResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("server %s: %s: %w", addr, method, err)
	}
	if resp.Error != "" {
		if resp.Kind == "not-leader" {
			return &NotLeaderError{}
		}
		return &remoteError{kind: resp.Kind, msg: resp.Error}
	}
	if out != nil && resp.Body != nil {
		return json.Unmarshal(resp.Body, out)
	}
	return nil
}

func (s *Server) dialRPC(ctx context.Context, addr, method string, body any) (net.Conn, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	c, err := dialMux(addr, muxRPC, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", addr, err)
	}
	deadline := time.Now().Add(rpcTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	if err := json.NewEncoder(c).Encode(rpcRequest{Method: method, From: s.info(), Body: raw}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// forwardApply sends an encoded write (state.Encode) to the leader and
// waits until this server has applied it too, so the caller reads its own
// write here.
func (s *Server) forwardApply(data []byte) (any, uint64, error) {
	leader := s.Leader()
	if leader == "" {
		return nil, 0, &NotLeaderError{}
	}
	t := state.CmdType(data[0])
	var out applyResponse
	err := s.call(context.Background(), leader, "apply", applyRequest{Type: t, Payload: data[1:]}, &out)
	var remote *remoteError
	if errors.As(err, &remote) {
		return nil, 0, err // the leader refused the write itself
	}
	if err != nil {
		// Not the leader any more, or unreachable: the write was not taken.
		if errors.Is(err, ErrNotLeader) {
			err = errors.New("it is no longer the leader")
		}
		return nil, 0, &NotLeaderError{Leader: leader, Cause: err}
	}
	var res any
	if t == state.CmdJobRegister && out.Result != nil {
		var r state.JobRegisterResult
		if err := json.Unmarshal(out.Result, &r); err != nil {
			return nil, 0, err
		}
		res = &r
	}
	s.waitIndex(out.Index, 10*time.Second)
	return res, out.Index, nil
}

// waitIndex waits until the local state has applied index (bounded).
func (s *Server) waitIndex(index uint64, max time.Duration) {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	for {
		ch := s.store.Watch()
		if s.store.Index() >= index {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		}
	}
}

// learn records another server's info (from its requests and answers).
func (s *Server) learn(si *ServerInfo) {
	if si == nil || si.ID == "" || si.ID == s.cfg.NodeID {
		return
	}
	s.peersMu.Lock()
	s.peers[si.ID] = si
	s.peersMu.Unlock()
}

// Peers returns what this server knows of the others.
func (s *Server) Peers() []*ServerInfo {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	out := make([]*ServerInfo, 0, len(s.peers))
	for _, p := range s.peers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// addVoter adds a server to the cluster, on the leader (forwarded there
// from a follower).
func (s *Server) addVoter(si *ServerInfo) error {
	if !s.IsLeader() {
		leader := s.Leader()
		if leader == "" {
			return &NotLeaderError{}
		}
		return s.call(context.Background(), leader, "join", si, nil)
	}
	if err := s.raft.AddVoter(raft.ServerID(si.ID), raft.ServerAddress(si.RaftAddr), 0, 10*time.Second).Error(); err != nil {
		return fmt.Errorf("coordinator: add server %s at %s: %w", si.ID, si.RaftAddr, err)
	}
	s.log.Info("server joined", "id", si.ID, "raft", si.RaftAddr)
	return nil
}

// RemovePeer removes a server from the Raft configuration (on the leader).
func (s *Server) RemovePeer(id string) error {
	if !s.IsLeader() {
		leader := s.Leader()
		if leader == "" {
			return &NotLeaderError{}
		}
		return s.call(context.Background(), leader, "remove-peer", id, nil)
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id || string(srv.Address) == id {
			return s.raft.RemoveServer(srv.ID, 0, 10*time.Second).Error()
		}
	}
	return fmt.Errorf("server %q: %w (see `strata operator raft list-peers`)", id, ErrNotFound)
}

// RaftPeers lists the Raft configuration as this server knows it.
func (s *Server) RaftPeers() ([]structs.Peer, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	leader := s.Leader()
	var out []structs.Peer
	for _, srv := range f.Configuration().Servers {
		out = append(out, structs.Peer{ID: string(srv.ID), Address: string(srv.Address),
			Voter: srv.Suffrage == raft.Voter, Leader: string(srv.Address) == leader})
	}
	return out, nil
}

// joinLoop runs until this server is part of a cluster: it asks the
// -join addresses (and every server they tell of) who they are; if one is
// already in a cluster it asks to be added; otherwise, once
// BootstrapExpect servers know of each other, the one with the lowest ID
// bootstraps the cluster with all of them.
func (s *Server) joinLoop(ctx context.Context) {
	if len(s.cfg.Join) == 0 && s.cfg.BootstrapExpect <= 1 {
		return
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.bootstrapped() {
			return
		}
		if done := s.tryJoin(ctx); done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Server) tryJoin(ctx context.Context) bool {
	addrs := map[string]bool{}
	for _, a := range s.cfg.Join {
		addrs[a] = true
	}
	for _, p := range s.Peers() {
		addrs[p.RaftAddr] = true
		for _, k := range p.Known {
			addrs[k] = true
		}
	}
	delete(addrs, s.RaftAddr())
	var mu sync.Mutex
	var inCluster []*ServerInfo
	var wg sync.WaitGroup
	for a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var si ServerInfo
			if err := s.call(cctx, a, "info", nil, &si); err != nil {
				return
			}
			s.learn(&si)
			if si.Bootstrapped {
				mu.Lock()
				inCluster = append(inCluster, &si)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, si := range inCluster {
		if err := s.call(ctx, si.RaftAddr, "join", s.info(), nil); err == nil {
			s.log.Info("joined the cluster", "via", si.RaftAddr)
			return true
		} else {
			s.log.Debug("join attempt", "via", si.RaftAddr, "err", err)
		}
	}
	if len(inCluster) > 0 || s.cfg.BootstrapExpect <= 1 {
		return false
	}
	all := append([]*ServerInfo{s.info()}, s.Peers()...)
	if len(all) < s.cfg.BootstrapExpect {
		return false
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	all = all[:s.cfg.BootstrapExpect]
	if all[0].ID != s.cfg.NodeID {
		return false // the lowest ID bootstraps; we will be added
	}
	var conf raft.Configuration
	for _, si := range all {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(si.ID), Address: raft.ServerAddress(si.RaftAddr)})
	}
	if err := s.raft.BootstrapCluster(conf).Error(); err != nil {
		s.log.Warn("bootstrap", "err", err)
		return false
	}
	s.log.Info("bootstrapped the cluster", "servers", len(conf.Servers))
	return true
}

// fetchBlobFromPeers copies a module blob this server lacks from another
// server (the one that received the push).
func (s *Server) fetchBlobFromPeers(ctx context.Context, digest string) error {
	peers, err := s.RaftPeers()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range peers {
		if p.Address == s.RaftAddr() {
			continue
		}
		if err := s.fetchBlob(ctx, p.Address, digest); err != nil {
			errs = append(errs, err)
			continue
		}
		return nil
	}
	return fmt.Errorf("module %s is on no reachable server: %w", digest, errors.Join(errs...))
}

func (s *Server) fetchBlob(ctx context.Context, addr, digest string) error {
	c, err := s.dialRPC(ctx, addr, "blob", digest)
	if err != nil {
		return err
	}
	defer c.Close()
	dec := json.NewDecoder(c)
	var resp rpcResponse
	if err := dec.Decode(&resp); err != nil {
		return err
	}
	if resp.Error != "" {
		return fmt.Errorf("server %s: %s", addr, resp.Error)
	}
	if resp.Size < 0 || resp.Size > MaxModuleSize {
		return fmt.Errorf("server %s: module size %d out of range", addr, resp.Size)
	}
	// json.Encoder ends the header with a newline, which the decoder
	// leaves unread: the module's bytes start after it.
	r := io.MultiReader(dec.Buffered(), c)
	var nl [1]byte
	if _, err := io.ReadFull(r, nl[:]); err != nil || nl[0] != '\n' {
		return fmt.Errorf("server %s: module %s: no newline after the header (%q, %v)", addr, digest, nl[0], err)
	}
	b := make([]byte, resp.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("server %s: module %s: %w", addr, digest, err)
	}
	if got := Digest(b); got != digest {
		return fmt.Errorf("server %s sent bytes hashing to %s for %s", addr, got, digest)
	}
	_, err = s.blobs.Put(b)
	return err
}
