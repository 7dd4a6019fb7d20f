package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/testutil"
)

// Issue 16, must-show 1: an agent with -dns-addr answers a 3-instance
// service from its replica of the catalog; the server is killed with
// SIGKILL and the agent still answers all 3 a full minute later; the
// agent is killed and restarted with no server reachable and answers from
// disk within 2 s; the server comes back, the job is scaled to 5, and the
// agent's answer follows the server's within 2 s.
func TestAgentDNSWithoutTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes, and waits a minute")
	}
	srv, agentAddr, pin := startSingleServer(t)
	serverDNS := srv.args[slices.Index(srv.args, "-dns-addr")+1]
	agentDNS := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	agent := &agentProc{t: t, args: []string{"agent", "-servers", agentAddr, "-ca-pin", pin, "-join-token", joinToken(t, srv), "-data-dir", t.TempDir(),
		"-node-name", "edge-1", "-log-level", "warn", "-dns-addr", agentDNS}}
	agent.start()
	d := &devProc{t: t, httpAddr: srv.httpAddr, dnsAddr: serverDNS, out: srv.out}
	waitNodes(t, d, 1)
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	src, _ := os.ReadFile(filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	job := filepath.Join(t.TempDir(), "hello3.hcl")
	os.WriteFile(job, bytes.Replace(src, []byte("count = 1"), []byte("count = 3"), 1), 0o644)
	d.mustCLI("run", job)

	const name = "hello-web-hello.service.strata"
	answers := func(dnsAddr string) []string {
		a, _ := resolveSRV(t, dnsAddr, name)
		slices.Sort(a)
		return a
	}
	var three []string
	testutil.Eventually(t, 60*time.Second, "the agent's DNS answers the 3 instances", func() error {
		if three = answers(agentDNS); len(three) != 3 {
			return fmt.Errorf("the agent answers %v", three)
		}
		return nil
	})

	// The server dies: the agent answers from its replica, a minute on.
	srv.kill()
	killed := time.Now()
	for time.Since(killed) < 60*time.Second {
		if got := answers(agentDNS); !slices.Equal(got, three) {
			t.Fatalf("%s after the server was killed the agent answers %v, want %v", time.Since(killed).Round(time.Second), got, three)
		}
		time.Sleep(5 * time.Second) // sampling a minute of real time: the must-show
	}
	if got := answers(agentDNS); !slices.Equal(got, three) {
		t.Fatalf("60 s after the server was killed the agent answers %v, want %v", got, three)
	}

	// The agent dies too, and comes back with no server: it answers from disk.
	agent.kill()
	restarted := time.Now()
	agent.start()
	if err := testutil.Poll(2*time.Second, 10*time.Millisecond, "the restarted agent answers from disk", func() error {
		if got := answers(agentDNS); !slices.Equal(got, three) {
			return fmt.Errorf("the restarted agent answers %v, want %v", got, three)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent restarted with no server -> answering all 3 from disk in %s", time.Since(restarted).Round(time.Millisecond))

	// The server returns; scale to 5: the agent's answer follows the server's.
	srv.start()
	waitClusterLeader(t, []*serverProc{srv})
	waitNodes(t, d, 1)
	scaled := time.Now()
	d.mustCLI("job", "scale", "hello", "web", "5")
	var serverAt time.Time
	if err := testutil.Poll(60*time.Second, 10*time.Millisecond, "the agent answers the 5 instances", func() error {
		if serverAt.IsZero() && len(answers(serverDNS)) == 5 {
			serverAt = time.Now()
		}
		if got := answers(agentDNS); len(got) != 5 {
			return fmt.Errorf("the agent answers %v", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	agentAt := time.Now()
	if serverAt.IsZero() {
		serverAt = agentAt // both seen in the same poll
	}
	t.Logf("scaled to 5 -> the server answers 5 in %s, the agent %s later", serverAt.Sub(scaled).Round(time.Millisecond), agentAt.Sub(serverAt).Round(time.Millisecond))
	if lag := agentAt.Sub(serverAt); lag > 2*time.Second {
		t.Fatalf("the agent's answer followed the server's %s later, want within 2 s", lag)
	}
}

// DNS settings the agent would not honour are refused: a domain or
// recursors without an address to serve on, a recursor that is not one.
func TestAgentDNSFlagsRefused(t *testing.T) {
	pin := "sha256:" + strings.Repeat("0", 64)
	base := []string{"agent", "-servers", "127.0.0.1:1", "-ca-pin", pin, "-join-token", "a.b", "-data-dir", t.TempDir()}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-dns-domain", "consul"}, 2, "-dns-domain and -dns-recursors need -dns-addr"},
		{[]string{"-dns-recursors", "10.0.0.53"}, 2, "-dns-domain and -dns-recursors need -dns-addr"},
		{[]string{"-dns-addr", "127.0.0.1:0", "-dns-recursors", "resolver.example"}, 1, "resolver.example"},
		{[]string{"-dns-addr", "127.0.0.1:0", "-dns-domain", "bad..domain"}, 1, "bad..domain"},
	} {
		code, _, stderr := runMain(t, nil, append(slices.Clone(base), tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("agent %v: exit %d, stderr %q; want exit %d naming %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}
