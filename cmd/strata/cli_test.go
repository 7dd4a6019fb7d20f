package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func runMain(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), &Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}, args)
	return code, out.String(), errb.String()
}

func TestParseInterspersedFlags(t *testing.T) {
	fs := newFlags(&Env{Stderr: &bytes.Buffer{}}, "x")
	name := fs.String("name", "", "")
	version := fs.String("version", "", "")
	pos, err := parse(fs, []string{"file.wasm", "-name", "hello", "-version", "1.0.0"})
	if err != nil || len(pos) != 1 || pos[0] != "file.wasm" || *name != "hello" || *version != "1.0.0" {
		t.Fatalf("parse = %v %v name=%q version=%q", pos, err, *name, *version)
	}
	pos, _ = parse(fs, []string{"-name", "a", "--", "-notaflag"})
	if len(pos) != 1 || pos[0] != "-notaflag" {
		t.Fatalf("after -- = %v", pos)
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, stderr := runMain(t, nil, "frobnicate")
	if code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "module push") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestValidate(t *testing.T) {
	code, out, stderr := runMain(t, nil, "validate", filepath.Join("..", "..", "examples", "hello", "hello.hcl"))
	if code != 0 || !strings.Contains(out, `Job "hello" is valid`) {
		t.Fatalf("valid file: exit %d, %q %q", code, out, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	os.WriteFile(bad, []byte("job \"x\" {\n  group \"g\" {\n    count = -1\n    task \"t\" {\n      driver = \"qemu\"\n    }\n  }\n}\n"), 0o644)
	code, _, stderr = runMain(t, nil, "validate", bad)
	if code != 1 {
		t.Fatalf("invalid file: exit %d", code)
	}
	for _, want := range []string{bad + ":3:", bad + ":5:", "^", "count = -1", "2 problem(s)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// A dead server gets an error naming the address and how to change it.
func TestDeadServer(t *testing.T) {
	code, _, stderr := runMain(t, map[string]string{"STRATA_ADDR": "http://127.0.0.1:1"}, "status")
	if code != 1 || !strings.Contains(stderr, "cannot reach the Strata API at http://127.0.0.1:1") || !strings.Contains(stderr, "STRATA_ADDR") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"module", "push", "x.wasm"},
		{"run"},
		{"stop"},
		{"status", "a", "b"},
	} {
		if code, _, stderr := runMain(t, nil, args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 with a message", args, code, stderr)
		}
	}
}

// A DNS domain or recursor the DNS server would refuse stops server and
// dev before anything starts, naming the flag.
func TestDNSFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"server", "-data-dir", t.TempDir(), "-dns-recursors", "dns.example.com"},
		{"server", "-data-dir", t.TempDir(), "-dns-recursors", "127.0.0.1:0"},
		{"dev", "-data-dir", t.TempDir(), "-dns-domain", "a..b"},
	} {
		code, _, stderr := runMain(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, "-dns-domain/-dns-recursors") {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming the flags", args, code, stderr)
		}
	}
}

// Several servers: STRATA_ADDR's list or -address repeated (the first
// -address replaces the variable's list); a call moves past a dead one.
func TestSeveralAddresses(t *testing.T) {
	var hits atomic.Int32
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("[]"))
	}))
	defer live.Close()
	dead := "http://127.0.0.1:1"
	if code, _, stderr := runMain(t, map[string]string{"STRATA_ADDR": dead + "," + live.URL}, "status"); code != 0 {
		t.Fatalf("STRATA_ADDR=dead,live: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runMain(t, map[string]string{"STRATA_ADDR": "http://127.0.0.1:2"}, "status", "-address", dead, "-address", live.URL); code != 0 {
		t.Fatalf("-address dead -address live: exit %d: %s", code, stderr)
	}
	if hits.Load() != 2 {
		t.Fatalf("the live server answered %d calls, want 2", hits.Load())
	}
	if code, _, stderr := runMain(t, nil, "status", "-address", ","); code != 2 || !strings.Contains(stderr, "empty address") {
		t.Fatalf("-address , : exit %d: %s", code, stderr)
	}
}
