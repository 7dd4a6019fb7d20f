package fsutil

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestPersistentID(t *testing.T) {
	p := filepath.Join(t.TempDir(), "node-id")
	a, err := PersistentID(p)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(a) {
		t.Fatalf("ID %q is not a UUIDv4", a)
	}
	b, err := PersistentID(p)
	if err != nil || a != b {
		t.Fatalf("second read = %q %v, want the same ID %q", b, err, a)
	}
	os.WriteFile(p, []byte("  \n"), 0o600)
	if _, err := PersistentID(p); err == nil {
		t.Fatal("an empty ID file must be an error, not a silent new identity")
	}
}

func TestWriteFileSyncReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFileSync(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileSync(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "two" || fi.Mode().Perm() != 0o644 {
		t.Fatalf("content %q mode %v", b, fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}
