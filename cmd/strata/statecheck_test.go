package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/spec"
)

// `operator state check` reports a good data dir's state and names the
// damaged file, with exit code 1, after damage to a record's field name
// that the page-level checks at start do not see.
func TestOperatorStateCheck(t *testing.T) {
	dir := t.TempDir()
	s, err := coordinator.New(coordinator.Config{DataDir: dir, Bootstrap: true, DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The cluster CA is created once the server leads.
	for {
		ch := s.Store().Watch()
		if s.CAPin() != "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no cluster CA within 20s")
		case <-ch:
		}
	}
	job := &spec.Job{ID: "web", Type: "service", Priority: 50, Groups: []*spec.Group{{Name: "g", Count: 1, Tasks: []*spec.Task{{
		Name: "t", Driver: "docker", Config: spec.TaskConfig{Image: "example/app:1"}, Resources: spec.Resources{CPU: 100, MemoryMB: 64}}}}}}
	if _, err := s.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runMain(t, nil, "operator", "state", "check", "-data-dir", dir)
	if code != 0 || !strings.Contains(out, filepath.Join(dir, "state.db")+": ok") || !strings.Contains(out, "raft.db: ok") {
		t.Fatalf("good data dir: exit %d\n%s%s", code, out, errs)
	}

	path := filepath.Join(dir, "state.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Every copy: bbolt's freed pages keep older copies of the record,
	// and the first one in the file is not always the live one.
	if !bytes.Contains(b, []byte(`"Image"`)) {
		t.Fatalf("no job record in %s", path)
	}
	b = bytes.ReplaceAll(b, []byte(`"Image"`), []byte(`"Hmage"`)) // still JSON, still valid pages
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runMain(t, nil, "operator", "state", "check", "-data-dir", dir)
	if code != 1 || !strings.Contains(errs, path) || !strings.Contains(errs, "unknown field") {
		t.Fatalf("damaged record: exit %d\n%s%s", code, out, errs)
	}
	if code, _, _ := runMain(t, nil, "operator", "state", "check"); code != 2 {
		t.Fatalf("without -data-dir: exit %d, want 2", code)
	}
}
