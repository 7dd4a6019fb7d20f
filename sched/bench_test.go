package sched

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/strata-run/strata/spec"
)

// benchCluster is n nodes in two datacenters, a tenth of them without the
// wasm driver, with random existing usage and a few ports in use.
func benchCluster(n int) []*NodeState {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	out := make([]*NodeState, n)
	for i := range out {
		ns := newNode(fmt.Sprintf("node-%05d", i))
		ns.Node.Datacenter = []string{"dc1", "dc2"}[i%2]
		if i%10 == 0 {
			ns.Node.Drivers = map[string]bool{"docker": true}
		}
		ns.Node.Capacity = Resources{CPU: 8000, MemoryMB: 16384}
		ns.Used = Resources{CPU: r.IntN(6000), MemoryMB: r.IntN(12000)}
		for range 8 {
			ns.UsedPorts[MinDynamicPort+r.IntN(dynamicPortCount)] = true
		}
		out[i] = ns
	}
	return out
}

// BenchmarkSchedule places one job of 100 copies (two tasks, a dynamic
// and a static port) on clusters of 1k, 5k and 10k nodes.
func BenchmarkSchedule(b *testing.B) {
	const copies = 100
	for _, n := range []int{1000, 5000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			job := newJob("bench", newGroup("web", copies,
				newTask("api", "wasm", 250, 256, dynPort("http")),
				newTask("sidecar", "wasm", 50, 64, staticPort("metrics", 9100))))
			req := &Request{EvalID: "bench-eval", Job: job, JobVersion: 1, Nodes: benchCluster(n)}
			benchSchedule(b, req, copies)
		})
	}
}

// benchAttributes gives each node of a bench cluster the kind of
// fingerprint an agent reports: 24 attributes (OS, CPU, memory, driver
// versions, unique host name and IP), a class and meta for rack and zone.
// Twenty racks in three zones, four hardware profiles (one of them
// Windows): with benchCluster's datacenters and drivers the nodes fall in
// 80 computed classes, stored in ComputedClass as the coordinator does.
func benchAttributes(ns []*NodeState) {
	type profile struct{ kernel, model, arch, cores, os, wasm, docker, class string }
	profiles := []profile{
		{"linux", "Intel(R) Xeon(R) Gold 6338", "amd64", "32", "22.04", "1.11.2", "24.0.7", "general"},
		{"linux", "AMD EPYC 7763", "amd64", "64", "24.04", "1.12.0", "26.1.0", "compute"},
		{"linux", "Neoverse-N1", "arm64", "16", "24.04", "1.12.0", "25.0.3", "general"},
		{"windows", "Intel(R) Core(TM) i5-1145G7", "amd64", "4", "2022", "1.10.0", "24.0.7", "edge"},
	}
	for i, n := range ns {
		nd := n.Node
		rack := i % 20
		p := profiles[i/20%len(profiles)]
		kernel := p.kernel
		nd.Class = p.class
		nd.Attributes = map[string]string{
			"kernel.name":           kernel,
			"kernel.version":        "6.8.0-45-generic",
			"os.name":               "ubuntu",
			"os.version":            p.os,
			"arch":                  p.arch,
			"cpu.arch":              p.arch,
			"cpu.modelname":         p.model,
			"cpu.numcores":          p.cores,
			"cpu.frequency":         "2600",
			"cpu.totalcompute":      "83200",
			"memory.totalbytes":     strconv.Itoa(16 << 30),
			"driver.wasm":           "1",
			"driver.wasm.version":   p.wasm,
			"driver.docker":         "1",
			"driver.docker.version": p.docker,
			"strata.version":        "0.9.0",
			"strata.revision":       "f6e98e0",
			"unique.hostname":       fmt.Sprintf("host-%05d", i),
			"unique.network.ip":     fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			"network.speed":         "10000",
			"storage.volume":        "/dev/nvme0n1p1",
			"storage.bytesfree":     "100000000000",
			"storage.bytestotal":    "250000000000",
			"nomad.compat":          "true",
		}
		nd.Meta = map[string]string{
			"rack": fmt.Sprintf("r%02d", rack),
			"zone": []string{"a", "b", "c"}[rack%3],
		}
		nd.ComputedClass = ComputeClass(nd)
	}
}

// BenchmarkScheduleConstrained is BenchmarkSchedule's job and clusters
// with the placement features: job and group constraints (=, version,
// regexp, set_contains_any), an affinity and an even spread over zones.
// With an affinity or a spread Nomad ranks max(100, count) feasible nodes
// per placement instead of log2(n), which is most of the difference.
func BenchmarkScheduleConstrained(b *testing.B) {
	const copies = 100
	for _, bc := range []struct {
		nodes   int
		classes bool // ComputedClass set, as the coordinator does
	}{{1000, true}, {5000, true}, {10000, true}, {5000, false}} {
		name := fmt.Sprintf("nodes=%d", bc.nodes)
		if !bc.classes {
			name = "noclasses/" + name
		}
		b.Run(name, func(b *testing.B) {
			g := newGroup("web", copies,
				newTask("api", "wasm", 250, 256, dynPort("http")),
				newTask("sidecar", "wasm", 50, 64, staticPort("metrics", 9100)))
			g.Constraints = []*spec.Constraint{
				{Attribute: "${attr.driver.wasm.version}", Operator: "version", Value: ">= 1.11"},
				{Attribute: "${attr.cpu.modelname}", Operator: "regexp", Value: "Xeon|EPYC"},
				{Attribute: "${meta.zone}", Operator: "set_contains_any", Value: "a,b,c"},
			}
			g.Affinities = []*spec.Affinity{{Attribute: "${node.class}", Operator: "=", Value: "compute", Weight: 50}}
			g.Spreads = []*spec.Spread{{Attribute: "${meta.zone}", Weight: 50}}
			job := newJob("bench", g)
			job.Constraints = []*spec.Constraint{{Attribute: "${attr.kernel.name}", Operator: "=", Value: "linux"}}
			ns := benchCluster(bc.nodes)
			benchAttributes(ns)
			if !bc.classes {
				for _, n := range ns {
					n.Node.ComputedClass = ""
				}
			}
			benchSchedule(b, &Request{EvalID: "bench-eval", Job: job, JobVersion: 1, Nodes: ns}, copies)
		})
	}
}

// BenchmarkComputeClass is what the coordinator pays per node
// registration or update (benchAttributes' 24-attribute fingerprint).
func BenchmarkComputeClass(b *testing.B) {
	ns := benchCluster(64)
	benchAttributes(ns)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ComputeClass(ns[i%len(ns)].Node)
	}
}

// benchSchedule runs Schedule(req) b.N times, each placing copies, and
// reports placements/s (wall clock) and cpu-ns/op (CPU time of the
// process per Schedule call, GC included: it stays meaningful on a loaded
// machine, where ns/op does not).
func benchSchedule(b *testing.B, req *Request, copies int) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		plan, err := Schedule(req)
		if err != nil || len(plan.Place) != copies {
			b.Fatalf("placed %d, err %v, failed %v", len(plan.Place), err, plan.Failed)
		}
	}
	cpu = processCPU() - cpu
	b.ReportMetric(float64(copies*b.N)/b.Elapsed().Seconds(), "placements/s")
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}
