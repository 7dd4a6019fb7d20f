package state

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
)

func aclToken(accessor, hash, typ string, policies ...string) structs.ACLToken {
	return structs.ACLToken{AccessorID: accessor, SecretHash: hash, Type: typ, Policies: policies, CreateTime: 1}
}

// Bootstrap happens once; a second one is refused and changes nothing.
func TestACLBootstrapOnce(t *testing.T) {
	h := newHarness(t)
	if h.st.ACLBootstrapIndex() != 0 {
		t.Fatal("a fresh state is bootstrapped")
	}
	h.must(&ACLBootstrap{Token: aclToken("a1", "h1", structs.ACLManagementToken)})
	idx := h.st.ACLBootstrapIndex()
	if idx != h.index {
		t.Fatalf("bootstrap index = %d, want %d", idx, h.index)
	}
	err := h.refused(&ACLBootstrap{Token: aclToken("a2", "h2", structs.ACLManagementToken)})
	if !errors.Is(err, ErrACLBootstrapped) {
		t.Fatalf("second bootstrap: %v", err)
	}
	if tok, _ := h.st.ACLToken("a2"); tok != nil {
		t.Fatal("the refused bootstrap stored its token")
	}
	if h.st.ACLBootstrapIndex() != idx {
		t.Fatal("the refused bootstrap moved the bootstrap index")
	}
}

// A token is found by its secret's hash, keeps the hash only, names
// policies that exist, and is gone with its secret index when deleted.
func TestACLTokens(t *testing.T) {
	h := newHarness(t)
	err := h.refused(&ACLTokenCreate{Token: aclToken("a1", "h1", structs.ACLClientToken, "readers")})
	if !errors.Is(err, ErrACLPolicyMissing) {
		t.Fatalf("token naming a missing policy: %v", err)
	}
	h.must(&ACLPolicySet{Policy: structs.ACLPolicy{Name: "readers", Rules: `node { policy = "read" }`}})
	h.must(&ACLTokenCreate{Token: aclToken("a1", "h1", structs.ACLClientToken, "readers")})

	for _, c := range []Command{
		&ACLTokenCreate{Token: aclToken("a1", "h9", structs.ACLClientToken, "readers")},                                 // same accessor
		&ACLTokenCreate{Token: aclToken("a9", "h1", structs.ACLClientToken, "readers")},                                 // same secret
		&ACLTokenCreate{Token: aclToken("a9", "h9", structs.ACLManagementToken, "readers")},                             // management with policies
		&ACLTokenCreate{Token: aclToken("a9", "h9", structs.ACLClientToken)},                                            // client without
		&ACLTokenCreate{Token: aclToken("a9", "h9", "root")},                                                            // unknown type
		&ACLTokenCreate{Token: structs.ACLToken{AccessorID: "a9", SecretHash: "h9", SecretID: "s", Type: "management"}}, // a secret
	} {
		h.refused(c)
	}

	tok, err := h.st.ACLTokenBySecret("h1")
	if err != nil || tok == nil || tok.AccessorID != "a1" || tok.CreateIndex == 0 {
		t.Fatalf("ACLTokenBySecret(h1) = %+v, %v", tok, err)
	}
	if tok, _ := h.st.ACLTokenBySecret("h2"); tok != nil {
		t.Fatalf("unknown secret found %+v", tok)
	}
	toks, _ := h.st.ACLTokens()
	if len(toks) != 1 || toks[0].SecretHash != "" {
		t.Fatalf("ACLTokens = %+v, want one token without its hash", toks)
	}

	// Deleting a policy leaves the token (it loses the policy's rules).
	h.must(&ACLPolicyDelete{Name: "readers"})
	if p, _ := h.st.ACLPolicy("readers"); p != nil {
		t.Fatal("policy not deleted")
	}
	if !errors.Is(h.refused(&ACLPolicyDelete{Name: "readers"}), ErrNotFound) {
		t.Fatal("deleting a missing policy is not ErrNotFound")
	}
	h.must(&ACLTokenDelete{AccessorID: "a1"})
	if tok, _ := h.st.ACLTokenBySecret("h1"); tok != nil {
		t.Fatal("deleted token still found by its secret")
	}
	if !errors.Is(h.refused(&ACLTokenDelete{AccessorID: "a1"}), ErrNotFound) {
		t.Fatal("deleting a missing token is not ErrNotFound")
	}
}

// Replacing a policy keeps its create index and moves its modify index;
// a bad name is refused.
func TestACLPolicySet(t *testing.T) {
	h := newHarness(t)
	h.must(&ACLPolicySet{Policy: structs.ACLPolicy{Name: "ops", Rules: `operator { policy = "read" }`}})
	first, _ := h.st.ACLPolicy("ops")
	h.must(&ACLPolicySet{Policy: structs.ACLPolicy{Name: "ops", Description: "d", Rules: `operator { policy = "write" }`}})
	second, _ := h.st.ACLPolicy("ops")
	if second.CreateIndex != first.CreateIndex || second.ModifyIndex <= first.ModifyIndex || second.Description != "d" {
		t.Fatalf("replaced policy = %+v (was %+v)", second, first)
	}
	h.refused(&ACLPolicySet{Policy: structs.ACLPolicy{Name: "a b", Rules: "x"}})
	ps, _ := h.st.ACLPolicies()
	if len(ps) != 1 {
		t.Fatalf("ACLPolicies = %d policies, want 1", len(ps))
	}
}

// The ACL buckets travel in snapshots and are created in a state file
// written before they existed.
func TestACLSnapshotRestore(t *testing.T) {
	h := newHarness(t)
	h.must(&ACLBootstrap{Token: aclToken("a1", "h1", structs.ACLManagementToken)},
		&ACLPolicySet{Policy: structs.ACLPolicy{Name: "p", Rules: `node { policy = "read" }`}})
	sn, err := h.st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = sn.WriteTo(&buf)
	sn.Release()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := openTestStore(t)
	if err := other.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if tok, _ := other.ACLTokenBySecret("h1"); tok == nil || other.ACLBootstrapIndex() == 0 {
		t.Fatal("restored state lost the bootstrap token")
	}
	if p, _ := other.ACLPolicy("p"); p == nil {
		t.Fatal("restored state lost the policy")
	}

	// A state file written before ACLs existed gets their buckets when it
	// is opened: the ACL reads work on it.
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range aclBuckets {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ps, err := s.ACLPolicies(); err != nil || len(ps) != 0 {
		t.Fatalf("ACLPolicies on an older file = %v, %v", ps, err)
	}
	if tok, err := s.ACLTokenBySecret("h1"); err != nil || tok != nil {
		t.Fatalf("ACLTokenBySecret on an older file = %v, %v", tok, err)
	}
}
