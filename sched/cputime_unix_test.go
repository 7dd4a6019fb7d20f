//go:build unix

package sched

import "syscall"

// processCPU returns the CPU time the process has used, user plus system,
// in nanoseconds: benchmarks report it per operation, which stays
// meaningful when other processes compete for the cores and wall-clock
// ns/op does not.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
