package main

import (
	"bytes"
	"errors"
	"fmt"
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
	waitNodes(t, d, 2)
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
	var addrs []string
	err := testutil.Poll(60*time.Second, testutil.DefaultTick, "the service's DNS answers settle", func() error {
		a, err := resolveSRV(t, d.dnsAddr, "hello-web-hello.service.strata")
		if err != nil {
			return err
		}
		slices.Sort(a)
		if !ok(a) {
			return fmt.Errorf("DNS answers %v", a)
		}
		addrs = a
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, d.mustCLI("status", "hello"))
	}
	return addrs
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
	logOnFailure(p.t, "agent "+p.name(), p.out)
	p.t.Cleanup(p.kill)
}

// name is the agent's -node-name.
func (p *agentProc) name() string {
	if i := slices.Index(p.args, "-node-name"); i >= 0 && i+1 < len(p.args) {
		return p.args[i+1]
	}
	return "(unnamed)"
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
	waitNodes(t, d, 1)
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	d.mustCLI("run", filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	addr := waitAddrs(t, d, func(a []string) bool { return len(a) == 1 })[0]

	agent.kill()
	srv.kill()
	start := time.Now()
	agent.start() // no server to talk to
	// A fine tick: the time is the measurement.
	if err := testutil.Poll(30*time.Second, 10*time.Millisecond, "the task comes back from local state", func() error {
		code, _, err := httpGet("http://" + addr + "/back")
		if err == nil && code != 200 {
			err = fmt.Errorf("GET /back: %d", code)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent restarted with no server reachable -> task serving again in %s", time.Since(start).Round(time.Millisecond))

	// The server returns: the agent reconnects, one allocation, running.
	srv.start()
	waitClusterLeader(t, []*serverProc{srv})
	testutil.Eventually(t, 60*time.Second, "one allocation, running, after the server returned", func() error {
		if st := d.mustCLI("status", "hello"); strings.Count(st, "hello.web[") != 1 || !strings.Contains(st, "running") {
			return fmt.Errorf("status:\n%s", st)
		}
		return nil
	})
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

// serverAgentAddr reads the agents' address and CA pin a server printed,
// waiting for the line as the server writes its output.
func serverAgentAddr(t *testing.T, srv *serverProc) (string, string) {
	t.Helper()
	pinRe := regexp.MustCompile(`Agents:\s+(\S+) \(quic\), CA pin (sha256:[0-9a-f]{64})`)
	var m []string
	testutil.Await(t, 10*time.Second, "the server prints its agent address and CA pin", srv.out.Changed, func() error {
		if m = pinRe.FindStringSubmatch(srv.out.String()); m == nil {
			return errors.New("not printed yet")
		}
		return nil
	})
	return m[1], m[2]
}
