package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/testutil"
)

// secureDev is a `strata dev -acl-enabled -http-tls` child process: the
// API over HTTPS only, with ACLs.
type secureDev struct {
	t        *testing.T
	cmd      *exec.Cmd
	out      *testutil.Buffer
	done     chan error
	httpAddr string
	caFile   string
	pin      string
}

func startSecureDev(t *testing.T) *secureDev {
	t.Helper()
	buildArtifacts(t)
	dir := t.TempDir()
	d := &secureDev{t: t, out: &testutil.Buffer{}, done: make(chan error, 1),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	d.cmd = exec.Command(strataBin, "dev", "-data-dir", dir, "-http-addr", d.httpAddr,
		"-dns-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-acl-enabled", "-http-tls", "-log-level", "warn")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	logOnFailure(t, "strata dev", d.out)
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
	})
	// Process boundary: the dev process prints where the CA is once its
	// API serves.
	re := regexp.MustCompile(`HTTPS:\s+the cluster CA's certificate is (\S+): clients take -ca-cert \S+ \(or -ca-pin (sha256:[0-9a-f]{64})\)`)
	testutil.Await(t, 60*time.Second, "strata dev -http-tls prints its CA", d.out.Changed, func() error {
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("strata dev exited early: %v", err)
		default:
		}
		m := re.FindStringSubmatch(d.out.String())
		if m == nil || !strings.Contains(d.out.String(), "ACLs:") { // the ACL line follows the CA's
			return errors.New("not printed yet")
		}
		d.caFile, d.pin = m[1], m[2]
		return nil
	})
	if !strings.Contains(d.out.String(), "HTTP API:  https://"+d.httpAddr) || !strings.Contains(d.out.String(), "ACLs:      enabled") {
		t.Fatalf("dev output does not announce HTTPS and ACLs:\n%s", d.out)
	}
	return d
}

// cli runs the real binary with env (KEY=VALUE) added to this process's.
func (d *secureDev) cli(env []string, args ...string) cliResult {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("strata %v: %v", args, err)
	}
	return cliResult{out.String(), errb.String(), code}
}

