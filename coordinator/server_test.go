package coordinator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/state"
)

// A corrupt snapshot refuses the server's start, naming the file.
func TestCorruptSnapshotRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{DataDir: dir, Bootstrap: true, DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	waitLeading(t, s)
	if _, _, err := s.node.apply(&state.JobRegister{Job: dockerJob("web", nil)}); err != nil {
		t.Fatal(err)
	}
	if err := s.node.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	states, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	if len(states) != 1 {
		t.Fatalf("snapshots on disk: %v", states)
	}
	b, _ := os.ReadFile(states[0])
	b[len(b)/2] ^= 0xff
	os.WriteFile(states[0], b, 0o600)

	_, err = New(Config{DataDir: dir, Bootstrap: true, DevMode: true})
	if !errors.Is(err, state.ErrCorruptState) || !strings.Contains(err.Error(), filepath.Dir(states[0])) {
		t.Fatalf("start with a corrupt snapshot: %v; want ErrCorruptState naming %s", err, filepath.Dir(states[0]))
	}
}
