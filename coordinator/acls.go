package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/strata-run/strata/coordinator/acl"
	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
)

// ACLs: the HTTP API asks aclResolver what a request's token may do (an
// *acl.ACL) and checks the route's need (http_acl.go); aclAdmin is the
// ACL system's own writes (bootstrap, policies, tokens), committed
// through Raft like every write. Tokens and policies live in the state
// (package state), secrets as their SHA-256.

// Token TTL bounds: Nomad's defaults (token_min_expiration_ttl,
// token_max_expiration_ttl). A token without a TTL never expires.
const (
	minTokenTTL = time.Minute
	maxTokenTTL = 24 * time.Hour
)

// The ACL refusals. Each is a 403 in the HTTP API.
var (
	// ErrPermissionDenied: the token does not grant what the operation needs.
	ErrPermissionDenied = errors.New("Permission denied")
	// ErrACLTokenNotFound: a secret that names no token (never created,
	// deleted, or mistyped).
	ErrACLTokenNotFound = errors.New("ACL token not found")
	// ErrACLTokenExpired: the token's TTL has passed.
	ErrACLTokenExpired = errors.New("ACL token expired")
	// ErrACLDisabled: an ACL operation on a server started without
	// -acl-enabled.
	ErrACLDisabled = errors.New("ACLs are not enabled on this server (start the servers with -acl-enabled)")
)

// hashSecret is what the state keeps of a secret: its SHA-256, in hex.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// aclResolver resolves a request's secret to what it may do. With ACLs
// disabled every request may do everything. Parsed policies are cached
// by name and modify index, so a request parses nothing once its
// policies were seen.
type aclResolver struct {
	store   *state.Store
	enabled bool
	now     func() time.Time

	mu       sync.Mutex
	policies map[string]cachedPolicy
}

type cachedPolicy struct {
	modifyIndex uint64
	policy      *acl.Policy
}

// maxCachedPolicies bounds the cache; past it, it starts again empty.
const maxCachedPolicies = 4096

// resolve returns the ACL of secret ("" is an anonymous request: the
// policy named "anonymous", as in Nomad, if there is one, else nothing),
// with the token it names (nil for anonymous). An unknown or expired
// secret is an error.
func (r *aclResolver) resolve(secret string) (*acl.ACL, *structs.ACLToken, error) {
	if !r.enabled {
		return acl.Management(), nil, nil
	}
	if secret == "" {
		p, err := r.policy("anonymous")
		if err != nil {
			return nil, nil, err
		}
		return acl.Anonymous(p), nil, nil
	}
	tok, err := r.store.ACLTokenBySecret(hashSecret(secret))
	if err != nil {
		return nil, nil, err
	}
	if tok == nil {
		return nil, nil, ErrACLTokenNotFound
	}
	if tok.ExpirationTime != 0 && r.now().UnixNano() >= tok.ExpirationTime {
		return nil, nil, ErrACLTokenExpired
	}
	if tok.Type == structs.ACLManagementToken {
		return acl.Management(), tok, nil
	}
	var ps []*acl.Policy
	for _, name := range tok.Policies {
		p, err := r.policy(name)
		if err != nil {
			return nil, nil, err
		}
		ps = append(ps, p) // a deleted policy (nil) grants nothing
	}
	return acl.Compile(ps...), tok, nil
}

// policy returns the named policy parsed, nil if it does not exist.
func (r *aclResolver) policy(name string) (*acl.Policy, error) {
	stored, err := r.store.ACLPolicy(name)
	if err != nil || stored == nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.policies[name]; ok && c.modifyIndex == stored.ModifyIndex {
		return c.policy, nil
	}
	p, err := acl.Parse(name+".hcl", []byte(stored.Rules))
	if err != nil {
		// Stored policies were parsed when applied; one that no longer
		// parses (a newer server's rule) grants nothing here.
		return nil, fmt.Errorf("ACL policy %q does not parse on this server: %w", name, err)
	}
	if r.policies == nil || len(r.policies) >= maxCachedPolicies {
		r.policies = map[string]cachedPolicy{}
	}
	r.policies[name] = cachedPolicy{modifyIndex: stored.ModifyIndex, policy: p}
	return p, nil
}

// aclAdmin is the ACL system's writes: what the HTTP API's /v1/acl routes
// call, validated here and committed through Raft.
type aclAdmin struct {
	store   *state.Store
	apply   applyFunc
	enabled bool
	now     func() time.Time
}

// newSecret makes a token's accessor ID and secret: random UUIDs.
func newSecret() (accessor, secret string, err error) {
	a, err := uuid.NewRandom()
	if err != nil {
		return "", "", err
	}
	s, err := uuid.NewRandom()
	if err != nil {
		return "", "", err
	}
	return a.String(), s.String(), nil
}

// bootstrap creates the first management token, once per cluster, and
// returns it with its secret, shown this once.
func (a *aclAdmin) bootstrap() (*structs.ACLToken, error) {
	if !a.enabled {
		return nil, badRequest{ErrACLDisabled}
	}
	if idx := a.store.ACLBootstrapIndex(); idx != 0 {
		return nil, badRequest{fmt.Errorf("ACL bootstrap already done (at index %d); it happens once per cluster", idx)}
	}
	tok := structs.ACLToken{Name: "Bootstrap Token", Type: structs.ACLManagementToken, CreateTime: a.now().UnixNano()}
	return a.commit(tok, func(t structs.ACLToken) state.Command { return &state.ACLBootstrap{Token: t} })
}

