package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/testwasm"
)

// Point 6 of issue 17 through the real binary: an agent declares host
// volumes (shown by node status); a job that reads a read-only one reads
// it and cannot write it; a job asking for a volume no agent has stays
// unplaced with the reason counted; a job naming a host path is refused
// at validation, naming the replacement.
func TestEndToEndHostVolumes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	buildArtifacts(t)
	worker, err := testwasm.Build(repoRoot(), "./examples/worker")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	workerWasm := filepath.Join(dir, "worker.wasm")
	os.WriteFile(workerWasm, worker, 0o644)
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	os.WriteFile(filepath.Join(data, "f.txt"), []byte("hello\n"), 0o644)

	d := startDev(t, filepath.Join(dir, "dev"), freePort(t), freePort(t), "-host-volume", "example-data="+data+":ro")
	if out := d.mustCLI("node", "status"); !strings.Contains(out, "example-data="+data+"(ro)") {
		t.Fatalf("node status does not show the host volume:\n%s", out)
	}
	d.mustCLI("module", "push", workerWasm, "-name", "worker", "-version", "0.1.0")

	// The example job reads the read-only volume: its manifest lists the file.
	jobFile := filepath.Join(repoRoot(), "examples", "worker", "worker.hcl")
	d.mustCLI("run", "-detach", jobFile)
	alloc := waitAllocStatus(t, d, "worker", "complete")
	if out := d.mustCLI("alloc", "logs", alloc); !strings.Contains(out, "  /data/f.txt") {
		t.Fatalf("the worker's manifest does not list /data/f.txt:\n%s", out)
	}

	// The same job told to write into the volume fails on the write
	// (wazero's read-only mount refuses an open for writing with ENOSYS,
	// which a Go module reports as "Not implemented on wasip1").
	src, _ := os.ReadFile(jobFile)
	writer := filepath.Join(dir, "writer.hcl")
	os.WriteFile(writer, []byte(strings.NewReplacer(`job "worker"`, `job "writer"`,
		`args        = ["/data"]`, `args        = ["-out", "/data/MANIFEST", "/data"]`,
		`attempts = 1`, `attempts = 0`).Replace(string(src))), 0o644)
	d.mustCLI("run", "-detach", writer)
	alloc = waitAllocStatus(t, d, "writer", "failed")
	if out := d.mustCLI("alloc", "logs", "-stderr", alloc); !strings.Contains(out, "worker: open /data/MANIFEST: ") {
		t.Fatalf("the writer's stderr does not say the write was refused:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(data, "MANIFEST")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the read-only volume was written: %v", err)
	}

	// A volume no agent has: unplaced, with the reason counted.
	nowhere := filepath.Join(dir, "nowhere.hcl")
	os.WriteFile(nowhere, []byte(strings.NewReplacer(`job "worker"`, `job "nowhere"`,
		`source    = "example-data"`, `source    = "certs"`).Replace(string(src))), 0o644)
	r := d.cli("run", "-timeout", "1m", nowhere)
	if r.code != 1 || !strings.Contains(r.stderr, `group "batch": 1 unplaced`) || !strings.Contains(r.stderr, "missing host volume certs") {
		t.Fatalf("a job asking for a volume nobody has: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	// A raw host path is refused at validation, naming host volumes.
	raw := filepath.Join(dir, "raw.hcl")
	os.WriteFile(raw, []byte(`job "raw" {
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "worker@0.1.0"
        mode   = "command"
        mount {
          source = "/etc"
          target = "/etc"
        }
      }
    }
  }
}
`), 0o644)
	r = d.cli("run", raw)
	if r.code != 1 || !strings.Contains(r.stderr, raw+":8:9: Host path not allowed") || !strings.Contains(r.stderr, "-host-volume NAME=PATH") {
		t.Fatalf("a raw host path: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
}

var allocRow = regexp.MustCompile(`(?m)^(\S+)\s+\S+\s+\d+\s+\S+\s+\S+\s+(\S+)`)

// waitAllocStatus waits until the job's allocation reaches status and
// returns its ID as the CLI shows it (the binary is another process:
// polling `strata status` is the way to see it).
func waitAllocStatus(t *testing.T, d *devProc, job, status string) string {
	t.Helper()
	var id string
	testutil.Eventually(t, 2*time.Minute, fmt.Sprintf("job %s's allocation is %s", job, status), func() error {
		out := d.mustCLI("status", job)
		for _, m := range allocRow.FindAllStringSubmatch(out, -1) {
			if m[2] == status {
				id = m[1]
				return nil
			}
		}
		return fmt.Errorf("status:\n%s", out)
	})
	return id
}
