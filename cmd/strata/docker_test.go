package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/docker"
	"github.com/strata-run/strata/internal/testdocker"
	"github.com/strata-run/strata/internal/testutil"
)

// `strata dev` on a machine with a Docker Engine offers docker, runs a
// container job deployed with the CLI, serves it through DNS, and removes
// the container when the job stops.
func TestEndToEndDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	buildArtifacts(t)
	c, image := testdocker.Hello(t)
	job := fmt.Sprintf("e2e-docker-%d", time.Now().UnixNano()%1_000_000)
	jobContainers := func() []docker.Container {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		list, err := c.ContainerList(ctx, "strata.job="+job)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	t.Cleanup(func() { // runs after strata dev has stopped
		for _, ct := range jobContainers() {
			t.Errorf("container %s left behind", ct.Names)
			c.ContainerRemove(context.Background(), ct.ID, true)
		}
	})
	d := startDev(t, t.TempDir(), freePort(t), freePort(t))

	var nodes string
	testutil.Eventually(t, 30*time.Second, "a ready node", func() error {
		if nodes = d.mustCLI("node", "status"); !strings.Contains(nodes, "ready") {
			return fmt.Errorf("node status:\n%s", nodes)
		}
		return nil
	})
	if !strings.Contains(nodes, "Drivers") || !strings.Contains(nodes, "docker,wasm") {
		t.Fatalf("node status does not offer docker:\n%s", nodes)
	}

	src := fmt.Sprintf(`job %q {
  group "web" {
    task "hello" {
      driver = "docker"
      config {
        image = %q
      }
      env {
        PORT = "${STRATA_PORT_http}"
      }
      resources {
        cpu    = 100
        memory = 32
        network {
          port "http" {}
        }
      }
      service {
        port = "http"
        check {
          type     = "http"
          path     = "/"
          interval = "1s"
          timeout  = "1s"
        }
      }
    }
  }
}
`, job, image)
	jobFile := filepath.Join(t.TempDir(), "docker.hcl")
	if err := os.WriteFile(jobFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := d.mustCLI("run", jobFile); !strings.Contains(out, "1/1 allocations running") {
		t.Fatalf("run:\n%s", out)
	}
	if body := waitServing(t, d, job+"-web-hello.service.strata", "/x"); body != "hello from /x\n" {
		t.Fatalf("body %q", body)
	}
	if n := len(jobContainers()); n != 1 {
		t.Fatalf("%d containers of the job, want 1", n)
	}
	var allocs struct {
		Allocations []struct{ ID string }
	}
	d.getJSON("/v1/job/"+job+"/allocations", &allocs)
	if len(allocs.Allocations) != 1 {
		t.Fatalf("allocations %+v", allocs)
	}
	id := allocs.Allocations[0].ID
	if out := d.mustCLI("alloc", "status", id); !strings.Contains(out, "Container ") || !strings.Contains(out, image) {
		t.Errorf("alloc status does not show the container's start:\n%s", out)
	}
	// The container's output reaches the log file through the daemon's log
	// stream: soon, not at once.
	testutil.Eventually(t, 10*time.Second, "alloc logs -stderr shows the request", func() error {
		if out := d.mustCLI("alloc", "logs", "-stderr", id, "hello"); !strings.Contains(out, "hello: GET /x") {
			return fmt.Errorf("alloc logs -stderr:\n%s", out)
		}
		return nil
	})
	d.mustCLI("stop", job)
	testutil.Eventually(t, 30*time.Second, "the job's container is removed after strata stop", func() error {
		if cs := jobContainers(); len(cs) != 0 {
			return fmt.Errorf("containers %+v", cs)
		}
		return nil
	})
}
