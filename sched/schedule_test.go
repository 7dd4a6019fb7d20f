package sched

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/strata-run/strata/spec"
)

// randomCluster builds a cluster of up to 40 nodes with a mix of states,
// datacenters, drivers, usage and ports in use (sometimes a nearly full
// dynamic range).
func randomCluster(r *rand.Rand) []*NodeState {
	n := 1 + r.IntN(40)
	out := make([]*NodeState, n)
	for i := range out {
		ns := newNode(fmt.Sprintf("n%02d", i))
		nd := ns.Node
		nd.Datacenter = []string{"dc1", "dc2", "dc3"}[r.IntN(3)]
		switch x := r.IntN(20); {
		case x == 0:
			nd.Status = NodeDown
		case x == 1:
			nd.Status = "initializing"
		case x == 2:
			nd.Eligible = false
		}
		nd.Drivers["wasm"] = r.IntN(10) > 0
		if r.IntN(2) == 0 {
			nd.Drivers["docker"] = r.IntN(5) > 0
		}
		randomAttributes(r, nd)
		nd.Capacity = Resources{CPU: 1000 + r.IntN(7000), MemoryMB: 1024 + r.IntN(15000)}
		ns.Used = Resources{CPU: r.IntN(nd.Capacity.CPU + 1), MemoryMB: r.IntN(nd.Capacity.MemoryMB + 1)}
		for _, p := range []int{80, 443, 8080, 20100} {
			if r.IntN(4) == 0 {
				ns.UsedPorts[p] = true
			}
		}
		for range r.IntN(50) {
			ns.UsedPorts[MinDynamicPort+r.IntN(dynamicPortCount)] = true
		}
		if r.IntN(25) == 0 { // nearly full dynamic range
			full := make(map[int]bool, dynamicPortCount+len(ns.UsedPorts))
			for p := range ns.UsedPorts {
				full[p] = true
			}
			keep := r.IntN(4)
			for p := MinDynamicPort; p <= MaxDynamicPort-keep; p++ {
				full[p] = true
			}
			ns.UsedPorts = full
		}
		out[i] = ns
	}
	return out
}

// randomJob builds a valid job of up to three groups.
func randomJob(r *rand.Rand) *spec.Job {
	job := newJob("job")
	if r.IntN(2) == 0 {
		job.Datacenters = []string{"dc1", "dc2"}[:1+r.IntN(2)]
	}
	for g := range 1 + r.IntN(3) {
		grp := newGroup(fmt.Sprintf("g%d", g), r.IntN(9))
		statics := []int{80, 443, 8080, 20100, 25000}
		r.Shuffle(len(statics), func(i, j int) { statics[i], statics[j] = statics[j], statics[i] })
		label := 0
		for tk := range 1 + r.IntN(2) {
			driver := "wasm"
			if r.IntN(5) == 0 {
				driver = "docker"
			}
			var ports []*spec.Port
			for range r.IntN(3) {
				p := &spec.Port{Label: fmt.Sprintf("p%d", label), To: r.IntN(2) * 8080}
				label++
				if r.IntN(3) == 0 && len(statics) > 0 {
					p.Static, statics = statics[0], statics[1:]
				}
				ports = append(ports, p)
			}
			grp.Tasks = append(grp.Tasks, newTask(fmt.Sprintf("t%d", tk), driver, 50+r.IntN(1500), 32+r.IntN(2048), ports...))
		}
		randomPlacement(r, &grp.Constraints, &grp.Affinities, &grp.Spreads)
		job.Groups = append(job.Groups, grp)
	}
	randomPlacement(r, &job.Constraints, &job.Affinities, &job.Spreads)
	return job
}

// randomAttributes gives a node attributes, meta and a class drawn from
// small sets, so that random constraints split clusters.
func randomAttributes(r *rand.Rand, n *Node) {
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	n.Attributes = map[string]string{
		"kernel.name":     pick("linux", "linux", "windows"),
		"cpu.numcores":    pick("2", "4", "8", "16"),
		"unique.hostname": "host-" + n.ID,
	}
	if v := pick("", "19.03.1", "24.0.7", "25.0.1-rc.1"); v != "" {
		n.Attributes["driver.docker.version"] = v
	}
	n.Meta = map[string]string{}
	if v := pick("", "r1", "r2", "r3"); v != "" {
		n.Meta["rack"] = v
	}
	n.Class = pick("", "edge", "gpu")
	if r.IntN(3) > 0 { // most nodes have their class computed, as the coordinator does
		n.ComputedClass = ComputeClass(n)
	}
}

