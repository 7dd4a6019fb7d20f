//go:build !race

package main

const (
	fanoutModuleMB = 20
	fanoutMinTTL   = 0 // the default, 5s (+ 3s grace)
)
