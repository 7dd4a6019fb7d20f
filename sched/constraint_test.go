package sched

import (
	"errors"
	"maps"
	"testing"

	"github.com/strata-run/strata/spec"
)

// attrNode is a node with the attributes and meta the constraint tests read.
func attrNode(id string) *NodeState {
	return newNode(id, withNode(func(n *Node) {
		n.Class = "edge"
		n.Attributes = map[string]string{
			"kernel.name":           "linux",
			"cpu.numcores":          "8",
			"os.version":            "22.04",
			"driver.docker.version": "24.0.7",
			"strata.version":        "1.3.0-beta1",
			"cpu.features":          "avx, avx2,sse4",
			"unique.hostname":       "host-" + id,
			"ten":                   "10",
		}
		n.Meta = map[string]string{"rack": "r1", "expected_rack": "r1", "zone": "us-east-1a"}
	}))
}

func TestConstraintOperators(t *testing.T) {
	tests := []struct {
		attr, op, value string
		want            bool
	}{
		// = and !=, with Nomad's treatment of unset attributes.
		{"${attr.kernel.name}", "=", "linux", true},
		{"${attr.kernel.name}", "=", "windows", false},
		{"${attr.kernel.name}", "", "linux", true}, // default operator
		{"${attr.kernel.name}", "==", "linux", true},
		{"${attr.nope}", "=", "linux", false},
		{"${attr.nope}", "=", "", false},
		{"${attr.kernel.name}", "!=", "windows", true},
		{"${attr.kernel.name}", "!=", "linux", false},
		{"${attr.nope}", "!=", "linux", true},
		{"${attr.kernel.name}", "not", "windows", true},
		// Ordering: integers, then floats, then lexical (Nomad's checkOrder).
		{"${attr.cpu.numcores}", ">", "4", true},
		{"${attr.cpu.numcores}", ">=", "8", true},
		{"${attr.cpu.numcores}", "<", "8", false},
		{"${attr.cpu.numcores}", "<=", "8", true},
		{"${attr.ten}", ">", "9", true},            // numerically; lexically "10" < "9"
		{"${attr.cpu.numcores}", ">", "7.5", true}, // float when one side is not an integer
		{"${attr.os.version}", ">=", "20.10", true},
		{"${attr.os.version}", "<", "22.4", true}, // as floats: 22.04 < 22.4
		{"${meta.rack}", "<", "r2", true},
		{"${meta.zone}", ">", "us-east-1", true}, // lexical
		{"${attr.nope}", ">", "1", false},
		// regexp: unanchored, as Go's MatchString.
		{"${attr.kernel.name}", "regexp", "^lin", true},
		{"${attr.kernel.name}", "regexp", "nu", true},
		{"${attr.kernel.name}", "regexp", "^win", false},
		{"${attr.kernel.name}", "regexp", "x(", false}, // does not compile: never met
		{"${attr.nope}", "regexp", ".*", false},
		// Sets: comma-separated, items trimmed.
		{"${attr.cpu.features}", "set_contains", "avx,sse4", true},
		{"${attr.cpu.features}", "set_contains", " avx2 , avx ", true},
		{"${attr.cpu.features}", "set_contains", "avx,avx512", false},
		{"${attr.cpu.features}", "set_contains_all", "avx", true},
		{"${attr.cpu.features}", "set_contains_any", "avx512,sse4", true},
		{"${attr.cpu.features}", "set_contains_any", "neon,sve", false},
		{"${attr.nope}", "set_contains_any", "avx", false},
		// Versions.
		{"${attr.driver.docker.version}", "version", ">= 20.10, < 25", true},
		{"${attr.driver.docker.version}", "version", "~> 24.0", true},
		{"${attr.driver.docker.version}", "version", "~> 23.1", false},
		{"${attr.driver.docker.version}", "version", "> 24.0.7", false},
		{"${attr.driver.docker.version}", "semver", ">= 24.0.0, != 24.0.6", true},
		{"${attr.driver.docker.version}", "version", "not a version", false},
		{"${attr.strata.version}", "version", ">= 1.2", false}, // pre-release excluded
		{"${attr.strata.version}", "semver", ">= 1.2", true},   // SemVer ordering
		{"${attr.strata.version}", "version", ">= 1.3.0-alpha", true},
		{"${attr.kernel.name}", "version", ">= 1", false}, // not a version
		{"${attr.nope}", "semver", ">= 1", false},
		// is_set, is_not_set.
		{"${meta.rack}", "is_set", "", true},
		{"${meta.nope}", "is_set", "", false},
		{"${meta.nope}", "is_not_set", "", true},
		{"${meta.rack}", "is_not_set", "", false},
		{"${foo.bar}", "is_not_set", "", true}, // unknown reference: never set
		// Node fields and interpolation on both sides.
		{"${node.datacenter}", "=", "dc1", true},
		{"${node.unique.name}", "=", "name-n1", true},
		{"${node.unique.id}", "=", "n1", true},
		{"${node.class}", "=", "edge", true},
		{"${meta.rack}", "=", "${meta.expected_rack}", true},
		{"${meta.zone}", "=", "${meta.expected_rack}", false},
		{"${meta.rack}", "=", "${meta.nope}", false},
		{"${node.unique.name}", "=", "name-${node.unique.id}", true},
		{"${attr.unique.hostname}", "regexp", "^host-${node.unique.id}$", true},
		{"$${literal}", "=", "${literal}", false}, // "$${" is a literal "${": "${literal}" vs unset
		{"x$${y}", "=", "x$${y}", true},
		{"${attr.kernel.name}", "frobnicate", "linux", false}, // unknown operator
	}
	ns := attrNode("n1")
	for _, tt := range tests {
		name := tt.attr + " " + tt.op + " " + tt.value
		t.Run(name, func(t *testing.T) {
			m := newMatcher(tt.attr, tt.op, tt.value)
			if got := m.matches(ns.Node, nil); got != tt.want {
				t.Fatalf("matches = %v, want %v", got, tt.want)
			}
			// A value with references is compiled per node through the
			// cache; the answer must be the same.
			var cc compileCache
			if a, b := m.matches(ns.Node, &cc), m.matches(ns.Node, &cc); a != b || a != m.matches(ns.Node, nil) {
				t.Fatalf("cached matcher disagrees")
			}
		})
	}
}