// randomConstraints is the pool random jobs draw constraints from; the
// last ones read unique values (checked per node, not per class).
var randomConstraints = []spec.Constraint{
	{Attribute: "${attr.kernel.name}", Operator: "=", Value: "linux"},
	{Attribute: "${attr.cpu.numcores}", Operator: ">=", Value: "4"},
	{Attribute: "${meta.rack}", Operator: "set_contains_any", Value: "r1,r2"},
	{Attribute: "${attr.driver.docker.version}", Operator: "version", Value: ">= 20.10"},
	{Attribute: "${attr.driver.docker.version}", Operator: "semver", Value: ">= 25.0.0-beta"},
	{Attribute: "${node.class}", Operator: "!=", Value: "gpu"},
	{Attribute: "${meta.rack}", Operator: "is_set"},
	{Attribute: "${attr.kernel.name}", Operator: "regexp", Value: "^lin"},
	{Attribute: "${meta.rack}", Operator: "=", Value: "${meta.rack}"},
	{Attribute: "${attr.unique.hostname}", Operator: "regexp", Value: "[0-6]$"},
	{Attribute: "${node.unique.name}", Operator: "!=", Value: "name-n03"},
}

// randomPlacement sometimes adds constraints (distinct_hosts among them),
// affinities and spreads to a job or group.
func randomPlacement(r *rand.Rand, cs *[]*spec.Constraint, as *[]*spec.Affinity, ss *[]*spec.Spread) {
	for range r.IntN(3) {
		c := randomConstraints[r.IntN(len(randomConstraints))]
		*cs = append(*cs, &c)
	}
	if r.IntN(6) == 0 {
		*cs = append(*cs, &spec.Constraint{Operator: "distinct_hosts"})
	}
	if r.IntN(4) == 0 {
		c := randomConstraints[r.IntN(len(randomConstraints))]
		*as = append(*as, &spec.Affinity{Attribute: c.Attribute, Operator: c.Operator, Value: c.Value, Weight: r.IntN(201) - 100})
	}
	switch r.IntN(8) {
	case 0:
		*ss = append(*ss, &spec.Spread{Attribute: "${meta.rack}", Weight: 1 + r.IntN(100)})
	case 1:
		*ss = append(*ss, &spec.Spread{Attribute: "${node.datacenter}", Weight: 1 + r.IntN(100),
			Targets: []*spec.SpreadTarget{{Value: "dc1", Percent: 50}, {Value: "dc2", Percent: r.IntN(51)}}})
	}
}

func TestDeterminism(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 10 {
		ns, job := randomCluster(r), randomJob(r)
		req := &Request{EvalID: fmt.Sprintf("eval-%d", i), Job: job, JobVersion: 3, Nodes: ns}
		nodesBefore := cloneNodes(ns)
		a, b := mustSchedule(t, req), mustSchedule(t, req)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("case %d: two plans for the same request differ", i)
		}
		if !reflect.DeepEqual(nodesBefore, ns) {
			t.Fatalf("case %d: Schedule modified the node states", i)
		}
	}
}

