package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"

	"github.com/strata-run/strata/internal/netfault"
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
	for deadline := time.Now().Add(30 * time.Second); ; {
		ready := 0
		for _, nd := range c.nodes() {
			if nd.Status == "ready" {
				ready++
			}
		}
		if ready == n {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d nodes ready within 30s, want %d:\n%s", ready, n, c.d.mustCLI("node", "status"))
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	c.d.getJSON("/v1/catalog/service/hello-web-hello", &eps)
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

// With disconnect { lost_after = "1h" replace = false }, a 60 s partition
// changes nothing users see: the task answers every second, the server
// holds its allocation unknown and places no replacement although another
// node could take it; after the heal the same allocation is running again,
// the only one.
func TestPartitionKeepsDisconnectedWork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes; partitions one for 60s")
	}
	t.Parallel()
	src, _ := os.ReadFile(filepath.Join(repoRoot(), "examples", "hello", "hello.hcl"))
	src = bytes.Replace(src, []byte("count = 1"), []byte("count = 1\n\n    disconnect {\n      lost_after = \"1h\"\n      replace    = false\n    }"), 1)
	c := newPartitionCluster(t, src, "127.0.0.11", "127.0.0.12")

	const partition = 60 * time.Second
	cut := time.Now()
	c.relay.Cut()
	var downAfter time.Duration
	polls := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ; time.Since(cut) < partition; <-tick.C {
		polls++
		if code, body, err := httpGet("http://" + c.origin + "/partition"); err != nil || code != 200 || body != "hello from /partition\n" {
			t.Fatalf("%s into the partition, the task at %s did not answer: %d %q %v", time.Since(cut).Round(time.Second), c.origin, code, body, err)
		}
		// The node first, then its allocation: the server commits both in
		// one entry, so a node seen down has its allocation unknown.
		down := c.nodeStatus("edge-1") == "down"
		allocs := c.allocs()
		if len(allocs) != 1 || allocs[0].ID != c.alloc {
			t.Fatalf("%s into the partition, the job has other allocations than the original %s:\n%s", time.Since(cut).Round(time.Second), c.alloc, describe(allocs))
		}
		if downAfter == 0 && down {
			downAfter = time.Since(cut)
		}
		if downAfter != 0 && (!down || allocs[0].ClientStatus != "unknown") {
			t.Fatalf("%s into the partition, after the node was marked down: node %s, allocation:\n%s", time.Since(cut).Round(time.Second), c.nodeStatus("edge-1"), describe(allocs))
		}
	}
	if downAfter == 0 || downAfter > 30*time.Second {
		t.Fatalf("the server did not mark the partitioned node down within 30s (down after %s): the cut did not cut", downAfter)
	}
	if c.relay.Dropped() == 0 {
		t.Fatal("the relay dropped nothing while cut")
	}
	dns, err := resolveSRV(t, c.d.dnsAddr, "hello-web-hello.service.strata")
	t.Logf("partition: node marked down %s after the cut; %d polls of the task in %s all answered; %d datagrams dropped; DNS at the end: %v %v",
		downAfter.Round(100*time.Millisecond), polls, partition, c.relay.Dropped(), dns, err)

	healed := time.Now()
	c.relay.Heal()
	for deadline := time.Now().Add(60 * time.Second); ; {
		allocs := c.allocs()
		if len(allocs) == 1 && allocs[0].ID == c.alloc && allocs[0].ClientStatus == "running" && c.nodeStatus("edge-1") == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after the heal the original is not running alone on a ready node (%s):\n%s", c.nodeStatus("edge-1"), describe(allocs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("heal -> original allocation running again in %s", time.Since(healed).Round(100*time.Millisecond))
	if a := waitAddrs(t, c.d, func(a []string) bool { return len(a) == 1 }); a[0] != c.origin {
		t.Fatalf("after the heal DNS answers %v, want the original %s", a, c.origin)
	}
	// The reconnect evaluation has nothing to change: a while later still
	// one allocation, the original, running and serving.
	time.Sleep(2 * time.Second)
	if allocs := c.allocs(); len(allocs) != 1 || allocs[0].ID != c.alloc || allocs[0].ClientStatus != "running" || !serves(c.origin) {
		t.Fatalf("after reconciliation:\n%s", describe(allocs))
	}
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
	for deadline := time.Now().Add(60 * time.Second); ; {
		a := registeredOnce("during the partition")
		if len(a) == 1 && ip(a[0]) == "127.0.0.22" && serves(a[0]) {
			replacement = a[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s into the partition no replacement serves on edge-2 (DNS %v):\n%s", a, describe(c.allocs()))
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	for deadline := time.Now().Add(90 * time.Second); serves(c.origin); {
		registeredOnce("after the heal, before the original stopped")
		if time.Now().After(deadline) {
			t.Fatalf("90s after the heal the original at %s still answers:\n%s\nagent:\n%s", c.origin, describe(c.allocs()), c.relayed.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("heal -> original stopped in %s", time.Since(healed).Round(100*time.Millisecond))

	// Reconciled: at several points over the next seconds exactly one copy
	// is registered and serving, the replacement, and the node is back.
	for i := range 10 {
		if a := registeredOnce("after reconciliation"); len(a) != 1 || a[0] != replacement {
			t.Fatalf("check %d after reconciliation: DNS %v, want only the replacement %s", i, a, replacement)
		}
		if serves(c.origin) || !serves(replacement) {
			t.Fatalf("check %d after reconciliation: original serving %v, replacement serving %v", i, serves(c.origin), serves(replacement))
		}
		time.Sleep(500 * time.Millisecond)
	}
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
