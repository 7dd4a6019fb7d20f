package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/testutil"
)

// Agents join with a token and then use the certificate they got: the
// command line `agent token create` prints works as printed, a restart
// needs no token, and a bad, spent or revoked token or a wrong CA pin
// stops the agent with the reason.
func TestAgentJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes")
	}
	srv, agentAddr, pin := startSingleServer(t)
	d := &devProc{t: t, httpAddr: srv.httpAddr, out: srv.out}

	out := d.mustCLI("agent", "token", "create", "-description", "edge-1")
	m := regexp.MustCompile(`strata (agent -servers (\S+) -join-token (\S+) -ca-pin (\S+)) -data-dir`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("token create did not print a ready-to-paste agent command line:\n%s", out)
	}
	if m[2] != agentAddr || m[4] != pin {
		t.Fatalf("printed servers %s and pin %s, want %s and %s", m[2], m[4], agentAddr, pin)
	}
	token := m[3]

	// The printed command line, as printed, plus where to keep data.
	dir := t.TempDir()
	args := append(strings.Fields(m[1]), "-data-dir", dir, "-node-name", "edge-1", "-log-level", "warn")
	agent := &agentProc{t: t, args: args}
	agent.start()
	waitNodes(t, d, 1)
	for _, f := range []string{"agent.crt", "agent.key"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s after joining: %v %v, want a 0600 file", f, fi, err)
		}
	}
	list := d.mustCLI("agent", "token", "list")
	if !strings.Contains(list, "one-time") || !strings.Contains(list, "edge-1") || strings.Contains(list, token) {
		t.Fatalf("token list after the join:\n%s", list)
	}

	// Restarted without any token: its certificate is its identity.
	agent.kill()
	agent.args = []string{"agent", "-servers", agentAddr, "-ca-pin", pin, "-data-dir", dir, "-node-name", "edge-1", "-log-level", "info"}
	agent.start()
	testutil.Await(t, 30*time.Second, "the agent restarted without a token logs its registration", agent.out.Changed, func() error {
		if !strings.Contains(agent.out.String(), "msg=registered") {
			return errors.New("no registered line yet")
		}
		return nil
	})
	if strings.Contains(agent.out.String(), "joined the cluster") {
		t.Fatalf("the restarted agent joined again instead of using its certificate:\n%s", agent.out)
	}

	refused := func(name, token, pin, want string) {
		t.Helper()
		p := &agentProc{t: t, args: []string{"agent", "-servers", agentAddr, "-ca-pin", pin, "-join-token", token,
			"-data-dir", t.TempDir(), "-node-name", name}}
		p.start()
		select {
		case err := <-p.done:
			p.done <- err
			if err == nil {
				t.Fatalf("%s: the agent exited 0, want a failure", name)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the agent kept running, want it to stop with %q:\n%s", name, want, p.out)
		}
		if !strings.Contains(p.out.String(), want) {
			t.Fatalf("%s: agent output does not say %q:\n%s", name, want, p.out)
		}
	}
	id, _, _ := strings.Cut(token, ".")
	refused("spent", token, pin, "one-time and was already used")
	refused("bad-secret", id+".00112233", pin, "wrong secret")
	other := sha256.Sum256([]byte("another cluster"))
	fresh := joinToken(t, srv)
	refused("wrong-pin", fresh, "sha256:"+hex.EncodeToString(other[:]), "not from the pinned cluster CA")

	freshID, _, _ := strings.Cut(fresh, ".")
	if out := d.mustCLI("agent", "token", "revoke", freshID); !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %s", out)
	}
	refused("revoked", fresh, pin, "does not exist")
	if n := strings.Count(d.mustCLI("node", "status"), "ready"); n != 1 {
		t.Fatalf("%d ready nodes, want only edge-1: a refused agent registered", n)
	}
}

// waitNodes waits until n nodes are ready.
func waitNodes(t *testing.T, d *devProc, n int) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d nodes ready", n), func() error {
		if out := d.mustCLI("node", "status"); strings.Count(out, "ready") != n {
			return fmt.Errorf("node status:\n%s", out)
		}
		return nil
	})
}
