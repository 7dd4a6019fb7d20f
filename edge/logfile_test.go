package edge

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func readTestFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogFileRotation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "logs", "task.stdout")
	l, err := openLogFile(p, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"aaaa", "bbbb", "cc", "dddd", "eeeeeeee", "ff"} {
		if n, err := l.Write([]byte(w)); err != nil || n != len(w) {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// aaaabbbbcc | dddd | eeeeeeeeff: three files, the oldest dropped at the
	// next rotation.
	if got := readTestFile(t, p); got != "eeeeeeeeff" {
		t.Errorf("current %q", got)
	}
	if got := readTestFile(t, p+".1"); got != "dddd" {
		t.Errorf(".1 %q", got)
	}
	if got := readTestFile(t, p+".2"); got != "aaaabbbbcc" {
		t.Errorf(".2 %q", got)
	}

	// Reopening appends; a write larger than the limit keeps its tail.
	l, err = openLogFile(p, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := l.Write([]byte("0123456789ABCDEF")); err != nil || n != 16 {
		t.Fatalf("large write = %d, %v", n, err)
	}
	l.Close()
	if got := readTestFile(t, p); got != "6789ABCDEF" {
		t.Errorf("after a large write: %q", got)
	}
	if got := readTestFile(t, p+".2"); got != "dddd" {
		t.Errorf(".2 after another rotation: %q", got)
	}
	if _, err := os.Stat(p + ".3"); err == nil {
		t.Error("kept more than 2 old files")
	}
	if _, err := l.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestLogFileKeepZero(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	l, err := openLogFile(p, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("abcd"))
	l.Write([]byte("ef"))
	l.Close()
	if got := readTestFile(t, p); got != "ef" {
		t.Errorf("got %q", got)
	}
	if _, err := os.Stat(p + ".1"); err == nil {
		t.Error("keep 0 kept an old file")
	}
}

func TestLogFileConcurrent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	l, err := openLogFile(p, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				l.Write([]byte("line\n"))
			}
		})
	}
	wg.Wait()
	l.Close()
	if got := readTestFile(t, p); got != strings.Repeat("line\n", 800) {
		t.Errorf("%d bytes, want 800 whole lines", len(got))
	}
}
