package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"

	"github.com/strata-run/strata/internal/netfault"
	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/registry"
)

// Partition tests: one agent reaches its server only through a UDP relay
// the test owns. Cutting the relay drops every datagram both ways, so the
// agent and the server lose each other while the agent's tasks stay
// reachable from the test (and from the rest of the cluster), as on an
// edge site whose uplink to the coordinators fails. See docs/RATIONALE.md.

// startRelayedServer starts a one-server cluster whose agents are told
// (Registered.Servers) to reach it through a relay, so an agent that
// dials the relay has no other path to it. It returns the server, its
// own agent address (a direct path) and CA pin, and the relay.
func startRelayedServer(t *testing.T) (*serverProc, string, string, *netfault.Relay) {
	t.Helper()
	relay, err := netfault.NewRelay("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(relay.Close)
	srv, agentAddr, pin := startSingleServer(t, "-agent-advertise", relay.Addr())
	if err := relay.SetServer(agentAddr); err != nil {
		t.Fatal(err)
	}
	return srv, agentAddr, pin, relay
}

// partitionCluster is a server, a relayed agent and, once added, a direct
// agent; the hello job is deployed on the relayed agent before the direct
// one exists, so its placement is known.
type partitionCluster struct {
	t       *testing.T
	d       *devProc
	relay   *netfault.Relay
	relayed *agentProc
	origin  string // the original allocation's address on the relayed node
	alloc   string // its ID
}

func newPartitionCluster(t *testing.T, jobSrc []byte, relayedIP, directIP string) *partitionCluster {
	t.Helper()
	srv, agentAddr, pin, relay := startRelayedServer(t)
	d := &devProc{t: t, httpAddr: srv.httpAddr, dnsAddr: srv.args[slices.Index(srv.args, "-dns-addr")+1], out: srv.out}
	c := &partitionCluster{t: t, d: d, relay: relay}
	c.relayed = startAgent(t, srv, "edge-1", relayedIP, relay.Addr(), pin, "-log-level", "info")
	c.waitReady(1)
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	job := filepath.Join(t.TempDir(), "hello.hcl")
	os.WriteFile(job, jobSrc, 0o644)
	d.mustCLI("run", job)
	c.origin = waitAddrs(t, d, func(a []string) bool { return len(a) == 1 })[0]
	if ip(c.origin) != relayedIP {
		t.Fatalf("the job was placed at %s, want the relayed node %s", c.origin, relayedIP)
	}
	allocs := c.allocs()
	if len(allocs) != 1 {
		t.Fatalf("allocations after deploy: %s", describe(allocs))
	}
	c.alloc = allocs[0].ID
	startAgent(t, srv, "edge-2", directIP, agentAddr, pin)
	c.waitReady(2)
	return c
}

func (c *partitionCluster) waitReady(n int) {
	c.t.Helper()
	testutil.Eventually(c.t, 30*time.Second, fmt.Sprintf("%d nodes ready", n), func() error {
		var ready []string
		for _, nd := range c.nodes() {
			if nd.Status == "ready" {
				ready = append(ready, nd.Name)
			}
		}
		if len(ready) != n {
			return fmt.Errorf("ready: %v", ready)
		}
		return nil
	})
}

// settle runs check at once and again after every commit to the server's
// state (a blocking query on the job's allocations wakes on any), until
// no commit has come for quiet, for at most max. It replaces "wait a
// while, then look": every state the cluster passes through is checked,
// and the wait ends when the cluster is idle, not after a set time. The
// quiet period is what remains of a clock: the API lists no evaluations
// by job, so the end of the evaluation a change set off is seen only as
// the commits stopping (an evaluation takes milliseconds).
func (c *partitionCluster) settle(what string, quiet, max time.Duration, check func()) {
	c.t.Helper()
	deadline := time.Now().Add(max)
	idx := c.stateIndex(0, 0)
	for {
		check()
		next := c.stateIndex(idx, quiet)
		if next == idx {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: the server's state still changing after %s (index %d -> %d)", what, max, idx, next)
		}
		idx = next
	}
}

// stateIndex returns the server's state index; with after > 0 it first
// waits (a blocking query, at most wait) until the index passes after.
func (c *partitionCluster) stateIndex(after uint64, wait time.Duration) uint64 {
	c.t.Helper()
	url := "http://" + c.d.httpAddr + "/v1/job/hello/allocations"
	if after > 0 {
		url += fmt.Sprintf("?index=%d&wait=%s", after, wait)
	}
	resp, err := httpc.Get(url)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	idx, err := strconv.ParseUint(resp.Header.Get("X-Strata-Index"), 10, 64)
	if resp.StatusCode != 200 || err != nil {
		c.t.Fatalf("GET %s: %s, X-Strata-Index %q", url, resp.Status, resp.Header.Get("X-Strata-Index"))
	}
	return idx
}

func (c *partitionCluster) nodes() []*structs.NodeRecord {
	var ns []*structs.NodeRecord
	c.d.getJSON("/v1/nodes", &ns)
	return ns
}

func (c *partitionCluster) nodeStatus(name string) string {
	for _, n := range c.nodes() {
		if n.Name == name {
			return n.Status
		}
	}
	return ""
}

func (c *partitionCluster) allocs() []*structs.Alloc {
	var r structs.JobAllocsResponse
	c.d.getJSON("/v1/job/hello/allocations", &r)
	return r.Allocations
}

// catalog is the service's endpoints in the registry, whatever their health.
func (c *partitionCluster) catalog() []registry.Endpoint {
	var eps []registry.Endpoint
	c.d.getJSON("/v1/service/hello-web-hello", &eps)
	return eps
}

// assertRelayOnly checks the relayed agent never registered through
// anything but the relay: the partition had no way around it.
func (c *partitionCluster) assertRelayOnly() {
	c.t.Helper()
	re := regexp.MustCompile(`msg=registered .*?server=(\S+)`)
	out := c.relayed.out.String()
	ms := re.FindAllStringSubmatch(out, -1)
	if len(ms) == 0 {
		c.t.Fatalf("the relayed agent never logged a registration:\n%s", out)
	}
	for _, m := range ms {
		if m[1] != c.relay.Addr() {
			c.t.Fatalf("the relayed agent registered through %s, not the relay %s: the partition was bypassed\n%s", m[1], c.relay.Addr(), out)
		}
	}
}

func describe(allocs []*structs.Alloc) string {
	var b strings.Builder
	for _, a := range allocs {
		fmt.Fprintf(&b, "  %s on %s desired=%s client=%s (%s)\n", a.ID, a.NodeName, a.DesiredStatus, a.ClientStatus, a.ClientDescription)
	}
	if b.Len() == 0 {
		return "  (none)\n"
	}
	return b.String()
}

func serves(addr string) bool {
	code, _, err := httpGet("http://" + addr + "/partition")
	return err == nil && code == 200
}

// With disconnect { lost_after = "1h" replace = false }, a partition
// changes nothing users see: the task answers every second, the server
// holds its allocation unknown and places no replacement although another
// node could take it; after the heal the same allocation is running again,
// the only one. The partition lasts until both sides have given up the
// link and acted on it (the server marked the node down, the agent's
// session timed out and a fresh dial failed): from then on nothing is due
// before lost_after.
func TestPartitionKeepsDisconnectedWork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes; partitions one for ~20s")
	}
	t.Parallel()
	src, _ := os.ReadFile(filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	src = bytes.Replace(src, []byte("count = 1"), []byte("count = 1\n\n    disconnect {\n      lost_after = \"1h\"\n      replace    = false\n    }"), 1)
	c := newPartitionCluster(t, src, "127.0.0.11", "127.0.0.12")

	// held checks what must hold once the server has marked the node down.
	held := func(when string) {
		t.Helper()
		if st, allocs := c.nodeStatus("edge-1"), c.allocs(); st != "down" || len(allocs) != 1 || allocs[0].ID != c.alloc || allocs[0].ClientStatus != "unknown" {
			t.Fatalf("%s: node %s, allocations (want only the original %s, unknown):\n%s", when, st, c.alloc, describe(allocs))
		}
	}
	cut := time.Now()
	agentLog := len(c.relayed.out.String()) // what the agent logged before the cut
	c.relay.Cut()
	var downAfter, lostAfter time.Duration
	polls := 0
	err := testutil.Poll(90*time.Second, time.Second, "both sides of the partition give up the link", func() error {
		polls++
		into := time.Since(cut).Round(time.Second)
		if code, body, err := httpGet("http://" + c.origin + "/partition"); err != nil || code != 200 || body != "hello from /partition\n" {
			t.Fatalf("%s into the partition, the task at %s did not answer: %d %q %v", into, c.origin, code, body, err)
		}
		// The node first, then its allocation: the server commits both in
		// one entry, so a node seen down has its allocation unknown.
		down := c.nodeStatus("edge-1") == "down"
		allocs := c.allocs()
		if len(allocs) != 1 || allocs[0].ID != c.alloc {
			t.Fatalf("%s into the partition, the job has other allocations than the original %s:\n%s", into, c.alloc, describe(allocs))
		}
		if downAfter == 0 && down {
			downAfter = time.Since(cut)
		}
		if downAfter != 0 {
			held(fmt.Sprintf("%s into the partition, after the node was marked down", into))
		}
		// The session times out (the agent's QUIC idle timeout), then a
		// dial through the cut relay fails: two lines.
		lost := strings.Count(c.relayed.out.String()[agentLog:], "link to server lost")
		if lostAfter == 0 && lost >= 2 {
			lostAfter = time.Since(cut)
		}
		if downAfter == 0 || lostAfter == 0 {
			return fmt.Errorf("%s into the partition: node marked down: %v; the agent lost the link %d times", into, downAfter != 0, lost)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if downAfter > 30*time.Second {
		t.Fatalf("the server marked the partitioned node down only %s after the cut", downAfter)
	}
	if c.relay.Dropped() == 0 {
		t.Fatal("the relay dropped nothing while cut")
	}
	// What the node going down set off (its evaluation) has run its course.
	c.settle("during the partition", 2*time.Second, 30*time.Second, func() { held("during the partition") })
	dns, err := resolveSRV(t, c.d.dnsAddr, "hello-web-hello.service.strata")
	t.Logf("partition: node marked down %s and the agent's link given up %s after the cut; %d polls of the task in %s all answered; %d datagrams dropped; DNS at the end: %v %v",
		downAfter.Round(100*time.Millisecond), lostAfter.Round(100*time.Millisecond), polls, time.Since(cut).Round(100*time.Millisecond), c.relay.Dropped(), dns, err)

	healed := time.Now()
	c.relay.Heal()
	testutil.Eventually(t, 60*time.Second, "the original running alone on a ready node after the heal", func() error {
		allocs := c.allocs()
		if st := c.nodeStatus("edge-1"); len(allocs) != 1 || allocs[0].ID != c.alloc || allocs[0].ClientStatus != "running" || st != "ready" {
			return fmt.Errorf("node %s, allocations:\n%s", st, describe(allocs))
		}
		return nil
	})
	t.Logf("heal -> original allocation running again in %s", time.Since(healed).Round(100*time.Millisecond))
	if a := waitAddrs(t, c.d, func(a []string) bool { return len(a) == 1 }); a[0] != c.origin {
		t.Fatalf("after the heal DNS answers %v, want the original %s", a, c.origin)
	}
	// The reconnect evaluation has nothing to change: through every commit
	// until the state is idle, one allocation, the original, running and
	// serving.
	c.settle("after the heal", 2*time.Second, 30*time.Second, func() {
		if allocs := c.allocs(); len(allocs) != 1 || allocs[0].ID != c.alloc || allocs[0].ClientStatus != "running" || !serves(c.origin) {
			t.Fatalf("after reconciliation:\n%s", describe(allocs))
		}
	})
	c.assertRelayOnly()
}

// With the default (no disconnect block), a partitioned node's allocation
// is replaced on another node, which DNS then names; after the heal the
// original is stopped. The registry never names both copies, and once the
// original has stopped it never answers again.
func TestPartitionReplacesThenStopsOriginal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes; partitions one")
	}
	t.Parallel()
	src, _ := os.ReadFile(filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	c := newPartitionCluster(t, src, "127.0.0.21", "127.0.0.22")

	// registeredOnce checks that DNS and the catalog never name both nodes,
	// and returns what DNS answers.
	registeredOnce := func(when string) []string {
		t.Helper()
		a, _ := resolveSRV(t, c.d.dnsAddr, "hello-web-hello.service.strata")
		eps := c.catalog()
		if len(a) > 1 || len(eps) > 1 {
			t.Fatalf("%s: the registry names more than one copy: DNS %v, catalog %+v\n%s", when, a, eps, describe(c.allocs()))
		}
		return a
	}

	cut := time.Now()
	c.relay.Cut()
	var replacement string
	testutil.Eventually(t, 60*time.Second, "a replacement serves on edge-2 during the partition", func() error {
		a := registeredOnce("during the partition")
		if len(a) != 1 || ip(a[0]) != "127.0.0.22" || !serves(a[0]) {
			return fmt.Errorf("DNS %v, allocations:\n%s", a, describe(c.allocs()))
		}
		replacement = a[0]
		return nil
	})
	replacedAfter := time.Since(cut)
	if st := c.nodeStatus("edge-1"); st != "down" {
		t.Fatalf("replaced while the partitioned node is %q, want down", st)
	}
	var orig *structs.Alloc
	for _, a := range c.allocs() {
		if a.ID == c.alloc {
			orig = a
		}
	}
	if orig == nil || orig.ClientStatus != "lost" {
		t.Fatalf("the original allocation is not lost:\n%s", describe(c.allocs()))
	}
	if c.relay.Dropped() == 0 {
		t.Fatal("the relay dropped nothing while cut")
	}
	// The agent cannot know: its copy still runs, unregistered.
	t.Logf("partition -> replacement serving at %s in %s (original still answering: %v)",
		replacement, replacedAfter.Round(100*time.Millisecond), serves(c.origin))

	healed := time.Now()
	c.relay.Heal()
	testutil.Eventually(t, 90*time.Second, "the original stops answering after the heal", func() error {
		registeredOnce("after the heal, before the original stopped")
		if serves(c.origin) {
			return fmt.Errorf("the original at %s still answers; allocations:\n%s", c.origin, describe(c.allocs()))
		}
		return nil
	})
	t.Logf("heal -> original stopped in %s", time.Since(healed).Round(100*time.Millisecond))

	// Reconciled: through every commit until the state is idle, exactly one
	// copy is registered and serving, the replacement.
	c.settle("after reconciliation", 2*time.Second, 30*time.Second, func() {
		if a := registeredOnce("after reconciliation"); len(a) != 1 || a[0] != replacement {
			t.Fatalf("after reconciliation: DNS %v, want only the replacement %s", a, replacement)
		}
		if serves(c.origin) || !serves(replacement) {
			t.Fatalf("after reconciliation: original serving %v, replacement serving %v", serves(c.origin), serves(replacement))
		}
	})
	if st := c.nodeStatus("edge-1"); st != "ready" {
		t.Fatalf("the healed node is %q, want ready", st)
	}
	live := 0
	for _, a := range c.allocs() {
		if !a.Terminal() {
			live++
		}
	}
	if live != 1 {
		t.Fatalf("after reconciliation %d live allocations, want 1:\n%s", live, describe(c.allocs()))
	}
	c.assertRelayOnly()
}
