package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/testwasm"
)

// The end-to-end tests build the real binary and the example module,
// start `strata dev` as a child process on free loopback ports and drive
// it with the CLI, a DNS client and an HTTP client, as a user would.

var (
	buildOnce sync.Once
	strataBin string
	helloWasm string
	buildErr  error
)

func buildArtifacts(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		strataBin = filepath.Join(dir, "strata")
		helloWasm = filepath.Join(dir, "hello.wasm")
		root := repoRoot()
		cmd := exec.Command(testwasm.GoTool(), "build", "-o", strataBin, "./cmd/strata")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build strata: %v\n%s", err, out)
			return
		}
		var b []byte
		if b, buildErr = testwasm.Build(root, "./examples/hello"); buildErr == nil {
			buildErr = os.WriteFile(helloWasm, b, 0o644)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func repoRoot() string {
	wd, _ := os.Getwd() // cmd/strata
	return filepath.Join(wd, "..", "..")
}

// handedOut holds every port freePort has returned in this test binary.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
	rnd   *rand.Rand
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1 that no
// earlier call returned, chosen below the kernel's ephemeral range: the
// tests restart servers on the ports they had, and a port from bind(0)
// is an ephemeral one, which any outgoing connection (a Raft peer
// dialling out) may take as its source port while its server is down.
// Twice a restarted server found its DNS port taken that way.
func freePort(t *testing.T) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
		handedOut.rnd = rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	}
	lo, hi := 10000, ephemeralLow()
	for range 500 {
		port := lo + handedOut.rnd.IntN(hi-lo)
		if handedOut.ports[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// ephemeralLow is the first port of the kernel's ephemeral range
// (Linux's default 32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 11000 {
		return 32768
	}
	return n
}

// devProc is a running `strata dev`.
type devProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	out      *testutil.Buffer
	httpAddr string
	dnsAddr  string
	done     chan error
}

func startDev(t *testing.T, dataDir string, httpPort, dnsPort int, extra ...string) *devProc {
	t.Helper()
	d := &devProc{
		t: t, out: &testutil.Buffer{},
		httpAddr: fmt.Sprintf("127.0.0.1:%d", httpPort),
		dnsAddr:  fmt.Sprintf("127.0.0.1:%d", dnsPort),
		done:     make(chan error, 1),
	}
	d.cmd = exec.Command(strataBin, append([]string{"dev", "-data-dir", dataDir, "-http-addr", d.httpAddr, "-dns-addr", d.dnsAddr}, extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	logOnFailure(t, "strata dev", d.out) // after the stop below: its output too
	t.Cleanup(func() { d.stop() })

	// Process boundary: poll the API until it answers.
	testutil.Eventually(t, 60*time.Second, "strata dev answers its API", func() error {
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("strata dev exited early: %v", err)
		default:
		}
		resp, err := http.Get("http://" + d.httpAddr + "/v1/status/leader")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET /v1/status/leader: %s", resp.Status)
		}
		return nil
	})
	return d
}

// logOnFailure logs a process's output when the test has failed, whatever
// failed it: the output is where the reason is.
func logOnFailure(t *testing.T, name string, out *testutil.Buffer) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out)
		}
	})
}

// stop sends SIGTERM and waits for a clean exit.
func (d *devProc) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			d.t.Errorf("strata dev exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("strata dev did not stop within 30s of SIGTERM")
	}
}

type cliResult struct {
	stdout, stderr string
	code           int
}

func (d *devProc) cli(args ...string) cliResult {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, args...)
	cmd.Env = append(os.Environ(), "STRATA_ADDR=http://"+d.httpAddr)
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