// TestConstraintReasons checks constraints through Schedule (on a
// one-node cluster: the explanation's reason) and through Checker.Fits
// (the same reason), at job and group level.
func TestConstraintReasons(t *testing.T) {
	c := func(attr, op, value string) *spec.Constraint {
		return &spec.Constraint{Attribute: attr, Operator: op, Value: value}
	}
	tests := []struct {
		name     string
		job, grp []*spec.Constraint
		driver   string
		reason   string // "" means feasible
	}{
		{name: "job constraint met", job: []*spec.Constraint{c("${attr.kernel.name}", "=", "linux")}},
		{name: "job constraint", job: []*spec.Constraint{c("${attr.kernel.name}", "=", "windows")},
			reason: "constraint ${attr.kernel.name} = windows"},
		{name: "group constraint", grp: []*spec.Constraint{c("${meta.rack}", "!=", "r1")},
			reason: "constraint ${meta.rack} != r1"},
		{name: "is_set has no value in its reason", grp: []*spec.Constraint{c("${meta.gpu}", "is_set", "")},
			reason: "constraint ${meta.gpu} is_set"},
		{name: "default operator", grp: []*spec.Constraint{c("${node.class}", "", "gpu")},
			reason: "constraint ${node.class} = gpu"},
		{name: "first failing in order", grp: []*spec.Constraint{
			c("${attr.cpu.numcores}", ">=", "4"), c("${attr.cpu.numcores}", ">=", "16"), c("${meta.rack}", "=", "r9")},
			reason: "constraint ${attr.cpu.numcores} >= 16"},
		{name: "job constraints before drivers", job: []*spec.Constraint{c("${meta.rack}", "=", "r9")}, driver: "docker",
			reason: "constraint ${meta.rack} = r9"},
		{name: "drivers before group constraints", grp: []*spec.Constraint{c("${meta.rack}", "=", "r9")}, driver: "docker",
			reason: "missing driver docker"},
		{name: "distinct_hosts alone never rejects a free node", grp: []*spec.Constraint{{Operator: "distinct_hosts"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := attrNode("n1")
			driver := "wasm"
			if tt.driver != "" {
				driver = tt.driver
			}
			g := newGroup("web", 1, newTask("api", driver, 100, 64))
			g.Constraints = tt.grp
			job := newJob("j", g)
			job.Constraints = tt.job
			plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: []*NodeState{ns}})
			alloc := &Allocation{Group: "web", NodeID: "n1", Resources: Resources{CPU: 100, MemoryMB: 64}}
			err := fits(ns, alloc, job)
			if tt.reason == "" {
				if len(plan.Place) != 1 || err != nil {
					t.Fatalf("placed %d (failed %v), Fits %v; want feasible", len(plan.Place), plan.Failed, err)
				}
				return
			}
			e := plan.Failed["web"]
			if want := map[string]int{tt.reason: 1}; e == nil || !maps.Equal(e.Reasons, want) {
				t.Fatalf("Failed[web] = %+v, want reasons %v", e, want)
			}
			var fe *FitError
			if !errors.As(err, &fe) || fe.Reason != tt.reason {
				t.Fatalf("Fits = %v, want FitError %q", err, tt.reason)
			}
		})
	}
}