func TestSeedComesFromEvalID(t *testing.T) {
	job := newJob("j", newGroup("g", 5, newTask("t", "wasm", 10, 10, dynPort("http"))))
	ns := nodes(100)
	a := mustSchedule(t, &Request{EvalID: "one", Job: job, Nodes: ns})
	b := mustSchedule(t, &Request{EvalID: "two", Job: job, Nodes: ns})
	if a.Place[0].ID == b.Place[0].ID || reflect.DeepEqual(a.Place, b.Place) {
		t.Fatal("different evaluation IDs gave the same plan")
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for _, p := range a.Place {
		if !uuid.MatchString(p.ID) || seen[p.ID] || p.EvalID != "one" || p.Name != fmt.Sprintf("j.g[%d]", p.Index) || p.NodeName != "name-"+p.NodeID {
			t.Fatalf("placement %+v", p)
		}
		seen[p.ID] = true
	}
}

// TestPlanProperties schedules random jobs on random clusters, twice (a
// first deploy, then an update or scale with some allocations failed and
// a node gone down), and checks that applying each plan, stops first,
// never overcommits a node, never assigns a port twice on a node, and
// that every placement passes Fits when applied in order.
func TestPlanProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 7))
	replacements, followUps := 0, 0
	for i := range 200 {
		ns, job := randomCluster(r), randomJob(r)
		req := &Request{EvalID: fmt.Sprintf("first-%d", i), Job: job, JobVersion: 1, Nodes: ns}
		plan := mustSchedule(t, req)
		checkPlan(t, req, plan)

		// Second round: the first plan is running, some of it failed.
		state := applyPlan(t, ns, plan, job)
		var existingAllocs []*Allocation
		for _, a := range plan.Place {
			c := *a
			c.ClientStatus = ClientRunning
			if r.IntN(3) == 0 {
				c.ClientStatus = []string{ClientFailed, ClientLost}[r.IntN(2)]
				state[c.NodeID].Used = state[c.NodeID].Used.Add(Resources{CPU: -c.Resources.CPU, MemoryMB: -c.Resources.MemoryMB})
				for _, p := range c.Ports {
					delete(state[c.NodeID].UsedPorts, p.Value)
				}
			}
			existingAllocs = append(existingAllocs, &c)
		}
		ns2 := make([]*NodeState, 0, len(ns))
		for _, n := range ns {
			ns2 = append(ns2, state[n.Node.ID])
		}
		if len(ns2) > 1 && r.IntN(4) == 0 {
			ns2[r.IntN(len(ns2))].Node.Status = NodeDown
		}
		job2 := job
		version := uint64(1)
		if r.IntN(2) == 0 {
			version = 2
		}
		for _, g := range job2.Groups {
			g.Count = r.IntN(9)
		}
		// Half the groups reschedule failures (due now or later), the
		// others have no policy: their failures hold their index.
		for _, g := range job2.Groups {
			if r.IntN(2) == 0 {
				g.Reschedule = &spec.Reschedule{Delay: spec.Duration(5 * time.Second), DelayFunction: spec.DelayConstant, Unlimited: true}
			}
		}
		for _, a := range existingAllocs {
			a.FinishedAt = t0
		}
		now := t0 + int64(r.IntN(2))*sec(10)
		req2 := &Request{EvalID: fmt.Sprintf("second-%d", i), Job: job2, JobVersion: version, Nodes: ns2, Existing: existingAllocs, Now: now}
		plan2 := mustSchedule(t, req2)
		checkPlan(t, req2, plan2)
		n, f := checkReschedules(t, req2, plan2)
		replacements, followUps = replacements+n, followUps+f
	}
	if replacements == 0 || followUps == 0 {
		t.Fatalf("the random cases rescheduled %d failures and asked %d follow-ups: both must happen", replacements, followUps)
	}
	t.Logf("%d failures rescheduled, %d follow-ups asked", replacements, followUps)
}

// checkReschedules: a placement that replaces an allocation replaces a
// failed one of its group and index, at most once, only when its group
// has a policy and the delay passed; a follow-up names failed allocations
// not replaced, due after now.
func checkReschedules(t *testing.T, req *Request, plan *Plan) (replacements, followUps int) {
	t.Helper()
	byID := map[string]*Allocation{}
	for _, a := range req.Existing {
		byID[a.ID] = a
	}
	replaced := map[string]bool{}
	for _, a := range plan.Place {
		if a.PreviousAllocation == "" {
			continue
		}
		prev := byID[a.PreviousAllocation]
		g := req.Job.Lookup(a.Group)
		if prev == nil || prev.ClientStatus != ClientFailed || prev.Group != a.Group || prev.Index != a.Index ||
			replaced[prev.ID] || g.Reschedule == nil || req.Now < prev.FinishedAt+int64(g.Reschedule.Delay)-int64(rescheduleWindow) {
			t.Fatalf("%s: placement %s replaces %+v", req.EvalID, a.Name, prev)
		}
		replaced[prev.ID] = true
	}
	for _, f := range plan.FollowUps {
		if f.WaitUntil <= req.Now {
			t.Fatalf("%s: follow-up due at %d, not after now %d", req.EvalID, f.WaitUntil, req.Now)
		}
		for _, id := range f.AllocIDs {
			if a := byID[id]; a == nil || a.ClientStatus != ClientFailed || replaced[id] {
				t.Fatalf("%s: follow-up for %+v", req.EvalID, a)
			}
		}
	}
	return len(replaced), len(plan.FollowUps)
}

