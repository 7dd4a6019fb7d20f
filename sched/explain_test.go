package sched

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