// TestConstraintsFilterCluster: a constraint splits a cluster; every
// placement lands on a node that satisfies it.
func TestConstraintsFilterCluster(t *testing.T) {
	ns := nodes(40)
	for i, n := range ns {
		n.Node.Attributes = map[string]string{"kernel.name": []string{"linux", "windows"}[i%2]}
		n.Node.Meta = map[string]string{"rack": []string{"r1", "r2", "r3", "r4"}[i%4]}
	}
	g := newGroup("g", 12, newTask("t", "wasm", 100, 64))
	g.Constraints = []*spec.Constraint{{Attribute: "${meta.rack}", Operator: "set_contains_any", Value: "r1,r2"}}
	job := newJob("j", g)
	job.Constraints = []*spec.Constraint{{Attribute: "${attr.kernel.name}", Operator: "=", Value: "linux"}}
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: ns})
	if len(plan.Place) != 12 {
		t.Fatalf("placed %d, failed %v", len(plan.Place), plan.Failed)
	}
	byID := map[string]*Node{}
	for _, n := range ns {
		byID[n.Node.ID] = n.Node
	}
	for _, a := range plan.Place {
		n := byID[a.NodeID]
		if n.Attributes["kernel.name"] != "linux" || n.Meta["rack"] != "r1" {
			t.Fatalf("%s on %s (%v, %v)", a.Name, n.ID, n.Attributes, n.Meta)
		}
	}
	applyPlan(t, ns, plan, job)
}

