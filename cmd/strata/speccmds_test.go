package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-run/strata/spec"
)

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestJobInit(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)

	code, out, stderr := runMain(t, nil, "job", "init")
	if code != 0 || !strings.Contains(out, "example.hcl") {
		t.Fatalf("job init: exit %d, %q %q", code, out, stderr)
	}
	src, err := os.ReadFile("example.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, []byte(exampleJob)) {
		t.Error("example.hcl is not the example job")
	}
	// It validates, and it is already in canonical form.
	if code, out, stderr := runMain(t, nil, "validate", "example.hcl"); code != 0 || !strings.Contains(out, `Job "example" is valid`) {
		t.Errorf("validate example.hcl: exit %d, %q %q", code, out, stderr)
	}
	if code, out, stderr := runMain(t, nil, "fmt", "-check", "example.hcl"); code != 0 || out != "" {
		t.Errorf("fmt -check example.hcl: exit %d, %q %q", code, out, stderr)
	}

	// It never overwrites.
	writeFile(t, "example.hcl", "mine")
	code, _, stderr = runMain(t, nil, "job", "init")
	if code != 1 || !strings.Contains(stderr, "example.hcl already exists") {
		t.Errorf("second job init: exit %d, %q", code, stderr)
	}
	if b, _ := os.ReadFile("example.hcl"); string(b) != "mine" {
		t.Errorf("job init overwrote the file: %q", b)
	}

	// A name of one's own.
	code, _, stderr = runMain(t, nil, "job", "init", filepath.Join(dir, "web.hcl"))
	if code != 0 {
		t.Fatalf("job init web.hcl: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runMain(t, nil, "validate", "web.hcl", "-var", "replicas=4"); code != 0 {
		t.Errorf("validate web.hcl -var replicas=4: exit %d, %q", code, stderr)
	}
	if code, _, _ := runMain(t, nil, "job", "init", "a.hcl", "b.hcl"); code != 2 {
		t.Errorf("job init with two names: exit %d, want 2", code)
	}
}

// fmt over every spec test file: files with a syntax error are refused
// with their diagnostics; the others are rewritten once, after which fmt
// changes nothing and -check passes.
func TestFmtTestdata(t *testing.T) {
	srcs, err := filepath.Glob(filepath.Join("..", "..", "spec", "testdata", "*.hcl"))
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no spec testdata: %v", err)
	}
	dir := t.TempDir()
	var good, bad []string
	for _, s := range srcs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(s))
		writeFile(t, dst, string(b))
		if _, err := spec.FormatSource(dst, b); err != nil {
			bad = append(bad, dst)
		} else {
			good = append(good, dst)
		}
	}
	if len(bad) == 0 || len(good) < 10 {
		t.Fatalf("%d formattable files, %d with syntax errors: the testdata changed", len(good), len(bad))
	}

	code, _, stderr := runMain(t, nil, append([]string{"fmt"}, bad...)...)
	if code != 1 || !strings.Contains(stderr, "^") || !strings.Contains(stderr, "could not be formatted") {
		t.Errorf("fmt of files with syntax errors: exit %d, %q", code, stderr)
	}

	if code, _, stderr := runMain(t, nil, append([]string{"fmt"}, good...)...); code != 0 {
		t.Fatalf("fmt: exit %d, %q", code, stderr)
	}
	before := map[string]string{}
	for _, f := range good {
		b, _ := os.ReadFile(f)
		before[f] = string(b)
	}
	code, out, stderr := runMain(t, nil, append([]string{"fmt"}, good...)...)
	if code != 0 || out != "" {
		t.Errorf("second fmt changed files: exit %d, %q %q", code, out, stderr)
	}
	for _, f := range good {
		if b, _ := os.ReadFile(f); string(b) != before[f] {
			t.Errorf("second fmt rewrote %s", f)
		}
	}
	if code, out, stderr := runMain(t, nil, append([]string{"fmt", "-check"}, good...)...); code != 0 || out != "" {
		t.Errorf("fmt -check after fmt: exit %d, %q %q", code, out, stderr)
	}
}

