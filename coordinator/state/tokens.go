package state

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
)

// Join tokens: the state keeps each token's record with its secret's
// SHA-256 (never the secret), and spends a one-time token in the Raft
// write that records its use, so two agents racing with the same token
// cannot both join.

// ErrJoinRefused marks every reason a join token is not accepted.
var ErrJoinRefused = errors.New("join refused")

// apply stores a new token; an ID that exists is refused.
func (c *TokenCreate) apply(b *batch) (any, error) {
	if c.Token.ID == "" {
		return nil, refuse("state: join token without an ID")
	}
	bk := b.tx.Bucket(bucketTokens)
	if bk.Get([]byte(c.Token.ID)) != nil {
		return nil, refuse("join token %s already exists", c.Token.ID)
	}
	return nil, putJSON(bk, []byte(c.Token.ID), &c.Token)
}

// apply spends the token for a node, checking it again as of the
// command's time: it may have been used or revoked since the proposer
// looked.
func (c *TokenUse) apply(b *batch) (any, error) {
	bk := b.tx.Bucket(bucketTokens)
	var tok structs.JoinToken
	ok, err := getJSON(bk, []byte(c.ID), &tok)
	if err != nil {
		return nil, err
	}
	if err := CheckToken(&tok, ok, c.ID, c.SecretHash, c.Time); err != nil {
		return nil, &refusal{err}
	}
	tok.Uses++
	tok.LastNodeID = c.NodeID
	return nil, putJSON(bk, []byte(c.ID), &tok)
}

// apply deletes the token; one that does not exist is refused.
func (c *TokenRevoke) apply(b *batch) (any, error) {
	bk := b.tx.Bucket(bucketTokens)
	if bk.Get([]byte(c.ID)) == nil {
		return nil, &refusal{fmt.Errorf("join token %s: %w", c.ID, ErrNotFound)}
	}
	return nil, bk.Delete([]byte(c.ID))
}

// CheckToken says whether a presented token may join at now (unix
// nanoseconds): t is the stored token, found whether its ID exists. The
// leader checks a join with it before proposing TokenUse, and TokenUse
// checks again when it is applied.
func CheckToken(t *structs.JoinToken, found bool, id, secretHash string, now int64) error {
	switch {
	case !found:
		return fmt.Errorf("%w: join token %s does not exist (never created, or revoked)", ErrJoinRefused, id)
	case subtle.ConstantTimeCompare([]byte(t.SecretHash), []byte(secretHash)) != 1:
		return fmt.Errorf("%w: wrong secret for join token %s", ErrJoinRefused, id)
	case t.ExpireTime != 0 && now >= t.ExpireTime:
		return fmt.Errorf("%w: join token %s expired at %s", ErrJoinRefused, id, time.Unix(0, t.ExpireTime).UTC().Format(time.RFC3339))
	case !t.Reusable && t.Uses > 0:
		return fmt.Errorf("%w: join token %s is one-time and was already used by node %s; create another", ErrJoinRefused, id, t.LastNodeID)
	}
	return nil
}

// JoinTokens lists the tokens, without their secrets' hashes.
func (s *Store) JoinTokens() ([]structs.JoinToken, error) {
	var out []structs.JoinToken
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var t structs.JoinToken
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("%w: join token %q: %v", ErrCorruptState, k, err)
			}
			t.SecretHash = ""
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// JoinToken returns a stored token with its secret's hash, or nil.
func (s *Store) JoinToken(id string) (*structs.JoinToken, error) {
	var tok *structs.JoinToken
	err := s.view(func(tx *bolt.Tx) error {
		var t structs.JoinToken
		ok, err := getJSON(tx.Bucket(bucketTokens), []byte(id), &t)
		if ok {
			tok = &t
		}
		return err
	})
	return tok, err
}