// commit stamps a new accessor and secret into tok, proposes it, and
// returns it with its secret.
func (a *aclAdmin) commit(tok structs.ACLToken, cmd func(structs.ACLToken) state.Command) (*structs.ACLToken, error) {
	accessor, secret, err := newSecret()
	if err != nil {
		return nil, err
	}
	tok.AccessorID, tok.SecretHash = accessor, hashSecret(secret)
	if _, _, err := a.apply(cmd(tok)); err != nil {
		if errors.Is(err, state.ErrACLBootstrapped) || errors.Is(err, state.ErrACLPolicyMissing) {
			return nil, badRequest{err}
		}
		return nil, err
	}
	stored, err := a.store.ACLToken(accessor)
	if err != nil {
		return nil, err
	}
	if stored == nil {
		stored = &tok
	}
	out := stored.Public()
	out.SecretID = secret
	return &out, nil
}

// createToken creates a token: a client token needs policies that exist,
// a management token has none; a TTL must be within the bounds.
func (a *aclAdmin) createToken(req structs.ACLTokenRequest) (*structs.ACLToken, error) {
	if !a.enabled {
		return nil, badRequest{ErrACLDisabled}
	}
	now := a.now()
	tok := structs.ACLToken{Name: req.Name, Type: req.Type, Policies: slices.Compact(slices.Sorted(slices.Values(req.Policies))), CreateTime: now.UnixNano()}
	if tok.Type == "" {
		tok.Type = structs.ACLClientToken
	}
	switch tok.Type {
	case structs.ACLClientToken:
		if len(tok.Policies) == 0 {
			return nil, badRequest{errors.New("a client token needs at least one policy (-policy NAME); a token with every permission is -type management")}
		}
	case structs.ACLManagementToken:
		if len(tok.Policies) > 0 {
			return nil, badRequest{errors.New("a management token may do everything: it takes no policies")}
		}
	default:
		return nil, badRequest{fmt.Errorf("token type %q: want %q or %q", tok.Type, structs.ACLClientToken, structs.ACLManagementToken)}
	}
	if len(tok.Name) > 256 {
		return nil, badRequest{errors.New("token name: at most 256 bytes")}
	}
	if req.ExpirationTTL != "" {
		ttl, err := time.ParseDuration(req.ExpirationTTL)
		switch {
		case err != nil:
			return nil, badRequest{fmt.Errorf("token TTL %q: want a duration like \"8h\"", req.ExpirationTTL)}
		case ttl < minTokenTTL || ttl > maxTokenTTL:
			return nil, badRequest{fmt.Errorf("token TTL %s: must be between %s and %s (omit it for a token that never expires)", ttl, minTokenTTL, maxTokenTTL)}
		}
		tok.ExpirationTime = now.Add(ttl).UnixNano()
	}
	return a.commit(tok, func(t structs.ACLToken) state.Command { return &state.ACLTokenCreate{Token: t} })
}

// deleteToken deletes a token by accessor ID.
func (a *aclAdmin) deleteToken(accessor string) error {
	if !a.enabled {
		return badRequest{ErrACLDisabled}
	}
	tok, err := a.store.ACLToken(accessor)
	if err != nil {
		return err
	}
	if tok == nil {
		return fmt.Errorf("ACL token %s: %w", accessor, ErrNotFound)
	}
	_, _, err = a.apply(&state.ACLTokenDelete{AccessorID: accessor})
	return err
}

// setPolicy parses a policy's rules (a problem is a bad request with
// every diagnostic: file:line:col, as the CLI shows them) and stores it.
func (a *aclAdmin) setPolicy(p structs.ACLPolicy) (*structs.ACLPolicy, uint64, error) {
	if !a.enabled {
		return nil, 0, badRequest{ErrACLDisabled}
	}
	if err := state.ValidACLName("policy", p.Name); err != nil {
		return nil, 0, badRequest{err}
	}
	// Not in the state's rule (a log entry it accepted once must apply
	// the same on replay): a new name must not read as a CLI flag.
	if strings.HasPrefix(p.Name, "-") {
		return nil, 0, badRequest{fmt.Errorf("ACL policy name %q must not start with '-': a command line would read it as a flag", p.Name)}
	}
	if len(p.Description) > 256 {
		return nil, 0, badRequest{errors.New("policy description: at most 256 bytes")}
	}
	if _, err := acl.Parse(p.Name+".hcl", []byte(p.Rules)); err != nil {
		return nil, 0, badRequest{fmt.Errorf("invalid policy %q:\n%w", p.Name, err)}
	}
	p.CreateIndex, p.ModifyIndex = 0, 0
	_, idx, err := a.apply(&state.ACLPolicySet{Policy: p})
	if err != nil {
		return nil, 0, err
	}
	stored, err := a.store.ACLPolicy(p.Name)
	return stored, idx, err
}

// deletePolicy deletes a policy; tokens naming it lose its rules.
func (a *aclAdmin) deletePolicy(name string) error {
	if !a.enabled {
		return badRequest{ErrACLDisabled}
	}
	p, err := a.store.ACLPolicy(name)
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("ACL policy %q: %w", name, ErrNotFound)
	}
	_, _, err = a.apply(&state.ACLPolicyDelete{Name: name})
	return err
}

// secretOf is the token a request presents: X-Strata-Token, else an
// Authorization: Bearer header, else X-Consul-Token (what Consul's
// tools send to the Consul-compatible routes); "" for none.
func secretOf(h interface{ Get(string) string }) string {
	if s := strings.TrimSpace(h.Get("X-Strata-Token")); s != "" {
		return s
	}
	if auth := h.Get("Authorization"); auth != "" {
		if scheme, tok, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	return strings.TrimSpace(h.Get("X-Consul-Token"))
}
