package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
)

func mustToken(t *testing.T, s *Server, req structs.JoinTokenRequest) *structs.NewJoinToken {
	t.Helper()
	tok, err := s.CreateJoinToken(req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func wantRefused(t *testing.T, s *Server, token, node, reason string) {
	t.Helper()
	cert, refusal := joinAs(t, s, token, node)
	if cert != nil {
		t.Fatalf("join of %s with %q accepted, want refusal (%s)", node, token, reason)
	}
	if refusal.Temporary || !strings.Contains(refusal.Message, reason) {
		t.Fatalf("join of %s refused with %+v, want a final refusal saying %q", node, refusal, reason)
	}
}

func TestJoinTokens(t *testing.T) {
	s := startTestServer(t)

	once := mustToken(t, s, structs.JoinTokenRequest{Description: "edge-1"})
	if once.CAPin != s.CAPin() || len(once.Servers) == 0 || once.Servers[0] != s.AgentAddr() {
		t.Fatalf("created token = %+v: want the CA pin and this server's agent address for the command line", once)
	}
	if cert, refusal := joinAs(t, s, once.Secret, "n1"); cert == nil {
		t.Fatalf("good one-time token refused: %s", refusal.Message)
	}
	wantRefused(t, s, once.Secret, "n2", "already used by node n1")

	id, _, _ := strings.Cut(once.Secret, ".")
	wantRefused(t, s, id+".0000", "n3", "wrong secret")
	wantRefused(t, s, "ffffffff.0000", "n3", "does not exist")
	wantRefused(t, s, "no-dot-here", "n3", "looks like <id>.<secret>")

	// A token whose expiry has passed, stored as CreateJoinToken stores one.
	const expired = "0e0e0e0e.5ec2e7"
	expiredID, expiredHash, _ := splitToken(expired)
	hourAgo := time.Now().Add(-time.Hour).UnixNano()
	if _, _, err := s.node.apply(&state.TokenCreate{Token: structs.JoinToken{ID: expiredID, SecretHash: expiredHash, CreateTime: hourAgo - 1, ExpireTime: hourAgo}}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, s, expired, "n4", "expired")

	multi := mustToken(t, s, structs.JoinTokenRequest{Reusable: true})
	for _, n := range []string{"r1", "r2", "r3"} {
		if cert, refusal := joinAs(t, s, multi.Secret, n); cert == nil {
			t.Fatalf("reusable token refused for %s: %s", n, refusal.Message)
		}
	}
	if err := s.RevokeJoinToken(multi.ID); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, s, multi.Secret, "r4", "does not exist")
	if err := s.RevokeJoinToken(multi.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking a revoked token: %v, want not found", err)
	}

	toks, err := s.store.JoinTokens()
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 2 {
		t.Fatalf("tokens listed: %+v, want the one-time and the expired one", toks)
	}
	for _, tk := range toks {
		if tk.SecretHash != "" {
			t.Fatalf("token list shows the secret's hash: %+v", tk)
		}
		if tk.ID == once.ID && (tk.Uses != 1 || tk.LastNodeID != "n1" || tk.Description != "edge-1") {
			t.Fatalf("one-time token after use = %+v", tk)
		}
	}
	if _, err := s.CreateJoinToken(structs.JoinTokenRequest{TTL: "soon"}); err == nil || !strings.Contains(err.Error(), `"soon"`) {
		t.Fatalf("bad TTL: %v", err)
	}
}

// Two agents racing with one one-time token: exactly one joins. The
// Raft write that spends the token decides.
func TestOneTimeTokenRace(t *testing.T) {
	s := startTestServer(t)
	tok := mustToken(t, s, structs.JoinTokenRequest{})
	type result struct{ ok bool }
	results := make(chan result, 4)
	for i := range 4 {
		go func() {
			cert, _ := joinAs(t, s, tok.Secret, "racer-"+string(rune('a'+i)))
			results <- result{cert != nil}
		}()
	}
	joined := 0
	for range 4 {
		if (<-results).ok {
			joined++
		}
	}
	if joined != 1 {
		t.Fatalf("%d agents joined with one one-time token, want 1", joined)
	}
}

// The certificate decides who an agent is: it cannot register as another
// node, and an agent without a certificate can only join.
func TestAgentIdentityIsTheCertificate(t *testing.T) {
	s := startTestServer(t)

	conn := dialTLS(t, s, agentTLS(t, s, "n1"))
	st, _ := conn.OpenStreamSync(context.Background())
	wire.Write(st, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n2", Name: "n2", Address: "127.0.0.1"})
	typ, payload, err := wire.Read(st)
	var e wire.Error
	if err != nil || typ != wire.TypeError || wire.Decode(typ, payload, &e) != nil || !strings.Contains(e.Message, "certificate is for node n1 but it registers as node n2") {
		t.Fatalf("registering as another node: %v %v %+v", typ, err, e)
	}
	if n, _ := s.store.Node("n2"); n != nil {
		t.Fatal("node n2 was registered by an agent holding n1's certificate")
	}

	anon := dialTLS(t, s, serverTLS(s))
	st, _ = anon.OpenStreamSync(context.Background())
	wire.Write(st, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n3", Name: "n3", Address: "127.0.0.1"})
	typ, payload, err = wire.Read(st)
	e = wire.Error{}
	if err != nil || typ != wire.TypeError || wire.Decode(typ, payload, &e) != nil || !strings.Contains(e.Message, "-join-token") {
		t.Fatalf("registering without a certificate: %v %v %+v", typ, err, e)
	}
	select {
	case <-anon.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the server kept a connection without a certificate open after refusing it")
	}
	var appErr *quic.ApplicationError
	if err := context.Cause(anon.Context()); !errors.As(err, &appErr) || appErr.ErrorCode != closeProtocol {
		t.Fatalf("close cause = %v, want a protocol error", err)
	}
	if n, _ := s.store.Node("n3"); n != nil {
		t.Fatal("an agent without a certificate registered")
	}
}

func TestTokenAPI(t *testing.T) {
	s := startTestServer(t)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	c := api.NewClient(hs.URL)
	ctx := context.Background()
	tok, err := c.CreateJoinToken(ctx, structs.JoinTokenRequest{Reusable: true, TTL: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Secret, tok.ID+".") || tok.CAPin == "" || !tok.Reusable || tok.ExpireTime == 0 {
		t.Fatalf("created = %+v", tok)
	}
	toks, err := c.JoinTokens(ctx)
	if err != nil || len(toks) != 1 || toks[0].ID != tok.ID {
		t.Fatalf("list = %+v, %v", toks, err)
	}
	raw, _ := json.Marshal(toks)
	if strings.Contains(string(raw), "SecretHash") {
		t.Fatalf("the list exposes secret hashes: %s", raw)
	}
	if err := c.RevokeJoinToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	var se *api.StatusError
	if err := c.RevokeJoinToken(ctx, tok.ID); !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Fatalf("second revoke: %v, want 404", err)
	}
}

// A token cannot buy a certificate for a node that is registered: that
// would hand its identity to whoever holds a token.
func TestJoinCannotTakeOverARegisteredNode(t *testing.T) {
	s := startTestServer(t)
	conn := dialTLS(t, s, agentTLS(t, s, "n1"))
	st, _ := conn.OpenStreamSync(context.Background())
	wire.Write(st, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n1", Name: "edge-1", Address: "127.0.0.1"})
	if typ, _, err := wire.Read(st); err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register: %v %v", typ, err)
	}
	tok := mustToken(t, s, structs.JoinTokenRequest{Reusable: true})
	wantRefused(t, s, tok.Secret, "n1", "node n1 (edge-1) is already registered")
	if toks, _ := s.store.JoinTokens(); len(toks) != 2 || (toks[0].ID == tok.ID && toks[0].Uses != 0) || (toks[1].ID == tok.ID && toks[1].Uses != 0) {
		t.Fatalf("tokens after the refused join: %+v, want the reusable one unspent", toks)
	}
}
