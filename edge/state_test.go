package edge

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-run/strata/internal/wire"
)

// A damaged agent.db is moved aside, named in the log, and the agent
// starts with an empty state (the servers send its allocations again);
// never a panic. A sound file keeps what it held.
func TestDamagedLocalStateMovedAside(t *testing.T) {
	const page = 4096
	write := func(t *testing.T) (string, []byte) {
		path := filepath.Join(t.TempDir(), "agent.db")
		l, err := openLocalState(path)
		if err != nil {
			t.Fatal(err)
		}
		var allocs []wire.Alloc
		for i := range 200 {
			allocs = append(allocs, wire.Alloc{ID: fmt.Sprintf("alloc-%03d", i), JobID: strings.Repeat("j", 100)})
		}
		if err := l.save(allocs); err != nil {
			t.Fatal(err)
		}
		l.close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 8*page {
			t.Fatalf("agent.db is %d bytes: too small to damage meaningfully", len(b))
		}
		return path, b
	}
	damages := map[string]func([]byte) []byte{
		"truncated to half": func(b []byte) []byte { return b[:len(b)/2] },
		"zeroed pages":      func(b []byte) []byte { clear(b[2*page : 6*page]); return b },
		"zeroed meta pages": func(b []byte) []byte { clear(b[:2*page]); return b },
		"page ids flipped": func(b []byte) []byte {
			for p := 2; p < len(b)/page; p++ {
				b[p*page] ^= 0x5a
			}
			return b
		},
		"garbage": func(b []byte) []byte { return bytes.Repeat([]byte("garbage!"), len(b)/8) },
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			path, b := write(t)
			if err := os.WriteFile(path, damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			l, err := openLocalStateOrReset(path, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("damaged agent.db: %v", err)
			}
			defer l.close()
			if got, err := l.load(); err != nil || len(got) != 0 {
				t.Fatalf("the new state holds %d allocations (%v), want none", len(got), err)
			}
			aside, _ := filepath.Glob(path + ".damaged-*")
			if len(aside) != 1 || !strings.Contains(logs.String(), "file="+path) || !strings.Contains(logs.String(), aside[0]) {
				t.Fatalf("moved aside: %v; log: %s", aside, logs.String())
			}
		})
	}
	t.Run("sound", func(t *testing.T) {
		path, _ := write(t)
		var logs bytes.Buffer
		l, err := openLocalStateOrReset(path, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer l.close()
		if got, err := l.load(); err != nil || len(got) != 200 {
			t.Fatalf("a sound agent.db: %d allocations (%v), want 200", len(got), err)
		}
		if logs.Len() != 0 {
			t.Fatalf("a sound file was logged about: %s", logs.String())
		}
	})
}