func checkPlan(t *testing.T, req *Request, plan *Plan) {
	t.Helper()
	state := applyPlan(t, req.Nodes, plan, req.Job) // Fits at every placement
	for id, ns := range state {
		if ns.Used.CPU > ns.Node.Capacity.CPU || ns.Used.MemoryMB > ns.Node.Capacity.MemoryMB {
			t.Fatalf("%s: node %s overcommitted: %+v of %+v", req.EvalID, id, ns.Used, ns.Node.Capacity)
		}
	}
	// Ports: distinct per node across kept and placed allocations.
	ports := map[string]map[int]string{}
	stopped := map[string]bool{}
	for _, a := range plan.Stop {
		stopped[a.ID] = true
	}
	claim := func(a *Allocation) {
		if ports[a.NodeID] == nil {
			ports[a.NodeID] = map[int]string{}
		}
		for _, p := range a.Ports {
			if prev, dup := ports[a.NodeID][p.Value]; dup {
				t.Fatalf("%s: port %d on %s assigned to %s and %s", req.EvalID, p.Value, a.NodeID, prev, a.Name)
			}
			ports[a.NodeID][p.Value] = a.Name
		}
	}
	kept := map[string]int{}
	for _, a := range req.Existing {
		if !a.Terminal() && !stopped[a.ID] {
			claim(a)
			kept[a.Group]++
		}
	}
	placed := map[string]int{}
	for _, a := range plan.Place {
		claim(a)
		placed[a.Group]++
	}
	// Failed allocations the policy does not reschedule (the random jobs
	// have none) keep their index: the group runs short by them.
	held := map[string]int{}
	replaced := map[string]bool{}
	for _, a := range plan.Place {
		replaced[a.PreviousAllocation] = true
	}
	for _, a := range req.Existing {
		if a.ClientStatus == ClientFailed && a.DesiredStatus == DesiredRun && !stopped[a.ID] && !replaced[a.ID] {
			held[a.Group]++
		}
	}
	checkDistinctHosts(t, req, plan, stopped)
	// Every group ends with Count copies, or explains the shortfall.
	for _, g := range req.Job.Groups {
		missing := 0
		if e := plan.Failed[g.Name]; e != nil {
			missing = e.Missing
			if e.NodesFeasible != 0 || e.NodesEvaluated != len(req.Nodes) {
				t.Fatalf("%s: explanation %+v for %d nodes", req.EvalID, e, len(req.Nodes))
			}
		}
		if got := kept[g.Name] + placed[g.Name] + missing + held[g.Name]; got != g.Count && !(held[g.Name] > 0 && got > g.Count) {
			t.Fatalf("%s: group %s: kept %d + placed %d + missing %d + held failed %d != count %d",
				req.EvalID, g.Name, kept[g.Name], placed[g.Name], missing, held[g.Name], g.Count)
		}
		if kept[g.Name]+placed[g.Name]+missing > g.Count {
			t.Fatalf("%s: group %s: kept %d + placed %d + missing %d > count %d",
				req.EvalID, g.Name, kept[g.Name], placed[g.Name], missing, g.Count)
		}
	}
}

// TestFitsAgreesWithFeasibility checks, for every node and group of random
// clusters, that Checker.Fits accepts an allocation exactly when the
// scheduler's feasibility pass accepts the node, and otherwise gives the
// same reason.
func TestFitsAgreesWithFeasibility(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 100 {
		ns, job := randomCluster(r), randomJob(r)
		asks, err := newGroupAsks(job)
		if err != nil {
			t.Fatal(err)
		}
		p := newPlacer(&Request{EvalID: "x", Job: job, Nodes: ns}, asks)
		for ni, n := range ns {
			for _, g := range asks {
				reason := p.feasibility(ni, g, g.res)
				a := &Allocation{NodeID: n.Node.ID, Group: g.group.Name, Resources: g.res, Ports: candidatePorts(n, g)}
				err := fits(n, a, job)
				var fe *FitError
				if (reason == feasible) != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Reason != p.reasons.names[reason])) {
					t.Fatalf("case %d node %d group %s: feasibility says %q, Fits says %v (ports %v)",
						i, ni, g.group.Name, p.reasons.names[reason], err, a.Ports)
				}
			}
		}
	}
}