func (d *devProc) mustCLI(args ...string) string {
	d.t.Helper()
	r := d.cli(args...)
	if r.code != 0 {
		d.t.Fatalf("strata %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func (d *devProc) getJSON(path string, v any) {
	d.t.Helper()
	resp, err := http.Get("http://" + d.httpAddr + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
}

// resolveSRV asks the dev DNS server for a service's SRV records and
// returns host:port pairs built from the SRV targets' A records.
func resolveSRV(t *testing.T, dnsAddr, name string) ([]string, error) {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeSRV)
	r, _, err := c.Exchange(m, dnsAddr)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	addrs := map[string]string{}
	for _, rr := range r.Extra {
		if a, ok := rr.(*dns.A); ok {
			addrs[strings.ToLower(a.Hdr.Name)] = a.A.String()
		}
	}
	var out []string
	for _, rr := range r.Answer {
		srv, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		ip, ok := addrs[strings.ToLower(srv.Target)]
		if !ok {
			return nil, fmt.Errorf("SRV target %s has no A record in the additional section", srv.Target)
		}
		out = append(out, net.JoinHostPort(ip, strconv.Itoa(int(srv.Port))))
	}
	if len(out) == 0 {
		return nil, errors.New("no SRV answers")
	}
	return out, nil
}

func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitServing polls DNS and then HTTP until the service answers (process
// boundary: bounded by a deadline).
func waitServing(t *testing.T, d *devProc, service, path string) string {
	t.Helper()
	var body string
	testutil.Eventually(t, 60*time.Second, service+" serves "+path, func() error {
		addrs, err := resolveSRV(t, d.dnsAddr, service)
		if err != nil {
			return err
		}
		code, b, err := httpGet("http://" + addrs[0] + path)
		if err == nil && code == 200 {
			body = b
			return nil
		}
		return fmt.Errorf("GET %s: %d %q %v", addrs[0], code, b, err)
	})
	return body
}

func TestEndToEndDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	buildArtifacts(t)
	dataDir := t.TempDir()
	httpPort, dnsPort := freePort(t), freePort(t)
	d := startDev(t, dataDir, httpPort, dnsPort)

	out := d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	if !strings.Contains(out, "hello@0.1.0 sha256:") {
		t.Fatalf("push did not print the digest: %q", out)
	}
	digest := strings.Fields(out)[1]

	jobFile := filepath.Join(repoRoot(), "examples", "hello", "hello.hcl")
	out = d.mustCLI("run", jobFile)
	if !strings.Contains(out, "1/1 allocations running") {
		t.Fatalf("run did not report the allocation running:\n%s", out)
	}

	// Resolve through the DNS server with a real client, then call it.
	addrs, err := resolveSRV(t, d.dnsAddr, "hello-web-hello.service.strata")
	if err != nil {
		// The check may not have passed yet: healthy-only answers.
		waitServing(t, d, "hello-web-hello.service.strata", "/")
		addrs, err = resolveSRV(t, d.dnsAddr, "hello-web-hello.service.strata")
		if err != nil {
			t.Fatal(err)
		}
	}
	code, body, err := httpGet("http://" + addrs[0] + "/x")
	if err != nil || code != 200 || body != "hello from /x\n" {
		t.Fatalf("GET /x at %s = %d %q %v; want 200 \"hello from /x\\n\"", addrs[0], code, body, err)
	}

	status := d.mustCLI("status", "hello")
	if !strings.Contains(status, "running") || !strings.Contains(status, addrs[0]) {
		t.Fatalf("status does not show the running allocation at %s:\n%s", addrs[0], status)
	}

	t.Run("bad input changes nothing", func(t *testing.T) {
		var modsBefore, jobsBefore []map[string]any
		d.getJSON("/v1/modules", &modsBefore)
		d.getJSON("/v1/jobs", &jobsBefore)

		bad := filepath.Join(t.TempDir(), "bad.hcl")
		os.WriteFile(bad, []byte("job \"broken\" {\n  group \"g\" {\n    count = \"three\"\n  }\n"), 0o644)
		r := d.cli("run", bad)
		if r.code != 1 || !strings.Contains(r.stderr, "bad.hcl:") {
			t.Errorf("malformed HCL: exit %d, stderr %q; want exit 1 and a file:line:col position", r.code, r.stderr)
		}

		missing := filepath.Join(t.TempDir(), "missing.hcl")
		src, _ := os.ReadFile(jobFile)
		os.WriteFile(missing, bytes.ReplaceAll(bytes.ReplaceAll(src, []byte(`job "hello"`), []byte(`job "ghost"`)),
			[]byte("hello@0.1.0"), []byte("nosuch@1.0.0")), 0o644)
		r = d.cli("run", missing)
		if r.code != 1 || !strings.Contains(r.stderr, "nosuch@1.0.0 does not exist") {
			t.Errorf("missing module: exit %d, stderr %q; want exit 1 naming the module", r.code, r.stderr)
		}

		notWasm := filepath.Join(t.TempDir(), "not.wasm")
		os.WriteFile(notWasm, []byte("#!/bin/sh\necho hi\n"), 0o644)
		r = d.cli("module", "push", notWasm, "-name", "junk", "-version", "1.0.0")
		if r.code != 1 || !strings.Contains(r.stderr, "not a WebAssembly module") {
			t.Errorf("non-wasm push: exit %d, stderr %q; want exit 1 saying it is not wasm", r.code, r.stderr)
		}

		// Versions are immutable: other bytes under the same name@version are refused.
		other := filepath.Join(t.TempDir(), "other.wasm")
		wasm, _ := os.ReadFile(helloWasm)
		os.WriteFile(other, append(wasm, 0, 1, 0), 0o644) // plus an empty custom section: still valid wasm
		r = d.cli("module", "push", other, "-name", "hello", "-version", "0.1.0")
		if r.code != 1 || !strings.Contains(r.stderr, "immutable") {
			t.Errorf("re-push with other bytes: exit %d, stderr %q; want refusal naming immutability", r.code, r.stderr)
		}
		// The same bytes again are accepted (idempotent) with the same digest.
		if out := d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0"); !strings.Contains(out, digest) {
			t.Errorf("re-push of identical bytes: %q, want digest %s", out, digest)
		}

		var modsAfter, jobsAfter []map[string]any
		d.getJSON("/v1/modules", &modsAfter)
		d.getJSON("/v1/jobs", &jobsAfter)
		if len(modsAfter) != len(modsBefore) || len(jobsAfter) != len(jobsBefore) {
			t.Errorf("bad input changed state: modules %d -> %d, jobs %d -> %d", len(modsBefore), len(modsAfter), len(jobsBefore), len(jobsAfter))
		}
	})

	t.Run("restart keeps job, module and versions", func(t *testing.T) {
		d.stop()
		d2 := startDev(t, dataDir, httpPort, dnsPort)
		// Not submitted again: the job comes back from the data dir.
		if body := waitServing(t, d2, "hello-web-hello.service.strata", "/again"); body != "hello from /again\n" {
			t.Fatalf("after restart GET /again = %q", body)
		}
		mods := d2.mustCLI("module", "list")
		if !strings.Contains(mods, "hello") || !strings.Contains(mods, "0.1.0") || !strings.Contains(mods, digest) {
			t.Fatalf("module list after restart lacks hello 0.1.0 %s:\n%s", digest, mods)
		}
		if st := d2.mustCLI("status"); !strings.Contains(st, "hello") || !strings.Contains(st, "running") {
			t.Fatalf("status after restart:\n%s", st)
		}
		out := d2.mustCLI("stop", "hello")
		if !strings.Contains(out, "stopped") {
			t.Fatalf("stop: %q", out)
		}
		// After stop the service leaves DNS.
		testutil.Eventually(t, 30*time.Second, "the stopped service leaves DNS", func() error {
			if addrs, err := resolveSRV(t, d2.dnsAddr, "hello-web-hello.service.strata"); err == nil {
				return fmt.Errorf("still resolves to %v", addrs)
			}
			return nil
		})
	})
}