func TestFmtCheck(t *testing.T) {
	dir := t.TempDir()
	messy := filepath.Join(dir, "messy.hcl")
	tidy := filepath.Join(dir, "tidy.hcl")
	writeFile(t, messy, "job \"x\" {\n      group \"g\" {\n  count=1\n  }\n}\n")
	writeFile(t, tidy, "job \"x\" {\n  group \"g\" {\n    count = 1\n  }\n}\n")

	code, out, stderr := runMain(t, nil, "fmt", "-check", messy, tidy)
	if code != 1 || out != messy+"\n" || !strings.Contains(stderr, "1 file(s) not in canonical form") {
		t.Errorf("fmt -check: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if b, _ := os.ReadFile(messy); !strings.Contains(string(b), "count=1") {
		t.Error("fmt -check rewrote a file")
	}

	code, out, _ = runMain(t, nil, "fmt", messy, tidy)
	if code != 0 || out != messy+"\n" {
		t.Errorf("fmt: exit %d, stdout %q", code, out)
	}
	if b, _ := os.ReadFile(messy); string(b) != "job \"x\" {\n  group \"g\" {\n    count = 1\n  }\n}\n" {
		t.Errorf("formatted:\n%s", b)
	}
	if code, _, _ := runMain(t, nil, "fmt"); code != 2 {
		t.Errorf("fmt without files: exit %d, want 2", code)
	}
	if code, _, stderr := runMain(t, nil, "fmt", filepath.Join(dir, "missing.hcl")); code != 1 || !strings.Contains(stderr, "missing.hcl") {
		t.Errorf("fmt of a missing file: exit %d, %q", code, stderr)
	}
}

func TestInspect(t *testing.T) {
	job := filepath.Join("..", "..", "spec", "testdata", "variables.hcl")
	code, out, stderr := runMain(t, nil, "inspect", job, "-var", "replicas=5")
	if code != 0 {
		t.Fatalf("inspect: exit %d, %q", code, stderr)
	}
	var j spec.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("inspect printed no job: %v\n%s", err, out)
	}
	g := j.Groups[0]
	if j.ID != "web" || g.Count != 5 || g.Update.Stagger.String() != "30s" || g.Tasks[0].KillTimeout.String() != "5s" ||
		g.Reschedule.DelayFunction != "exponential" || g.Tasks[0].Config.Args[1] != "${STRATA_PORT_http}" {
		t.Errorf("inspect does not show the defaults and the -var:\n%s", out)
	}
	if !strings.Contains(out, "\n  \"Groups\": [") {
		t.Errorf("inspect output is not indented JSON:\n%s", out)
	}

	code, _, stderr = runMain(t, nil, "inspect", job, "-var", "nope=1")
	if code != 1 || !strings.Contains(stderr, `declares no variable "nope"`) {
		t.Errorf("inspect -var nope=1: exit %d, %q", code, stderr)
	}
	if code, _, _ := runMain(t, nil, "inspect"); code != 2 {
		t.Errorf("inspect without a file: exit %d, want 2", code)
	}
}

func TestValidateVars(t *testing.T) {
	dir := t.TempDir()
	job := filepath.Join("..", "..", "spec", "testdata", "variables.hcl")
	prod := filepath.Join(dir, "prod.hcl")
	writeFile(t, prod, "replicas = 3\nregion = \"eu\"\n")

	code, _, stderr := runMain(t, nil, "validate", "-var-file", prod, job)
	if code != 1 || !strings.Contains(stderr, prod+":2:1: Undeclared variable") || !strings.Contains(stderr, `region = "eu"`) {
		t.Errorf("validate with a bad -var-file: exit %d, stderr:\n%s", code, stderr)
	}

	writeFile(t, prod, "replicas = 3\n")
	code, out, stderr := runMain(t, nil, "validate", "-var-file", prod, "-var", "tag=1.0", job)
	if code != 0 || !strings.Contains(out, `Job "web" is valid`) {
		t.Errorf("validate with vars: exit %d, %q %q", code, out, stderr)
	}
	code, _, stderr = runMain(t, nil, "validate", "-var-file", filepath.Join(dir, "none.hcl"), job)
	if code != 1 || !strings.Contains(stderr, "-var-file") || !strings.Contains(stderr, "none.hcl") {
		t.Errorf("validate with a missing -var-file: exit %d, %q", code, stderr)
	}
	code, _, stderr = runMain(t, nil, "validate", "-var", "replicas=x", job)
	if code != 1 || !strings.Contains(stderr, `Invalid value for variable`) {
		t.Errorf("validate -var replicas=x: exit %d, %q", code, stderr)
	}
}

// An oversized job file is refused by name, without reading it all.
func TestValidateTooLarge(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.hcl")
	writeFile(t, big, strings.Repeat("# padding\n", spec.MaxFileSize/10+1))
	code, _, stderr := runMain(t, nil, "validate", big)
	if code != 1 || !strings.Contains(stderr, "File too large") {
		t.Errorf("validate big.hcl: exit %d, %q", code, stderr)
	}
}
