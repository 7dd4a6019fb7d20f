package sched

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-run/strata/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestExplanationString(t *testing.T) {
	tests := []struct {
		e    *Explanation
		want string
	}{
		{&Explanation{NodesEvaluated: 5000, Reasons: map[string]int{"memory exhausted": 1000, "missing driver docker": 4000}},
			"0/5000 nodes feasible: 4000 missing driver docker, 1000 memory exhausted"},
		{&Explanation{NodesEvaluated: 7, Reasons: map[string]int{"node down": 2, "cpu exhausted": 2, "datacenter mismatch": 3}},
			"0/7 nodes feasible: 3 datacenter mismatch, 2 cpu exhausted, 2 node down"},
		{&Explanation{NodesEvaluated: 3, NodesFeasible: 3}, "3/3 nodes feasible"},
		{&Explanation{}, "0/0 nodes feasible"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestExplanationGolden schedules a group nothing can take on a cluster
// failing for every reason and compares the explanations with
// testdata/explanations.golden (go test -run Golden -update rewrites it).
func TestExplanationGolden(t *testing.T) {
	var ns []*NodeState
	add := func(n int, prefix string, opts ...func(*NodeState)) {
		for i := range n {
			ns = append(ns, newNode(prefix+string(rune('a'+i)), opts...))
		}
	}
	add(5, "nodocker")
	add(4, "full", withNode(func(n *Node) { n.Drivers["docker"] = true }), withUsed(0, 8000))
	add(3, "busy", withNode(func(n *Node) { n.Drivers["docker"] = true }), withUsed(3900, 0))
	add(3, "down", withNode(func(n *Node) { n.Status = NodeDown }))
	add(2, "dc9", withNode(func(n *Node) { n.Datacenter = "dc9"; n.Drivers["docker"] = true }))
	add(2, "sick", withNode(func(n *Node) { n.Drivers["docker"] = false }))
	add(1, "cordoned", withNode(func(n *Node) { n.Eligible = false }))
	add(1, "port", withNode(func(n *Node) { n.Drivers["docker"] = true }), withPorts(443))
	add(1, "noports", withNode(func(n *Node) { n.Drivers["docker"] = true }), withDynamicRangeUsedExcept())
	job := newJob("j",
		newGroup("proxy", 3, newTask("envoy", "docker", 200, 512, staticPort("https", 443), dynPort("admin"))),
		newGroup("web", 2, newTask("api", "wasm", 100000, 64)),
	)
	job.Datacenters = []string{"dc1"}
	plan := mustSchedule(t, &Request{EvalID: "golden", Job: job, Nodes: ns})
	if len(plan.Place) != 0 {
		t.Fatalf("unexpected placements %+v", plan.Place)
	}
	var b strings.Builder
	for _, g := range []string{"proxy", "web"} {
		e := plan.Failed[g]
		b.WriteString(g + " (missing " + strconv.Itoa(e.Missing) + "): " + e.String() + "\n")
	}
	golden(t, "explanations.golden", b.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestExplanationGoldenConstraints explains failures that mix constraint,
// distinct_hosts, driver and capacity reasons, and the example at
// 5,000 nodes (testdata/explanations-constraints.golden).
func TestExplanationGoldenConstraints(t *testing.T) {
	var ns []*NodeState
	add := func(n int, prefix string, opts ...func(*NodeState)) {
		for i := range n {
			ns = append(ns, newNode(fmt.Sprintf("%s%02d", prefix, i), opts...))
		}
	}
	attrs := func(kernel, docker, disk string) func(*NodeState) {
		return withNode(func(n *Node) {
			n.Attributes = map[string]string{"kernel.name": kernel}
			if docker != "" {
				n.Drivers["docker"] = true
				n.Attributes["driver.docker.version"] = docker
			}
			n.Meta = map[string]string{}
			if disk != "" {
				n.Meta["disk"] = disk
			}
		})
	}
	add(6, "win", attrs("windows", "24.0.7", "ssd"))
	add(5, "old", attrs("linux", "19.03.1", "ssd"))
	add(4, "hdd", attrs("linux", "24.0.7", "hdd"))
	add(3, "nodisk", attrs("linux", "24.0.7", ""))
	add(3, "wasm", attrs("linux", "", "ssd"))
	add(2, "ok", attrs("linux", "25.0.1", "ssd"))
	add(2, "full", attrs("linux", "25.0.1", "ssd"), withUsed(0, 8000))
	add(1, "down", attrs("linux", "25.0.1", "ssd"), withNode(func(n *Node) { n.Status = NodeDown }))

	db := newGroup("db", 4, newTask("postgres", "docker", 500, 1024))
	db.Constraints = []*spec.Constraint{
		{Attribute: "${attr.driver.docker.version}", Operator: "version", Value: ">= 20.10"},
		{Attribute: "${meta.disk}", Operator: "=", Value: "ssd"},
		{Operator: "distinct_hosts"},
	}
	cache := newGroup("cache", 3, newTask("redis", "docker", 100, 512))
	cache.Constraints = []*spec.Constraint{{Attribute: "${meta.disk}", Operator: "is_not_set"}}
	edge := newGroup("edge", 2, newTask("fn", "wasm", 100, 64))
	edge.Constraints = []*spec.Constraint{{Attribute: "${node.class}", Operator: "set_contains_any", Value: "edge,pop"}}
	job := newJob("j", db, cache, edge)
	job.Constraints = []*spec.Constraint{{Attribute: "${attr.kernel.name}", Operator: "=", Value: "linux"}}
	plan := mustSchedule(t, &Request{EvalID: "golden", Job: job, Nodes: ns})

	var b strings.Builder
	for _, g := range []string{"db", "cache", "edge"} {
		if e := plan.Failed[g]; e != nil {
			b.WriteString(g + " (missing " + strconv.Itoa(e.Missing) + "): " + e.String() + "\n")
		}
	}

	// The example: 4,000 nodes without docker, 1,000 full ones.
	big := make([]*NodeState, 5000)
	for i := range big {
		big[i] = newNode(fmt.Sprintf("n%04d", i))
		if i%5 == 0 {
			big[i].Node.Drivers["docker"] = true
			big[i].Used = Resources{MemoryMB: 8000}
		}
	}
	web := newJob("web", newGroup("web", 10, newTask("nginx", "docker", 100, 512)))
	e := mustSchedule(t, &Request{EvalID: "golden", Job: web, Nodes: big}).Failed["web"]
	b.WriteString("web (missing " + strconv.Itoa(e.Missing) + "): " + e.String() + "\n")
	golden(t, "explanations-constraints.golden", b.String())
}
