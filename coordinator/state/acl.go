package state

import (
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
)

// ACLs: policies by name, tokens by accessor ID with their secret's
// SHA-256 (never the secret) and an index from that hash to the
// accessor, and in meta the index of the bootstrap, which happens once
// per cluster. The proposer parses a policy's rules (package
// coordinator/acl) and stamps IDs, hashes and times into the commands;
// applying them checks only what depends on the state.

// ACLBootstrap creates the first management token, once per cluster.
type ACLBootstrap struct {
	Token structs.ACLToken `json:"Token"`
}

// ACLPolicySet creates or replaces a policy.
type ACLPolicySet struct {
	Policy structs.ACLPolicy `json:"Policy"`
}

// ACLPolicyDelete deletes a policy; tokens that name it lose its rules.
type ACLPolicyDelete struct {
	Name string `json:"Name"`
}

// ACLTokenCreate stores a new token (its secret's hash only).
type ACLTokenCreate struct {
	Token structs.ACLToken `json:"Token"`
}

// ACLTokenDelete deletes a token.
type ACLTokenDelete struct {
	AccessorID string `json:"AccessorID"`
}

func (*ACLBootstrap) Type() CmdType    { return CmdACLBootstrap }
func (*ACLPolicySet) Type() CmdType    { return CmdACLPolicySet }
func (*ACLPolicyDelete) Type() CmdType { return CmdACLPolicyDel }
func (*ACLTokenCreate) Type() CmdType  { return CmdACLTokenSet }
func (*ACLTokenDelete) Type() CmdType  { return CmdACLTokenDel }

// ErrACLBootstrapped refuses a second bootstrap.
var ErrACLBootstrapped = errors.New("state: the ACL system is already bootstrapped")

// ErrACLPolicyMissing refuses a token that names a policy that does not exist.
var ErrACLPolicyMissing = errors.New("state: ACL policy does not exist")

var (
	bucketACLPolicies = []byte("acl_policies") // name -> ACLPolicy
	bucketACLTokens   = []byte("acl_tokens")   // accessor ID -> ACLToken (with SecretHash)
	bucketACLSecrets  = []byte("acl_secrets")  // secret hash -> accessor ID
	keyACLBootstrap   = []byte("acl-bootstrap")
)

// apply creates the bootstrap token unless the cluster was bootstrapped.
func (c *ACLBootstrap) apply(b *batch) (any, error) {
	meta := b.tx.Bucket(bucketMeta)
	if v := meta.Get(keyACLBootstrap); v != nil {
		return nil, &refusal{fmt.Errorf("%w (at index %d); it happens once per cluster", ErrACLBootstrapped, binary.BigEndian.Uint64(v))}
	}
	if c.Token.Type != structs.ACLManagementToken {
		return nil, refuse("state: the bootstrap token must be a management token")
	}
	if err := b.putACLToken(c.Token); err != nil {
		return nil, err
	}
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], b.index)
	return nil, meta.Put(keyACLBootstrap, idx[:])
}

// apply writes the policy, keeping its create index when it existed.
func (c *ACLPolicySet) apply(b *batch) (any, error) {
	p := c.Policy
	if err := ValidACLName("policy", p.Name); err != nil {
		return nil, &refusal{err}
	}
	bk := b.tx.Bucket(bucketACLPolicies)
	var old structs.ACLPolicy
	ok, err := getJSON(bk, []byte(p.Name), &old)
	if err != nil {
		return nil, err
	}
	p.CreateIndex, p.ModifyIndex = b.index, b.index
	if ok {
		p.CreateIndex = old.CreateIndex
	}
	return nil, putJSON(bk, []byte(p.Name), &p)
}

func (c *ACLPolicyDelete) apply(b *batch) (any, error) {
	bk := b.tx.Bucket(bucketACLPolicies)
	if bk.Get([]byte(c.Name)) == nil {
		return nil, &refusal{fmt.Errorf("ACL policy %q: %w", c.Name, ErrNotFound)}
	}
	return nil, bk.Delete([]byte(c.Name))
}

// apply stores a new token whose policies exist.
func (c *ACLTokenCreate) apply(b *batch) (any, error) {
	t := c.Token
	switch t.Type {
	case structs.ACLManagementToken:
		if len(t.Policies) > 0 {
			return nil, refuse("state: a management token has no policies")
		}
	case structs.ACLClientToken:
		if len(t.Policies) == 0 {
			return nil, refuse("state: a client token needs at least one policy")
		}
	default:
		return nil, refuse("state: unknown token type %q", t.Type)
	}
	policies := b.tx.Bucket(bucketACLPolicies)
	for _, p := range t.Policies {
		if policies.Get([]byte(p)) == nil {
			return nil, &refusal{fmt.Errorf("%w: %q (create it first with `strata acl policy apply`)", ErrACLPolicyMissing, p)}
		}
	}
	return nil, b.putACLToken(t)
}