// candidatePorts picks ports for g on n the way the scheduler would, or,
// when the dynamic range is exhausted, the best Fits could be offered.
func candidatePorts(n *NodeState, g *groupAsk) []PortMapping {
	if ports, err := assignPorts(newRNG("c", 0), n, nil, g); err == nil {
		return ports
	}
	var out []PortMapping
	for _, a := range g.ports {
		v := a.static
		if v == 0 { // any port of the range is used by the node or the alloc
			for v = MinDynamicPort; !n.UsedPorts[v] && !slices.Contains(g.staticPorts, v); v++ {
			}
		}
		out = append(out, PortMapping{Label: a.label, Value: v})
	}
	return out
}

// checkDistinctHosts: with distinct_hosts at job level no node holds two
// allocations of the job; at group level, two of one group.
func checkDistinctHosts(t *testing.T, req *Request, plan *Plan, stopped map[string]bool) {
	t.Helper()
	enabled := func(cs []*spec.Constraint) bool {
		return slices.ContainsFunc(cs, func(c *spec.Constraint) bool { return c.Operator == "distinct_hosts" })
	}
	jobLevel := enabled(req.Job.Constraints)
	type key struct{ node, group string }
	seen := map[key]string{}
	check := func(a *Allocation) {
		g := req.Job.Lookup(a.Group)
		if g == nil {
			return
		}
		k := key{a.NodeID, a.Group}
		if jobLevel {
			k.group = ""
		} else if !enabled(g.Constraints) {
			return
		}
		if prev, dup := seen[k]; dup {
			t.Fatalf("%s: distinct_hosts: %s and %s on node %s", req.EvalID, prev, a.Name, a.NodeID)
		}
		seen[k] = a.Name
	}
	for _, a := range req.Existing {
		if !a.Terminal() && !stopped[a.ID] {
			check(a)
		}
	}
	for _, a := range plan.Place {
		check(a)
	}
}

// TestClassCacheIsTransparent: checking constraints once per computed
// class must give the plans checking every node gives.
func TestClassCacheIsTransparent(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 200 {
		ns, job := randomCluster(r), randomJob(r)
		for k, n := range ns { // few classes: nodes copy the fingerprint of one of the first three
			tmpl := ns[k%3].Node
			n.Node.Datacenter, n.Node.Class, n.Node.Drivers = tmpl.Datacenter, tmpl.Class, maps.Clone(tmpl.Drivers)
			n.Node.Attributes, n.Node.Meta = maps.Clone(tmpl.Attributes), maps.Clone(tmpl.Meta)
			n.Node.Attributes["unique.hostname"] = "host-" + n.Node.ID
		}
		withClasses(ns...)
		req := &Request{EvalID: fmt.Sprintf("class-%d", i), Job: job, JobVersion: 1, Nodes: ns}
		cached := mustSchedule(t, req)
		for _, n := range ns {
			n.Node.ComputedClass = ""
		}
		if perNode := mustSchedule(t, req); !reflect.DeepEqual(cached, perNode) {
			t.Fatalf("case %d: plans differ with and without computed classes", i)
		}
	}
}

// A re-plan of the same evaluation (another attempt) draws new
// allocation IDs: a retry must never reuse an ID an earlier attempt
// committed.
func TestAttemptsDrawDistinctIDs(t *testing.T) {
	job := newJob("web", newGroup("g", 3, newTask("t", "wasm", 100, 64)))
	req := &Request{EvalID: "e1", Job: job, Nodes: nodes(5)}
	first := mustSchedule(t, req)
	again := mustSchedule(t, req)
	req.Attempt = 42
	retry := mustSchedule(t, req)
	seen := map[string]bool{}
	for i, a := range first.Place {
		if again.Place[i].ID != a.ID {
			t.Fatal("the same request must give the same IDs (determinism)")
		}
		seen[a.ID] = true
	}
	for _, a := range retry.Place {
		if seen[a.ID] {
			t.Fatalf("attempt 42 reused allocation ID %s", a.ID)
		}
	}
}
