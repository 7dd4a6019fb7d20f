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
