package sched

import (
	"fmt"
	"math/rand/v2"
	"testing"
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
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				plan, err := Schedule(req)
				if err != nil || len(plan.Place) != copies {
					b.Fatalf("placed %d, err %v", len(plan.Place), err)
				}
			}
			b.ReportMetric(float64(copies*b.N)/b.Elapsed().Seconds(), "placements/s")
		})
	}
}
