package edge

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/strata-run/strata/spec"
)

// waitReplica waits until ok holds, checking it whenever the replica
// publishes.
func waitReplica(t *testing.T, r *replica, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		_, changed := r.holder.Changed()
		if ok() {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s (replica at %d)", timeout, what, r.index())
		}
	}
}

// askSRV asks the agent's DNS server for name's SRV records over UDP and
// returns their ports.
func askSRV(t *testing.T, addr, name string) []uint16 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeSRV)
	in, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("asking %s for %s: %v", addr, name, err)
	}
	var out []uint16
	for _, rr := range in.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			if srv.Hdr.Ttl > 10 {
				t.Errorf("the agent's answer has a TTL of %ds: want a short one", srv.Hdr.Ttl)
			}
			out = append(out, srv.Port)
		}
	}
	return out
}

// An agent with a DNS address answers the cluster's names from its
// replica, which follows the servers' catalog; after a reconnect it
// resumes from its replica's index: the catalog is not sent again.
func TestAgentDNSFollowsTheCatalogAndResumes(t *testing.T) {
	f := newLinkFixture(t, func(c *Config) { c.DNSAddr = "127.0.0.1:0" })
	a := f.agent
	if a.DNSAddr() == "" {
		t.Fatal("the agent does not serve DNS")
	}
	f.deployTiny(t)
	const name = "tiny-web-tiny.service.strata"
	waitReplica(t, a.replica, "the tiny instance passing in the replica", 20*time.Second, func() bool {
		return len(a.replica.holder.Snapshot().Passing("tiny-web-tiny", "")) == 1
	})
	if got := askSRV(t, a.DNSAddr(), name); len(got) != 1 {
		t.Fatalf("the agent answers %s with ports %v, want the one instance", name, got)
	}
	if n := a.replica.snapshots.Load(); n != 1 {
		t.Fatalf("%d snapshots received, want 1 (the first connection)", n)
	}

	// Drop the connection: the agent reconnects and resumes its stream.
	conn, err := a.link.liveConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.CloseWithError(0, "test: drop the link")
	waitAgent(t, a, "the agent to reconnect", 20*time.Second, func() bool { return a.link.sessions.Load() == 2 })

	// A change after the reconnect reaches the replica as a delta.
	root := filepath.Join("..", "examples", "tiny")
	src, err := os.ReadFile(filepath.Join(root, "tiny.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	job, err := spec.Parse("tiny.hcl", []byte(strings.Replace(string(src), "count = 1", "count = 2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	deltas := a.replica.deltas.Load()
	if _, err := f.srv.RegisterJob(job); err != nil {
		t.Fatal(err)
	}
	waitReplica(t, a.replica, "two tiny instances passing", 30*time.Second, func() bool {
		return len(a.replica.holder.Snapshot().Passing("tiny-web-tiny", "")) == 2
	})
	if got := askSRV(t, a.DNSAddr(), name); len(got) != 2 {
		t.Fatalf("the agent answers %s with %v after the scale to 2", name, got)
	}
	if n := a.replica.snapshots.Load(); n != 1 {
		t.Fatalf("%d snapshots received: the reconnect was sent the whole catalog again", n)
	}
	if a.replica.deltas.Load() <= deltas {
		t.Fatal("the scale reached the replica without a delta")
	}
	if got, want := a.replica.index(), f.srv.Catalog().Index(); got != want {
		t.Fatalf("replica at %d, the server's catalog at %d", got, want)
	}
}
