package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/boltcheck"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/spec"
)

// CheckReport is what a full check of a state file found.
type CheckReport struct {
	Path    string
	Format  string
	Index   uint64         // the applied Raft index it records
	Records map[string]int // records decoded, by bucket
}

// CheckFile checks the state file at path fully, without changing it:
// its header (boltcheck), its format record, bbolt's page-level
// consistency check (every page reachable or free, keys ordered) and the
// decoding of every record of every bucket. It is what `strata operator
// state check` runs on a stopped server's data dir; Open runs the cheaper
// part of it (all but the decoding). An error wraps ErrCorruptState and
// names the file, and the bucket and key where a record fails.
func CheckFile(path string) (rep *CheckReport, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := boltcheck.Preflight(path); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	defer func() {
		// bbolt panics on some malformed pages instead of returning an error.
		if r := recover(); r != nil {
			rep, err = nil, fmt.Errorf("%w: %s: %v", ErrCorruptState, path, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("state: %s is locked: is a server running on this data dir? Stop it first", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrCorruptState, path, err)
	}
	defer db.Close()
	rep = &CheckReport{Path: path, Records: map[string]int{}}
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkPages(tx, path); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: %s has no %q bucket: not a Strata state file", ErrCorruptState, path, bucketMeta)
		}
		rep.Format = string(meta.Get(keyFormat))
		if rep.Format != stateFormat {
			return fmt.Errorf("%w: %s has format %q, want %q", ErrCorruptState, path, rep.Format, stateFormat)
		}
		if v := meta.Get(keyIndex); v != nil && len(v) != 8 {
			return fmt.Errorf("%w: %s: applied index record is %d bytes, want 8", ErrCorruptState, path, len(v))
		}
		rep.Index = appliedIndex(tx)
		if v := meta.Get(keyCA); v != nil {
			if err := jsonRecord[ClusterCA](keyCA, v); err != nil {
				return fmt.Errorf("%w: %s: bucket %s, key %q: %v", ErrCorruptState, path, bucketMeta, keyCA, err)
			}
		}
		for name, decode := range recordDecoders {
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue // created at the next open
			}
			err := b.ForEach(func(k, v []byte) error {
				if err := decode(k, v); err != nil {
					return fmt.Errorf("%w: %s: bucket %s, key %q: %v", ErrCorruptState, path, name, k, err)
				}
				rep.Records[name]++
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// recordDecoders decode one record of each bucket, as the reads do.
var recordDecoders = map[string]func(k, v []byte) error{
	string(bucketJobs):        jsonRecord[structs.JobRecord],
	string(bucketJobVersions): versionKeyed(jsonRecord[spec.Job]),
	string(bucketModules):     jsonRecord[structs.Module],
	string(bucketNodes):       jsonRecord[structs.NodeRecord],
	string(bucketAllocs): func(_, v []byte) error {
		_, err := decodeAllocRecord(v)
		return err
	},
	string(bucketAllocsByJob): func(k, v []byte) error {
		for _, c := range k {
			if c == 0 {
				return nil
			}
		}
		return errors.New("key has no job \\x00 allocation separator")
	},
	string(bucketEvals):       jsonRecord[structs.Eval],
	string(bucketServices):    jsonRecord[registry.Endpoint],
	string(bucketTokens):      jsonRecord[structs.JoinToken],
	string(bucketDeployments): jsonRecord[structs.Deployment],
	string(bucketVersionInfo): versionKeyed(jsonRecord[VersionInfo]),
	string(bucketACLPolicies): jsonRecord[structs.ACLPolicy],
	string(bucketACLTokens):   jsonRecord[structs.ACLToken],
	string(bucketACLSecrets): func(_, v []byte) error {
		if len(v) == 0 {
			return errors.New("empty accessor ID")
		}
		return nil
	},
}

// jsonRecord decodes v strictly: a field the type does not have is a
// damaged name (a flipped bit in a key), not one to skip.
func jsonRecord[T any](_, v []byte) error {
	var x T
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("bytes after the record")
	}
	return nil
}

// versionKeyed checks a job ID \x00 BE uint64 version key, then the value.
func versionKeyed(decode func(k, v []byte) error) func(k, v []byte) error {
	return func(k, v []byte) error {
		if len(k) < 10 || k[len(k)-9] != 0 {
			return errors.New("key is not job ID \\x00 8-byte version")
		}
		return decode(k, v)
	}
}
