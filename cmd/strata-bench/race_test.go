//go:build race

package main

import "time"

// The race detector slows QUIC about tenfold and the whole suite runs at
// once: a smaller module, and a TTL that tolerates the slowdown (what is
// checked under it is the absence of data races, not latency).
const (
	fanoutModuleMB = 1
	fanoutMinTTL   = 15 * time.Second
)