func TestDistinctHosts(t *testing.T) {
	dh := func(value string) []*spec.Constraint {
		return []*spec.Constraint{{Operator: "distinct_hosts", Value: value}}
	}
	tests := []struct {
		name       string
		nodes      int
		jobLevel   []*spec.Constraint
		groups     []*spec.Group
		existing   []*Allocation
		placed     map[string]int // group -> copies placed
		perNode    int            // most allocations of the job on one node
		distinctOf map[string]int // group -> "constraint distinct_hosts" rejections
	}{
		{name: "group level: one copy per node", nodes: 2,
			groups: []*spec.Group{withConstraints(newGroup("a", 3, newTask("t", "wasm", 10, 10)), dh(""))},
			placed: map[string]int{"a": 2}, perNode: 1, distinctOf: map[string]int{"a": 2}},
		{name: "group level does not separate groups", nodes: 2,
			groups: []*spec.Group{
				withConstraints(newGroup("a", 2, newTask("t", "wasm", 10, 10)), dh("true")),
				withConstraints(newGroup("b", 2, newTask("t", "wasm", 10, 10)), dh("true"))},
			placed: map[string]int{"a": 2, "b": 2}, perNode: 2},
		{name: "job level separates groups", nodes: 3, jobLevel: dh(""),
			groups: []*spec.Group{newGroup("a", 2, newTask("t", "wasm", 10, 10)), newGroup("b", 2, newTask("t", "wasm", 10, 10))},
			placed: map[string]int{"a": 2, "b": 1}, perNode: 1, distinctOf: map[string]int{"b": 3}},
		{name: "false disables it", nodes: 1,
			groups: []*spec.Group{withConstraints(newGroup("a", 3, newTask("t", "wasm", 10, 10)), dh("false"))},
			placed: map[string]int{"a": 3}, perNode: 3},
		{name: "kept allocations count", nodes: 2,
			groups:   []*spec.Group{withConstraints(newGroup("a", 2, newTask("t", "wasm", 10, 10)), dh(""))},
			existing: []*Allocation{existing("a0", "j", "a", 0, 1, "n000")},
			placed:   map[string]int{"a": 1}, perNode: 1},
		{name: "stopped allocations do not", nodes: 1,
			groups:   []*spec.Group{withConstraints(newGroup("a", 1, newTask("t", "wasm", 10, 10)), dh(""))},
			existing: []*Allocation{existing("old", "j", "a", 0, 0, "n000")}, // older version: replaced
			placed:   map[string]int{"a": 1}, perNode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := newJob("j", tt.groups...)
			job.Constraints = tt.jobLevel
			ns := nodes(tt.nodes)
			plan := mustSchedule(t, &Request{EvalID: "e", Job: job, JobVersion: 1, Nodes: ns, Existing: tt.existing})
			placed, perNode := map[string]int{}, map[string]int{}
			stopped := map[string]bool{}
			for _, a := range plan.Stop {
				stopped[a.ID] = true
			}
			for _, a := range tt.existing {
				if !stopped[a.ID] {
					perNode[a.NodeID]++
				}
			}
			for _, a := range plan.Place {
				placed[a.Group]++
				perNode[a.NodeID]++
			}
			most := 0
			for _, n := range perNode {
				most = max(most, n)
			}
			if !maps.Equal(placed, tt.placed) || most != tt.perNode {
				t.Fatalf("placed %v (most per node %d), want %v (%d); failed %v", placed, most, tt.placed, tt.perNode, plan.Failed)
			}
			for g, n := range tt.distinctOf {
				if e := plan.Failed[g]; e == nil || e.Reasons[reasonDistinctHosts] != n {
					t.Fatalf("Failed[%s] = %+v, want %d %q", g, e, n, reasonDistinctHosts)
				}
			}
		})
	}
}

func withConstraints(g *spec.Group, cs []*spec.Constraint) *spec.Group {
	g.Constraints = cs
	return g
}

