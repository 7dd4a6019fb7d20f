package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

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
	// AppliedIndex is the state index this server has applied.
	AppliedIndex uint64 `json:"AppliedIndex,omitempty"`
}

// cluster is the servers' membership: what this server knows of the
// others (learned from every RPC in either direction), the join loop
// that finds a cluster or bootstraps one, and adding and removing
// voters (on the leader; a follower forwards).
type cluster struct {
	id        string
	httpAddr  string
	agentAddr string // this server's agent endpoint as advertised; "" if none
	join      []string
	expect    int // BootstrapExpect
	node      *raftNode
	rpc       *rpcClient
	log       *slog.Logger

	mu    sync.Mutex
	peers map[string]*ServerInfo // other servers we heard from, by ID
}

// info describes this server.
func (c *cluster) info() *ServerInfo {
	si := &ServerInfo{
		ID: c.id, RaftAddr: c.node.addr(), HTTPAddr: c.httpAddr, AgentAddr: c.agentAddr,
		Bootstrapped: c.node.bootstrapped(), Leader: c.node.leader(), AppliedIndex: c.node.store.Index(),
	}
	for _, p := range c.known() {
		si.Known = append(si.Known, p.RaftAddr)
	}
	return si
}

// learn records another server's info (from its requests and answers).
func (c *cluster) learn(si *ServerInfo) {
	if si == nil || si.ID == "" || si.ID == c.id {
		return
	}
	c.mu.Lock()
	c.peers[si.ID] = si
	c.mu.Unlock()
}

// known returns what this server knows of the others, by ID.
func (c *cluster) known() []*ServerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*ServerInfo, 0, len(c.peers))
	for _, p := range c.peers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// agentServers are the agent endpoints agents may reach: this server's
// advertised one, then the other servers'.
func (c *cluster) agentServers() []string {
	var out []string
	if c.agentAddr != "" {
		out = append(out, c.agentAddr)
	}
	for _, p := range c.known() {
		if p.AgentAddr != "" {
			out = append(out, p.AgentAddr)
		}
	}
	return out
}

// addVoter adds a server to the cluster, on the leader (forwarded there
// from a follower).
func (c *cluster) addVoter(si *ServerInfo) error {
	if !c.node.isLeader() {
		leader := c.node.leader()
		if leader == "" {
			return &NotLeaderError{}
		}
		return c.rpc.call(context.Background(), leader, "join", si, nil)
	}
	if err := c.node.raft.AddVoter(raft.ServerID(si.ID), raft.ServerAddress(si.RaftAddr), 0, 10*time.Second).Error(); err != nil {
		return fmt.Errorf("coordinator: add server %s at %s: %w", si.ID, si.RaftAddr, err)
	}
	c.log.Info("server joined", "id", si.ID, "raft", si.RaftAddr)
	return nil
}

// removePeer removes a server, by ID or Raft address, from the Raft
// configuration (on the leader; forwarded there from a follower).
func (c *cluster) removePeer(id string) error {
	if !c.node.isLeader() {
		leader := c.node.leader()
		if leader == "" {
			return &NotLeaderError{}
		}
		return c.rpc.call(context.Background(), leader, "remove-peer", id, nil)
	}
	f := c.node.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id || string(srv.Address) == id {
			return c.node.raft.RemoveServer(srv.ID, 0, 10*time.Second).Error()
		}
	}
	return fmt.Errorf("server %q: %w (see `strata operator raft list-peers`)", id, ErrNotFound)
}

// The cluster's RPC methods.

func (c *cluster) rpcInfo(json.RawMessage) (any, error) { return c.info(), nil }

func (c *cluster) rpcJoin(body json.RawMessage) (any, error) {
	var from ServerInfo
	if err := json.Unmarshal(body, &from); err != nil {
		return nil, err
	}
	return nil, c.addVoter(&from)
}

func (c *cluster) rpcRemovePeer(body json.RawMessage) (any, error) {
	var id string
	json.Unmarshal(body, &id)
	return nil, c.removePeer(id)
}

// Run is the join loop: until this server is part of a cluster, it asks
// the -join addresses (and every server they tell of) who they are; if
// one is already in a cluster it asks to be added; otherwise, once
// BootstrapExpect servers know of each other, the one with the lowest ID
// bootstraps the cluster with all of them.
func (c *cluster) Run(ctx context.Context) {
	if len(c.join) == 0 && c.expect <= 1 {
		return
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.node.bootstrapped() {
			return
		}
		if done := c.tryJoin(ctx); done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (c *cluster) tryJoin(ctx context.Context) bool {
	addrs := map[string]bool{}
	for _, a := range c.join {
		addrs[a] = true
	}
	for _, p := range c.known() {
		addrs[p.RaftAddr] = true
		for _, k := range p.Known {
			addrs[k] = true
		}
	}
	delete(addrs, c.node.addr())
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
			if err := c.rpc.call(cctx, a, "info", nil, &si); err != nil {
				return
			}
			c.learn(&si)
			if si.Bootstrapped {
				mu.Lock()
				inCluster = append(inCluster, &si)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, si := range inCluster {
		if err := c.rpc.call(ctx, si.RaftAddr, "join", c.info(), nil); err == nil {
			c.log.Info("joined the cluster", "via", si.RaftAddr)
			return true
		} else {
			c.log.Debug("join attempt", "via", si.RaftAddr, "err", err)
		}
	}
	if len(inCluster) > 0 || c.expect <= 1 {
		return false
	}
	all := append([]*ServerInfo{c.info()}, c.known()...)
	if len(all) < c.expect {
		return false
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	all = all[:c.expect]
	if all[0].ID != c.id {
		return false // the lowest ID bootstraps; we will be added
	}
	var conf raft.Configuration
	for _, si := range all {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(si.ID), Address: raft.ServerAddress(si.RaftAddr)})
	}
	if err := c.node.raft.BootstrapCluster(conf).Error(); err != nil {
		c.log.Warn("bootstrap", "err", err)
		return false
	}
	c.log.Info("bootstrapped the cluster", "servers", len(conf.Servers))
	return true
}
