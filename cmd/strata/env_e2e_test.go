package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/testwasm"
)

var (
	envWasmOnce sync.Once
	envWasm     string
	envWasmErr  error
)

// buildEnvWasm builds examples/env (a module that prints its environment).
func buildEnvWasm(t *testing.T) string {
	t.Helper()
	envWasmOnce.Do(func() {
		var b []byte
		if b, envWasmErr = testwasm.Build(repoRoot(), "./examples/env"); envWasmErr == nil {
			envWasm = filepath.Join(filepath.Dir(strataBin), "env.wasm")
			envWasmErr = os.WriteFile(envWasm, b, 0o644)
		}
	})
	if envWasmErr != nil {
		t.Fatal(envWasmErr)
	}
	return envWasm
}

// parseEnv reads the KEY=VALUE lines examples/env prints.
func parseEnv(body string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// Must-show 2: a job in Nomad's modern style (a group network port, a
// served wasm task naming it, a group service) whose env uses
// ${NOMAD_ALLOC_INDEX}: every allocation runs with its own index, and
// Nomad's runtime environment besides; a file naming an unknown runtime
// variable fails validate at its position.
func TestRuntimeEnvEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	buildArtifacts(t)
	wasm := buildEnvWasm(t)
	d := startDev(t, t.TempDir(), freePort(t), freePort(t))
	d.mustCLI("module", "push", wasm, "-name", "env", "-version", "0.1.0")
	jobFile := filepath.Join(repoRoot(), "examples", "env", "env.hcl")
	if out := d.mustCLI("run", jobFile); !strings.Contains(out, "3/3 allocations running") {
		t.Fatalf("run did not report 3 allocations running:\n%s", out)
	}

	var resp struct {
		Allocations []struct {
			ID, Name, ClientStatus, DesiredStatus string
			Index                                 int
			Ports                                 []struct {
				Label string
				Value int
			}
		}
	}
	d.getJSON("/v1/job/env/allocations", &resp)
	seen := map[string]bool{}
	for _, a := range resp.Allocations {
		if a.DesiredStatus != "run" {
			continue
		}
		if len(a.Ports) != 1 || a.Ports[0].Label != "http" {
			t.Fatalf("allocation %s has ports %+v, want the group's http", a.Name, a.Ports)
		}
		addr := "127.0.0.1:" + strconv.Itoa(a.Ports[0].Value)
		var env map[string]string
		testutil.Eventually(t, 60*time.Second, a.Name+" serves", func() error {
			code, body, err := httpGet("http://" + addr + "/")
			if err != nil || code != 200 {
				return fmt.Errorf("GET %s: %d %v", addr, code, err)
			}
			env = parseEnv(body)
			return nil
		})
		idx := strconv.Itoa(a.Index)
		want := map[string]string{
			"INDEX": idx, "NOMAD_ALLOC_INDEX": idx, "STRATA_ALLOC_INDEX": idx,
			"NOMAD_ALLOC_ID": a.ID, "NOMAD_ALLOC_NAME": a.Name, "NOMAD_JOB_NAME": "env", "NOMAD_JOB_ID": "env",
			"NOMAD_GROUP_NAME": "echo", "NOMAD_TASK_NAME": "env", "NOMAD_REGION": "global",
			"NOMAD_ALLOC_DIR": "/alloc", "NOMAD_TASK_DIR": "/local",
			"NOMAD_PORT_http": strconv.Itoa(a.Ports[0].Value), "NOMAD_ADDR_http": addr, "WHERE": addr,
			"NOMAD_HOST_PORT_http": strconv.Itoa(a.Ports[0].Value),
			"NOMAD_META_owner":     "examples", "OWNER": "examples",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s: %s = %q, want %q", a.Name, k, env[k], v)
			}
		}
		if env["NOMAD_DC"] == "" {
			t.Errorf("%s: NOMAD_DC is empty", a.Name)
		}
		if !strings.HasSuffix(a.Name, "["+idx+"]") || seen[idx] {
			t.Errorf("allocation %s has index %s: want its name's, once", a.Name, idx)
		}
		seen[idx] = true
	}
	if len(seen) != 3 {
		t.Fatalf("saw indexes %v, want 0, 1 and 2", seen)
	}

	// The group service names the group's port.
	waitServing(t, d, "env-echo.service.strata", "/")

	// An unknown runtime variable fails validate at its file:line:col.
	src, _ := os.ReadFile(jobFile)
	bad := filepath.Join(t.TempDir(), "typo.hcl")
	os.WriteFile(bad, []byte(strings.Replace(string(src), "${NOMAD_ALLOC_INDEX}", "${NOMAD_ALOC_INDEX}", 1)), 0o644)
	r := d.cli("validate", bad)
	if out := r.stdout + r.stderr; r.code != 1 || !strings.Contains(out, "typo.hcl:31:17: Invalid reference") || !strings.Contains(out, "unknown runtime variable ${NOMAD_ALOC_INDEX}") {
		t.Fatalf("validate of a typo: exit %d, output:\n%s\nwant exit 1 at typo.hcl:31:17 naming ${NOMAD_ALOC_INDEX}", r.code, out)
	}
}