func TestComputedClass(t *testing.T) {
	base := attrNode("n1").Node
	same := attrNode("n2").Node // other ID, name and unique.hostname
	if ComputeClass(base) != ComputeClass(same) || ComputeClass(base) == "" {
		t.Fatal("nodes differing only in unique values have different classes")
	}
	if ComputeClass(nil) != "" {
		t.Fatal("ComputeClass(nil) is not empty")
	}
	changes := map[string]func(*Node){
		"datacenter":    func(n *Node) { n.Datacenter = "dc2" },
		"class":         func(n *Node) { n.Class = "gpu" },
		"attribute":     func(n *Node) { n.Attributes["kernel.name"] = "windows" },
		"new attribute": func(n *Node) { n.Attributes["x"] = "" },
		"meta":          func(n *Node) { n.Meta["rack"] = "r2" },
		"attr as meta": func(n *Node) {
			n.Meta["kernel.name"] = n.Attributes["kernel.name"]
			delete(n.Attributes, "kernel.name")
		},
		"driver":         func(n *Node) { n.Drivers["docker"] = true },
		"driver health":  func(n *Node) { n.Drivers["wasm"] = false },
		"key/value edge": func(n *Node) { n.Meta["ra"] = "ckr1"; delete(n.Meta, "rack") },
	}
	for name, change := range changes {
		n := cloneNodes([]*NodeState{attrNode("n1")})[0].Node
		n.Attributes, n.Meta = maps.Clone(n.Attributes), maps.Clone(n.Meta)
		change(n)
		if ComputeClass(n) == ComputeClass(base) {
			t.Errorf("%s: class unchanged", name)
		}
	}
}

// TestClassCacheRespectsUniqueValues: two nodes of one computed class
// differ in name and unique attributes; constraints and affinities reading
// those must be checked per node, not per class.
func TestClassCacheRespectsUniqueValues(t *testing.T) {
	for _, attr := range []string{"${node.unique.name}", "${node.unique.id}", "${attr.unique.hostname}"} {
		t.Run(attr, func(t *testing.T) {
			ns := withClasses(attrNode("n1"), attrNode("n2"), attrNode("n3"))
			want := map[string]string{"${node.unique.name}": "name-n2", "${node.unique.id}": "n2", "${attr.unique.hostname}": "host-n2"}[attr]
			g := newGroup("g", 1, newTask("t", "wasm", 10, 10))
			g.Constraints = []*spec.Constraint{{Attribute: attr, Operator: "=", Value: want}}
			for _, id := range []string{"a", "b", "c", "d"} {
				plan := mustSchedule(t, &Request{EvalID: id, Job: newJob("j", g), Nodes: ns})
				if len(plan.Place) != 1 || plan.Place[0].NodeID != "n2" {
					t.Fatalf("eval %s: placed %+v, failed %v", id, plan.Place, plan.Failed)
				}
			}
			// Same through an affinity: n2 preferred on every seed.
			g.Constraints = nil
			g.Affinities = []*spec.Affinity{{Attribute: attr, Operator: "=", Value: want, Weight: 100}}
			for _, id := range []string{"a", "b", "c", "d"} {
				plan := mustSchedule(t, &Request{EvalID: id, Job: newJob("j", g), Nodes: ns})
				if len(plan.Place) != 1 || plan.Place[0].NodeID != "n2" {
					t.Fatalf("eval %s (affinity): placed %+v", id, plan.Place)
				}
			}
		})
	}
}

// TestClassCacheSharesResults: many nodes of few classes; the cache must
// give each node its own class's answer.
func TestClassCacheSharesResults(t *testing.T) {
	ns := nodes(60)
	for i, n := range ns {
		n.Node.Attributes = map[string]string{"arch": []string{"amd64", "arm64", "riscv"}[i%3]}
	}
	withClasses(ns...)
	g := newGroup("g", 30, newTask("t", "wasm", 10, 10))
	g.Constraints = []*spec.Constraint{{Attribute: "${attr.arch}", Operator: "regexp", Value: "^(amd|arm)64$"}}
	plan := mustSchedule(t, &Request{EvalID: "e", Job: newJob("j", g), Nodes: ns})
	if len(plan.Place) != 30 {
		t.Fatalf("placed %d, failed %v", len(plan.Place), plan.Failed)
	}
	for _, a := range plan.Place {
		var idx int
		if _, err := fmtSscanf(a.NodeID, &idx); err != nil || idx%3 == 2 {
			t.Fatalf("%s placed on riscv node %s", a.Name, a.NodeID)
		}
	}
	g.Count = 50 // 40 feasible nodes, one copy each
	g.Constraints = append(g.Constraints, &spec.Constraint{Operator: "distinct_hosts"})
	plan = mustSchedule(t, &Request{EvalID: "e", Job: newJob("j", g), Nodes: ns})
	want := map[string]int{"constraint ${attr.arch} regexp ^(amd|arm)64$": 20, reasonDistinctHosts: 40}
	if e := plan.Failed["g"]; len(plan.Place) != 40 || e == nil || !maps.Equal(e.Reasons, want) || e.Missing != 10 {
		t.Fatalf("placed %d, failed %+v", len(plan.Place), e)
	}
}

