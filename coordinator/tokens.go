package coordinator

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
)

// Agents join the cluster with a token and leave with a certificate.
//
// An operator creates a join token (`strata agent token create`); the
// servers keep only its SHA-256 in Raft. A new agent dials a server
// without a client certificate, sends Join{token, CSR} as its only
// frame, and gets back a client certificate for its node ID signed by the
// cluster CA. Every later connection presents that certificate, so the
// QUIC link is mutual TLS and the node ID a server believes is the one in
// the certificate, not the one an agent claims. A one-time token is spent
// by the Raft write that records its use, so two agents racing with the
// same token cannot both join.

// tokenIssuer creates and revokes join tokens and spends them for agents
// that join, signing their certificates with the cluster CA.
type tokenIssuer struct {
	store     *state.Store
	apply     applyFunc
	certs     *serverCerts
	agentAddr string               // this server's bound agent endpoint
	peers     func() []*ServerInfo // the other servers, for their agent endpoints
}

// publicToken is the token as the API shows it: without its secret's hash.
func publicToken(t structs.JoinToken) structs.JoinToken {
	t.SecretHash = ""
	return t
}

// agentCertLifetime is how long an agent's client certificate is valid.
// An agent joins again with a new token after that.
const agentCertLifetime = 365 * 24 * time.Hour

// splitToken splits "<id>.<secret>" and hashes the secret.
func splitToken(s string) (id, secretHash string, err error) {
	id, secret, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok || id == "" || secret == "" {
		return "", "", fmt.Errorf("%w: a join token looks like <id>.<secret>, as `strata agent token create` prints it", state.ErrJoinRefused)
	}
	sum := sha256.Sum256([]byte(secret))
	return id, hex.EncodeToString(sum[:]), nil
}

// create creates a join token and returns it with its secret, which is
// not stored and cannot be shown again.
func (s *tokenIssuer) create(req structs.JoinTokenRequest) (*structs.NewJoinToken, error) {
	now := time.Now()
	tok := structs.JoinToken{Reusable: req.Reusable, Description: req.Description, CreateTime: now.UnixNano()}
	if req.TTL != "" {
		ttl, err := time.ParseDuration(req.TTL)
		if err != nil || ttl < minJoinTokenTTL || ttl > maxJoinTokenTTL {
			return nil, badRequest{fmt.Errorf("field TTL %q: want a duration from %s to %s, like \"24h\" (omit it for a token that never expires)", req.TTL, minJoinTokenTTL, maxJoinTokenTTL)}
		}
		tok.ExpireTime = now.Add(ttl).UnixNano()
	}
	if len(req.Description) > 256 {
		return nil, badRequest{errors.New("token description: at most 256 bytes")}
	}
	var idb [4]byte
	var secret [24]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, err
	}
	tok.ID = hex.EncodeToString(idb[:])
	full := tok.ID + "." + hex.EncodeToString(secret[:])
	_, tok.SecretHash, _ = splitToken(full)
	if _, _, err := s.apply(&state.TokenCreate{Token: tok}); err != nil {
		return nil, err
	}
	return &structs.NewJoinToken{JoinToken: publicToken(tok), Secret: full, Servers: s.agentAddrs(), CAPin: caPinOf(s.store)}, nil
}

// revoke deletes a token: no agent can join with it any more. Agents
// that joined with it keep their certificates.
func (s *tokenIssuer) revoke(id string) error {
	tok, err := s.store.JoinToken(id)
	if err != nil {
		return err
	}
	if tok == nil {
		return fmt.Errorf("join token %s: %w", id, ErrNotFound)
	}
	_, _, err = s.apply(&state.TokenRevoke{ID: id})
	return err
}

// agentAddrs are the agent endpoints of this server and its known peers.
func (s *tokenIssuer) agentAddrs() []string {
	out := []string{s.agentAddr}
	for _, p := range s.peers() {
		if p.AgentAddr != "" && p.AgentAddr != out[0] {
			out = append(out, p.AgentAddr)
		}
	}
	return out
}

// join spends a token and signs the agent's certificate request. The
// token is checked against local state first, so a wrong token costs no
// Raft write.
func (s *tokenIssuer) join(token, nodeID string, csrDER []byte) ([]byte, error) {
	id, hash, err := splitToken(token)
	if err != nil {
		return nil, err
	}
	tok, err := s.store.JoinToken(id)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixNano()
	var t structs.JoinToken
	if tok != nil {
		t = *tok
	}
	if err := state.CheckToken(&t, tok != nil, id, hash, now); err != nil {
		return nil, err
	}
	// A token buys a certificate for a new node, not for one that exists:
	// otherwise anyone with a token could take over a registered node's
	// identity. (An agent that lost its certificate but kept its node ID
	// starts again with an empty data dir, as a new node.)
	if n, err := s.store.Node(nodeID); err != nil {
		return nil, err
	} else if n != nil {
		return nil, fmt.Errorf("%w: node %s (%s) is already registered; an agent that lost its certificate must start with an empty data dir, as a new node", state.ErrJoinRefused, nodeID, n.Name)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed certificate request: %v", state.ErrJoinRefused, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: certificate request signature: %v", state.ErrJoinRefused, err)
	}
	if _, _, err := s.apply(&state.TokenUse{ID: id, SecretHash: hash, NodeID: nodeID, Time: now}); err != nil {
		return nil, err
	}
	return s.certs.signAgent(csr, nodeID)
}

// signAgent issues a client certificate for nodeID over the request's key.
func (c *serverCerts) signAgent(csr *x509.CertificateRequest, nodeID string) ([]byte, error) {
	ca, err := c.store.CA()
	if err != nil {
		return nil, err
	}
	if ca == nil {
		return nil, errNoCA
	}
	caCert, caKey, err := parseCA(ca)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: nodeID, OrganizationalUnit: []string{agentOU}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(agentCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, csr.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing the agent certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// agentOU marks agent client certificates.
const agentOU = "strata-agent"

// verifyAgentCert is the agent endpoint's client-certificate check: a
// certificate, if given, must chain to the cluster CA, be for client
// authentication and name a node. An agent with no certificate may only
// join (handle enforces that).
func (c *serverCerts) verifyAgentCert(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return nil
	}
	ca, err := c.store.CA()
	if err != nil {
		return err
	}
	if ca == nil {
		return errNoCA
	}
	caCert, _, err := parseCA(ca)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return fmt.Errorf("agent certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("agent certificate: %w", err)
	}
	if leaf.Subject.CommonName == "" || len(leaf.Subject.OrganizationalUnit) != 1 || leaf.Subject.OrganizationalUnit[0] != agentOU {
		return errors.New("agent certificate: not a Strata agent certificate")
	}
	return nil
}
