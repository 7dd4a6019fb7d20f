package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/testutil"
)

// A server and two agent processes: the example job with count 2 lands
// on both nodes; an agent killed with SIGKILL has its copy replaced on
// the other node, and DNS follows.
func TestAgentsServeAndFailOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes")
	}
	srv, agentAddr, pin := startSingleServer(t)
	dnsAddr := srv.args[slices.Index(srv.args, "-dns-addr")+1]

	agents := map[string]*agentProc{}
	for _, a := range []struct{ name, ip string }{{"edge-1", "127.0.0.1"}, {"edge-2", "127.0.0.2"}} {
		p := &agentProc{t: t, args: []string{"agent", "-servers", agentAddr, "-ca-pin", pin, "-join-token", joinToken(t, srv), "-data-dir", t.TempDir(),
			"-node-name", a.name, "-bind", a.ip, "-log-level", "warn"}}
		p.start()
		agents[a.name] = p
	}
	d := &devProc{t: t, httpAddr: srv.httpAddr, dnsAddr: dnsAddr, out: srv.out}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if out := d.mustCLI("node", "status"); strings.Count(out, "ready") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents did not register:\n%s", d.mustCLI("node", "status"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	src, _ := os.ReadFile(filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	job := filepath.Join(t.TempDir(), "hello2.hcl")
	os.WriteFile(job, bytes.Replace(src, []byte("count = 1"), []byte("count = 2"), 1), 0o644)
	d.mustCLI("run", job)

	// Both nodes serve a copy: two SRV answers on two addresses.
	addrs := waitAddrs(t, d, func(a []string) bool { return len(a) == 2 && ip(a[0]) != ip(a[1]) })
	for _, a := range addrs {
		if code, body, err := httpGet("http://" + a + "/n"); err != nil || code != 200 || body != "hello from /n\n" {
			t.Fatalf("GET %s: %d %q %v", a, code, body, err)
		}
	}

	// Kill edge-2's process: its copy is replaced on edge-1.
	start := time.Now()
	agents["edge-2"].kill()
	addrs = waitAddrs(t, d, func(a []string) bool {
		return len(a) == 2 && ip(a[0]) == "127.0.0.1" && ip(a[1]) == "127.0.0.1"
	})
	t.Logf("agent killed -> both copies served by the survivor in %s", time.Since(start).Round(time.Millisecond))
	for _, a := range addrs {
		if code, _, err := httpGet("http://" + a + "/after"); err != nil || code != 200 {
			t.Fatalf("GET %s after failover: %d %v", a, code, err)
		}
	}
}

func ip(hostport string) string {
	h, _, _ := strings.Cut(hostport, ":")
	return h
}

// waitAddrs polls DNS until the service's SRV answers satisfy ok (bounded:
// the default heartbeat TTL is 5s + 3s grace).
func waitAddrs(t *testing.T, d *devProc, ok func([]string) bool) []string {
	t.Helper()
	var last []string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		a, err := resolveSRV(t, d.dnsAddr, "hello-web-hello.service.strata")
		if err == nil {
			slices.Sort(a)
			last = a
			if ok(a) {
				return a
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("DNS answers never settled; last %v\n%s", last, d.mustCLI("status", "hello"))
	return nil
}

type agentProc struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd
	out  *testutil.Buffer
	done chan error
}

func (p *agentProc) start() {
	p.out, p.done = &testutil.Buffer{}, make(chan error, 1)
	p.cmd = exec.Command(strataBin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	p.t.Cleanup(p.kill)
}

// startAgent starts an agent process for node name, its tasks bound to
// bind, dialing servers (comma-separated) with the cluster's CA pin;
// extra flags come last and win.
func startAgent(t *testing.T, srv *serverProc, name, bind, servers, pin string, extra ...string) *agentProc {
	t.Helper()
	p := &agentProc{t: t, args: append([]string{"agent", "-servers", servers, "-ca-pin", pin, "-join-token", joinToken(t, srv), "-data-dir", t.TempDir(),
		"-node-name", name, "-bind", bind, "-log-level", "warn"}, extra...)}
	p.start()
	return p
}

func (p *agentProc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// An agent killed with SIGKILL and restarted while no server is reachable
// brings its wasm task back from local state; when the server returns,
// nothing is duplicated.
func TestAgentRestoresTasksWithoutServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes")
	}
	srv, agentAddr, pin := startSingleServer(t)
	agent := &agentProc{t: t, args: []string{"agent", "-servers", agentAddr, "-ca-pin", pin, "-join-token", joinToken(t, srv), "-data-dir", t.TempDir(),
		"-node-name", "edge-1", "-log-level", "warn"}}
	agent.start()
	d := &devProc{t: t, httpAddr: srv.httpAddr, dnsAddr: srv.args[slices.Index(srv.args, "-dns-addr")+1], out: srv.out}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(d.mustCLI("node", "status"), "ready"); {
		if time.Now().After(deadline) {
			t.Fatal("agent did not register")
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	d.mustCLI("run", filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	addr := waitAddrs(t, d, func(a []string) bool { return len(a) == 1 })[0]

	agent.kill()
	srv.kill()
	start := time.Now()
	agent.start() // no server to talk to
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _, err := httpGet("http://" + addr + "/back"); err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task did not come back from local state within 30s:\n%s", agent.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("agent restarted with no server reachable -> task serving again in %s", time.Since(start).Round(time.Millisecond))

	// The server returns: the agent reconnects, one allocation, running.
	srv.start()
	waitClusterLeader(t, []*serverProc{srv})
	for deadline := time.Now().Add(60 * time.Second); ; {
		st := d.mustCLI("status", "hello")
		if strings.Count(st, "hello.web[") == 1 && strings.Contains(st, "running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the server returned:\n%s", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body, err := httpGet("http://" + addr + "/again"); err != nil || code != 200 || body != "hello from /again\n" {
		t.Fatalf("after reconnect: %d %q %v", code, body, err)
	}
}

// joinToken creates a one-time join token with the CLI and returns its
// secret. (An agent keeps the certificate it gets with it, so a restart
// on the same data dir does not spend another.)
func joinToken(t *testing.T, srv *serverProc) string {
	t.Helper()
	d := &devProc{t: t, httpAddr: srv.httpAddr, out: srv.out}
	m := regexp.MustCompile(`-join-token (\S+)`).FindStringSubmatch(d.mustCLI("agent", "token", "create"))
	if m == nil {
		t.Fatal("`strata agent token create` printed no -join-token")
	}
	return m[1]
}

// startSingleServer starts a one-server cluster (with extra flags) and
// returns it with the agents' address and CA pin it printed.
func startSingleServer(t *testing.T, extra ...string) (*serverProc, string, string) {
	t.Helper()
	buildArtifacts(t)
	srv := newServerProc(t, "server")
	srv.start(append([]string{"-bootstrap-expect", "1"}, extra...)...)
	waitClusterLeader(t, []*serverProc{srv})
	addr, pin := serverAgentAddr(t, srv)
	return srv, addr, pin
}

// serverAgentAddr reads the agents' address and CA pin a server printed.
func serverAgentAddr(t *testing.T, srv *serverProc) (string, string) {
	t.Helper()
	pinRe := regexp.MustCompile(`Agents:\s+(\S+) \(quic\), CA pin (sha256:[0-9a-f]{64})`)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if m := pinRe.FindStringSubmatch(srv.out.String()); m != nil {
			return m[1], m[2]
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not print its agent address and CA pin:\n%s", srv.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