// withClasses sets each node's ComputedClass, as the coordinator does.
func withClasses(ns ...*NodeState) []*NodeState {
	for _, n := range ns {
		n.Node.ComputedClass = ComputeClass(n.Node)
	}
	return ns
}

// TestStaleComputedClass: the class cache trusts ComputedClass, so a node
// whose class is stale is judged as its class; the Checker, which the
// plan applier runs, never reads the class and refuses the placement.
func TestStaleComputedClass(t *testing.T) {
	ns := withClasses(attrNode("n1"), attrNode("n2"))
	ns[1].Node.Attributes["kernel.name"] = "windows" // changed without recomputing its class
	g := newGroup("g", 2, newTask("t", "wasm", 10, 10))
	job := newJob("j", g)
	job.Constraints = []*spec.Constraint{{Attribute: "${attr.kernel.name}", Operator: "=", Value: "linux"}}
	plan := mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: ns})
	for _, a := range plan.Place {
		n := ns[0]
		if a.NodeID == "n2" {
			n = ns[1]
		}
		err := fits(n, a, job)
		if (a.NodeID == "n2") != (err != nil) {
			t.Fatalf("%s on %s: Fits = %v", a.Name, a.NodeID, err)
		}
	}
	ns[1].Node.ComputedClass = ComputeClass(ns[1].Node)
	plan = mustSchedule(t, &Request{EvalID: "e", Job: job, Nodes: ns})
	if e := plan.Failed["g"]; len(plan.Place) != 2 || plan.Place[0].NodeID != "n1" || plan.Place[1].NodeID != "n1" {
		t.Fatalf("after recomputing the class: placed %+v, failed %v", plan.Place, e)
	}
}

func TestParseTemplate(t *testing.T) {
	n := attrNode("n1").Node
	tests := []struct {
		in     string
		value  string
		set    bool
		unique bool
	}{
		{"", "", true, false},
		{"linux", "linux", true, false},
		{"${attr.kernel.name}", "linux", true, false},
		{"${meta.rack}-${node.datacenter}", "r1-dc1", true, false},
		{"rack ${meta.nope}", "", false, false},
		{"$${attr.kernel.name}", "${attr.kernel.name}", true, false},
		{"a$${b}${meta.zone}", "a${b}us-east-1a", true, false},
		{"${attr.kernel.name", "${attr.kernel.name", true, false}, // unterminated: literal
		{"${node.unique.id}", "n1", true, true},
		{"${node.unique.name}", "name-n1", true, true},
		{"${attr.unique.hostname}", "host-n1", true, true},
		{"${meta.unique.serial}", "", false, true},
		{"${node.class}", "edge", true, false},
		{"${node.pool}", "", false, false}, // not in the job language: never set
		{"${attr.}", "", false, false},
	}
	for _, tt := range tests {
		tpl := parseTemplate(tt.in)
		v, ok := tpl.resolve(n)
		if v != tt.value || ok != tt.set || tpl.unique() != tt.unique {
			t.Errorf("%q: resolve = %q, %v; unique %v; want %q, %v; unique %v", tt.in, v, ok, tpl.unique(), tt.value, tt.set, tt.unique)
		}
	}
}
