package edge

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/registry"
)

// The catalog replica in agent.db: the last snapshot the servers sent, in
// the registry's binary encoding, and the deltas received since, each as
// received, keyed by the index it produces. Appending a delta costs its
// own bytes, not the catalog's; past maxStoredDeltas the snapshot is
// rewritten with them applied (compactCatalog).
var (
	bucketCatalog       = []byte("catalog")        // keyCatalogSnapshot -> registry snapshot bytes
	bucketCatalogDeltas = []byte("catalog-deltas") // big-endian index -> registry delta bytes
	keyCatalogSnapshot  = []byte("snapshot")
)

// maxStoredDeltas bounds the deltas kept beside the stored snapshot.
const maxStoredDeltas = 256

// saveCatalog replaces the stored replica with a snapshot's encoding.
func (l *localState) saveCatalog(snapshot []byte) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCatalog)
		if err != nil {
			return err
		}
		if err := b.Put(keyCatalogSnapshot, snapshot); err != nil {
			return err
		}
		if tx.Bucket(bucketCatalogDeltas) != nil {
			if err := tx.DeleteBucket(bucketCatalogDeltas); err != nil {
				return err
			}
		}
		_, err = tx.CreateBucket(bucketCatalogDeltas)
		return err
	})
}

// appendCatalogDelta stores a delta's encoding after the stored replica,
// and returns how many deltas are stored now.
func (l *localState) appendCatalogDelta(index uint64, delta []byte) (int, error) {
	n := 0
	err := l.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCatalogDeltas)
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, index), delta); err != nil {
			return err
		}
		n = b.Stats().KeyN
		return nil
	})
	return n, err
}

// loadCatalog returns the stored replica (nil if there is none): the
// snapshot with the stored deltas applied in order.
func (l *localState) loadCatalog() (*registry.Snapshot, error) {
	var snap *registry.Snapshot
	err := l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCatalog)
		if b == nil || b.Get(keyCatalogSnapshot) == nil {
			return nil
		}
		s, err := registry.DecodeSnapshot(b.Get(keyCatalogSnapshot))
		if err != nil {
			return fmt.Errorf("%w: catalog replica: %v", ErrCorruptLocalState, err)
		}
		if db := tx.Bucket(bucketCatalogDeltas); db != nil {
			err := db.ForEach(func(k, v []byte) error {
				d, err := registry.DecodeDelta(v)
				if err != nil {
					return fmt.Errorf("%w: catalog delta %x: %v", ErrCorruptLocalState, k, err)
				}
				if d.Index <= s.Index() {
					return nil // already in the snapshot
				}
				if s, err = s.Apply(d); err != nil {
					return fmt.Errorf("%w: catalog delta to %d: %v", ErrCorruptLocalState, d.Index, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		snap = s
		return nil
	})
	return snap, err
}