func (d *secureDev) must(env []string, args ...string) string {
	d.t.Helper()
	r := d.cli(env, args...)
	if r.code != 0 {
		d.t.Fatalf("strata %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// parse runs a read command (with -json) and decodes its output into v.
func (d *secureDev) parse(env []string, v any, args ...string) {
	d.t.Helper()
	out := d.must(env, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// refused runs a command that must fail with exit 1 and a message
// containing each of want.
func (d *secureDev) refused(env []string, want []string, args ...string) {
	d.t.Helper()
	r := d.cli(env, args...)
	if r.code != 1 {
		d.t.Fatalf("strata %s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			d.t.Errorf("strata %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
}

var secretRe = regexp.MustCompile(`Secret ID\s+= (\S+)`)

func secretIn(t *testing.T, out string) string {
	t.Helper()
	m := secretRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no Secret ID in:\n%s", out)
	}
	return m[1]
}

// Points 1 and 5 of issue 17 through the real binary: the API over HTTPS
// only (plain HTTP refused, the CLI verifying the server with the CA file
// or its pin), ACLs with a bootstrap once, a read-only token that reads
// and cannot stop a job or create a join token, a write token that
// deploys, a management token that does everything.
func TestEndToEndHTTPSAndACLs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	d := startSecureDev(t)
	https := "STRATA_ADDR=https://" + d.httpAddr
	ca := "STRATA_CACERT=" + d.caFile

	// Plain HTTP is refused, by a client and by the CLI (with a hint).
	resp, err := http.Get("http://" + d.httpAddr + "/v1/status/leader")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP: %s, want 400", resp.Status)
	}
	d.refused([]string{"STRATA_ADDR=http://" + d.httpAddr}, []string{"serves HTTPS only"}, "status")
	// HTTPS without the CA: the server is not trusted.
	d.refused([]string{https}, []string{"does not trust", "-ca-cert"}, "status")
	// A wrong pin is refused too.
	d.refused([]string{https, "STRATA_CAPIN=sha256:" + strings.Repeat("0", 64)}, []string{"pinned cluster CA"}, "status")

	// HTTPS with the CA, without a token: 403 naming what is missing.
	d.refused([]string{https, ca}, []string{"Permission denied", `"list-jobs"`, "no ACL token"}, "status")

	// Bootstrap once.
	mgmt := secretIn(t, d.must([]string{https, ca}, "acl", "bootstrap"))
	d.refused([]string{https, ca}, []string{"already done"}, "acl", "bootstrap")
	asMgmt := []string{https, ca, "STRATA_TOKEN=" + mgmt}
	if out := d.must(asMgmt, "status"); !strings.Contains(out, "No jobs.") {
		t.Fatalf("status with the management token:\n%s", out)
	}
	// The pin works instead of the CA file, and -token instead of STRATA_TOKEN.
	if out := d.must([]string{https, "STRATA_CAPIN=" + d.pin}, "status", "-token", mgmt); !strings.Contains(out, "No jobs.") {
		t.Fatalf("status with -ca-pin and -token:\n%s", out)
	}

	// Policies: a bad one is shown with its position and caret.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("namespace \"default\" {\n  policy = \"admin\"\n}\n"), 0o644)
	r := d.cli(asMgmt, "acl", "policy", "apply", "bad", bad)
	if r.code != 1 || !strings.Contains(r.stderr, bad+":2:12: Invalid policy") || !strings.Contains(r.stderr, "^^^^^^^") {
		t.Fatalf("bad policy: exit %d\n%s", r.code, r.stderr)
	}
	readers, writers := filepath.Join(dir, "readers.hcl"), filepath.Join(dir, "writers.hcl")
	os.WriteFile(readers, []byte("namespace \"default\" {\n  policy = \"read\"\n}\nnode {\n  policy = \"read\"\n}\nagent {\n  policy = \"read\"\n}\n"), 0o644)
	os.WriteFile(writers, []byte("namespace \"default\" {\n  policy = \"write\"\n}\n"), 0o644)
	d.must(asMgmt, "acl", "policy", "apply", "-description", "read only", "readers", readers)
	d.must(asMgmt, "acl", "policy", "apply", "writers", writers)
	if out := d.must(asMgmt, "acl", "policy", "list"); !strings.Contains(out, "readers") || !strings.Contains(out, "read only") {
		t.Fatalf("policy list:\n%s", out)
	}
	d.refused(asMgmt, []string{"between 1m0s and 24h0m0s"}, "acl", "token", "create", "-policy", "readers", "-ttl", "1ns")
	readTok := secretIn(t, d.must(asMgmt, "acl", "token", "create", "-name", "ci-read", "-policy", "readers", "-ttl", "1h"))
	writeTok := secretIn(t, d.must(asMgmt, "acl", "token", "create", "-name", "deployer", "-policy", "writers"))
	asRead := []string{https, ca, "STRATA_TOKEN=" + readTok}
	asWrite := []string{https, ca, "STRATA_TOKEN=" + writeTok}
	if out := d.must(asRead, "acl", "token", "self"); !strings.Contains(out, "ci-read") || strings.Contains(out, readTok) {
		t.Fatalf("token self (must not show the secret):\n%s", out)
	}
	// The ACL system's read commands print the API's JSON, or a template.
	var stubs []structs.ACLPolicyListStub
	d.parse(asMgmt, &stubs, "acl", "policy", "list", "-json")
	var policy structs.ACLPolicy
	d.parse(asMgmt, &policy, "acl", "policy", "info", "-json", "readers")
	var self structs.ACLToken
	d.parse(asRead, &self, "acl", "token", "self", "-json")
	var info structs.ACLToken
	d.parse(asMgmt, &info, "acl", "token", "info", "-json", self.AccessorID)
	var toks []structs.ACLToken
	d.parse(asMgmt, &toks, "acl", "token", "list", "-json")
	if len(stubs) != 2 || !strings.Contains(policy.Rules, `policy = "read"`) || self.Name != "ci-read" || self.SecretID != "" ||
		info.Name != "ci-read" || len(toks) != 3 {
		t.Fatalf("-json: policies %+v, readers %+v, self %+v, info %+v, %d tokens", stubs, policy, self, info, len(toks))
	}
	if out := d.must(asMgmt, "acl", "token", "list", "-t", "{{range .}}{{.Name}};{{end}}"); !strings.Contains(out, "ci-read;") || !strings.Contains(out, "deployer;") {
		t.Fatalf("token list -t: %q", out)
	}

	// The write token deploys; the read token reads it.
	d.must(asWrite, "module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	jobFile := filepath.Join(repoRoot(), "examples", "hello", "hello.hcl")
	if out := d.must(asWrite, "run", jobFile); !strings.Contains(out, "1/1 allocations running") {
		t.Fatalf("run with the write token:\n%s", out)
	}
	if out := d.must(asRead, "status", "hello"); !strings.Contains(out, "running") {
		t.Fatalf("status with the read token:\n%s", out)
	}
	if out := d.must(asRead, "node", "status"); !strings.Contains(out, "dev") {
		t.Fatalf("node status with the read token:\n%s", out)
	}
	// ... and can neither stop it nor mint a join token.
	d.refused(asRead, []string{"Permission denied", `"submit-job"`}, "stop", "hello")
	d.refused(asRead, []string{"Permission denied", "agent:write"}, "agent", "token", "create")
	// The write token has no agent rule either; management has everything.
	d.refused(asWrite, []string{"agent:write"}, "agent", "token", "create")
	if out := d.must(asMgmt, "agent", "token", "create"); !strings.Contains(out, "-join-token") {
		t.Fatalf("join token with the management token:\n%s", out)
	}
	// The operator's commands need Nomad's capabilities: the read token
	// sees an allocation but may not restart it, nor scale the job; only
	// management collects garbage; the servers' members are agent:read.
	var hello structs.JobAllocsResponse
	d.parse(asRead, &hello, "status", "-json", "hello")
	alloc := hello.Allocations[0].ID
	d.refused(asRead, []string{"Permission denied", `"alloc-lifecycle"`}, "alloc", "restart", alloc)
	d.refused(asRead, []string{"Permission denied", `"scale-job" or "submit-job"`}, "job", "scale", "hello", "2")
	d.refused(asWrite, []string{"Permission denied", "a management token"}, "system", "gc")
	if out := d.must(asWrite, "alloc", "restart", alloc); !strings.Contains(out, "Restarted") {
		t.Fatalf("alloc restart with the write token:\n%s", out)
	}
	var members structs.ServerMembers
	d.parse(asRead, &members, "server", "members", "-json")
	if len(members.Members) != 1 || members.Members[0].Status != structs.MemberAlive {
		t.Fatalf("server members -json: %+v", members)
	}
	if out := d.must(asMgmt, "system", "gc"); !strings.Contains(out, "Garbage collected") {
		t.Fatalf("system gc with the management token:\n%s", out)
	}
	d.refused(asRead, []string{"a management token"}, "acl", "token", "list")
	if out := d.must(asMgmt, "acl", "token", "list"); !strings.Contains(out, "ci-read") || !strings.Contains(out, "deployer") {
		t.Fatalf("token list:\n%s", out)
	}
	if out := d.must(asMgmt, "stop", "hello"); !strings.Contains(out, "stopped") {
		t.Fatalf("stop with the management token:\n%s", out)
	}
}
