package boltcheck

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestPreflight(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	db, err := bolt.Open(good, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("b"))
		for i := range 2000 {
			b.Put([]byte(strings.Repeat("k", 10)+string(rune(i))), make([]byte, 100))
		}
		return nil
	})
	db.Close()
	if err := Preflight(good); err != nil {
		t.Fatalf("valid file: %v", err)
	}
	if err := Preflight(filepath.Join(dir, "absent.db")); err != nil {
		t.Fatalf("missing file must be fine (bbolt creates it): %v", err)
	}
	content, _ := os.ReadFile(good)
	damagedMeta := append([]byte(nil), content...)
	for i := 16; i < 80; i++ {
		damagedMeta[i] ^= 0xff
	}
	for i := 4096 + 16; i < 4096+80; i++ {
		damagedMeta[i] ^= 0xff
	}
	bad := map[string][]byte{
		"truncated":          content[:len(content)/2],
		"empty":              {},
		"not bbolt":          []byte(strings.Repeat("hello ", 2000)),
		"both metas damaged": damagedMeta,
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.db")
			os.WriteFile(p, b, 0o600)
			err := Preflight(p)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
				t.Fatalf("Preflight = %v, want ErrCorrupt naming %s", err, p)
			}
		})
	}
}

// Preflight reads any bytes without panicking, and a file it passes
// opens and reads in bbolt without panicking either (bbolt panics on
// some damaged pages, some of them in goroutines no recover reaches:
// those are the pages Preflight must refuse first).
func FuzzPreflight(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "seed.db")
	db, err := bolt.Open(good, 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		f.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("b"))
		for i := range 300 {
			b.Put([]byte(strings.Repeat("k", 10)+string(rune(i))), make([]byte, 50))
		}
		n, _ := b.CreateBucket([]byte("inline"))
		n.Put([]byte("x"), []byte("y"))
		return nil
	})
	db.Close()
	seed, _ := os.ReadFile(good)
	f.Add(seed)
	f.Add(seed[:4096*2])
	f.Fuzz(func(t *testing.T, content []byte) {
		p := filepath.Join(t.TempDir(), "x.db")
		os.WriteFile(p, content, 0o600)
		if Preflight(p) != nil {
			return
		}
		db, err := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true, NoFreelistSync: true})
		if err != nil {
			return
		}
		defer db.Close()
		db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error { return nil })
			})
		})
	})
}