// putACLToken writes a new token and its secret index; an accessor or a
// secret that exists is refused.
func (b *batch) putACLToken(t structs.ACLToken) error {
	if t.AccessorID == "" || t.SecretHash == "" {
		return refuse("state: ACL token without an accessor ID or a secret hash")
	}
	if t.SecretID != "" {
		return refuse("state: an ACL token's secret is never stored, only its hash")
	}
	tokens, secrets := b.tx.Bucket(bucketACLTokens), b.tx.Bucket(bucketACLSecrets)
	if tokens.Get([]byte(t.AccessorID)) != nil {
		return refuse("ACL token %s already exists", t.AccessorID)
	}
	if secrets.Get([]byte(t.SecretHash)) != nil {
		return refuse("state: an ACL token with this secret already exists")
	}
	t.CreateIndex, t.ModifyIndex = b.index, b.index
	if err := putJSON(tokens, []byte(t.AccessorID), &t); err != nil {
		return err
	}
	return secrets.Put([]byte(t.SecretHash), []byte(t.AccessorID))
}

func (c *ACLTokenDelete) apply(b *batch) (any, error) {
	tokens := b.tx.Bucket(bucketACLTokens)
	var t structs.ACLToken
	ok, err := getJSON(tokens, []byte(c.AccessorID), &t)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &refusal{fmt.Errorf("ACL token %s: %w", c.AccessorID, ErrNotFound)}
	}
	if err := b.tx.Bucket(bucketACLSecrets).Delete([]byte(t.SecretHash)); err != nil {
		return nil, err
	}
	return nil, tokens.Delete([]byte(c.AccessorID))
}

// ValidACLName checks a policy's name: Nomad's rule, 1 to 128 letters,
// digits and '-'.
func ValidACLName(what, s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("ACL %s name %q must be 1 to 128 characters", what, s)
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("ACL %s name %q contains %q: use letters, digits and '-'", what, s, c)
		}
	}
	return nil
}

// ACLBootstrapIndex is the index at which the ACL system was
// bootstrapped; 0 if it was not.
func (s *Store) ACLBootstrapIndex() uint64 {
	var idx uint64
	s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyACLBootstrap); len(v) == 8 {
			idx = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return idx
}

// ACLPolicy returns a policy, or nil.
func (s *Store) ACLPolicy(name string) (*structs.ACLPolicy, error) {
	return get[structs.ACLPolicy](s, bucketACLPolicies, []byte(name))
}

// ACLPolicies returns every policy, by name.
func (s *Store) ACLPolicies() ([]*structs.ACLPolicy, error) {
	return list[structs.ACLPolicy](s, bucketACLPolicies, "ACL policy")
}

// ACLToken returns a token by accessor ID, with its secret's hash, or nil.
func (s *Store) ACLToken(accessor string) (*structs.ACLToken, error) {
	return get[structs.ACLToken](s, bucketACLTokens, []byte(accessor))
}

// ACLTokens returns every token, by accessor ID, without their secrets'
// hashes.
func (s *Store) ACLTokens() ([]*structs.ACLToken, error) {
	toks, err := list[structs.ACLToken](s, bucketACLTokens, "ACL token")
	for _, t := range toks {
		t.SecretHash = ""
	}
	return toks, err
}

// ACLTokenBySecret returns the token whose secret hashes to secretHash
// (hex SHA-256), or nil. The stored hash is compared with the presented
// one in constant time.
func (s *Store) ACLTokenBySecret(secretHash string) (*structs.ACLToken, error) {
	var tok *structs.ACLToken
	err := s.view(func(tx *bolt.Tx) error {
		accessor := tx.Bucket(bucketACLSecrets).Get([]byte(secretHash))
		if accessor == nil {
			return nil
		}
		var t structs.ACLToken
		raw := tx.Bucket(bucketACLTokens).Get(accessor)
		if raw == nil {
			return fmt.Errorf("%w: ACL secret index names token %q, which does not exist", ErrCorruptState, accessor)
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return fmt.Errorf("%w: ACL token %q: %v", ErrCorruptState, accessor, err)
		}
		if subtle.ConstantTimeCompare([]byte(t.SecretHash), []byte(secretHash)) == 1 {
			tok = &t
		}
		return nil
	})
	return tok, err
}

// aclBuckets are the ACL buckets (initBuckets creates them in a file
// written before ACLs existed: no new format).
var aclBuckets = [][]byte{bucketACLPolicies, bucketACLTokens, bucketACLSecrets}
