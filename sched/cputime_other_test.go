//go:build !unix

package sched

// processCPU is not measured here: benchmarks report 0 cpu-ns/op.
func processCPU() int64 { return 0 }
