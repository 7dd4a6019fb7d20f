package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// The coordinator's Go API: what the CLI's dev mode, the benchmarks and
// tests call on a Server. Each method is a call to the part that owns it.

// Store returns the state store (read-only use).
func (s *Server) Store() *state.Store { return s.store }

// Catalog is the service catalog this server serves: an immutable
// registry.Snapshot swapped on every change, indexed by the Raft index of
// the batch that made it. It follows this server's state machine, so a
// follower's is current up to the entries it has applied. Read it (DNS,
// HTTP, agents' replicas); never write it.
func (s *Server) Catalog() *registry.Holder { return s.catalog.holder }

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler { return s.http.handler() }

// DNSObserver counts the queries a DNS server over this server's catalog
// answers, in this server's metrics (registry.DNSConfig.Observer).
func (s *Server) DNSObserver() registry.DNSObserver { return s.metrics }

// AgentAddr is the bound QUIC address agents dial.
func (s *Server) AgentAddr() string { return s.agents.Addr() }

// AgentAdvertiseAddr is the address agents are told to reach this server
// at; "" when there is none to tell (bound to an unspecified IP and no
// AgentAdvertise).
func (s *Server) AgentAdvertiseAddr() string { return s.cluster.agentAddr }

// RaftAddr is the bound Raft address.
func (s *Server) RaftAddr() string { return s.node.addr() }

// Leader returns the leader's Raft address, "" if none is known.
func (s *Server) Leader() string { return s.node.leader() }

// IsLeader reports whether this server is the Raft leader.
func (s *Server) IsLeader() bool { return s.node.isLeader() }

// CAPin is "sha256:<hex>" of the cluster CA certificate, which agents pin.
// It is "" until a leader has created the CA.
func (s *Server) CAPin() string { return caPinOf(s.store) }

// CACertPEM is the cluster CA certificate.
func (s *Server) CACertPEM() []byte {
	if ca, err := s.store.CA(); err == nil && ca != nil {
		return ca.CertPEM
	}
	return nil
}

// RegisterJob validates a job, pins every module reference to a digest,
// and commits it with an evaluation when it changed.
func (s *Server) RegisterJob(job *spec.Job) (*structs.JobRegisterResponse, error) {
	return s.jobs.registerJob(job, false, 0)
}

// PushModule validates and stores a module version. Versions are
// immutable: the same name@version with other bytes is refused.
func (s *Server) PushModule(ctx context.Context, name, version string, b []byte) (*structs.Module, uint64, error) {
	return s.jobs.pushModule(ctx, name, version, b)
}

// CreateJoinToken creates a join token and returns it with its secret,
// which is not stored and cannot be shown again.
func (s *Server) CreateJoinToken(req structs.JoinTokenRequest) (*structs.NewJoinToken, error) {
	return s.tokens.create(req)
}

// RevokeJoinToken deletes a token: no agent can join with it any more.
// Agents that joined with it keep their certificates.
func (s *Server) RevokeJoinToken(id string) error { return s.tokens.revoke(id) }

// DrainNode starts (enable) or ends a drain of a node, by ID or name. A
// deadline > 0 stops whatever is left on the node when it passes.
func (s *Server) DrainNode(idOrName string, enable bool, deadline time.Duration) (*structs.NodeRecord, error) {
	return s.drainer.drain(idOrName, enable, deadline, time.Now())
}

// AllocLogs opens a task's log on the agent that runs the allocation,
// wherever it is connected. The reader ends with the log (or, with
// Follow, when closed); closing it stops the agent's streaming.
// req.Task may be empty for an allocation of one task.
func (s *Server) AllocLogs(ctx context.Context, req structs.LogRequest) (io.ReadCloser, error) {
	return s.logs.open(ctx, req)
}

// HeartbeatStats returns the leader's heartbeat counters: with them a
// test or benchmark sees a missed deadline even if the node came back.
func (s *Server) HeartbeatStats() structs.HeartbeatStats { return s.detector.stats() }

// Heartbeat records a heartbeat for a node, as its agent's would.
func (s *Server) Heartbeat(ctx context.Context, nodeID string) error {
	return s.detector.heartbeat(ctx, nodeID)
}

// RegisterNodes registers nodes directly through Raft, as their agents
// would, for simulations and benchmarks (cmd/strata-bench c1m); it keeps
// them alive with Heartbeat.
func (s *Server) RegisterNodes(ctx context.Context, nodes []sched.Node) error {
	sem := make(chan struct{}, 64)
	errc := make(chan error, len(nodes))
	for _, n := range nodes {
		n.ComputedClass = sched.ComputeClass(&n)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, _, err := s.node.apply(&state.NodeRegister{Node: n, Time: time.Now().UnixNano()})
			if err == nil {
				err = s.detector.heartbeat(ctx, n.ID)
			}
			errc <- err
		}()
	}
	var errs []error
	for range nodes {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RaftPeers lists the Raft configuration as this server knows it.
func (s *Server) RaftPeers() ([]structs.Peer, error) { return s.node.peers() }

// RemovePeer removes a server, by ID or Raft address, from the Raft
// configuration (on the leader).
func (s *Server) RemovePeer(id string) error { return s.cluster.removePeer(id) }

// Peers returns what this server knows of the others.
func (s *Server) Peers() []*ServerInfo { return s.cluster.known() }

// HTTPTLSConfig is the TLS configuration of an HTTPS API served with a
// certificate from the cluster CA: valid for server.strata, localhost,
// the loopback IPs and hosts (names or IPs the API is reached at), issued
// once the first leader has created the CA (until then handshakes fail).
// Clients verify it with the CA certificate (CACertPEM) or its pin.
func (s *Server) HTTPTLSConfig(hosts []string) *tls.Config {
	certs := &serverCerts{store: s.store, hosts: hosts}
	return &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12}
}
