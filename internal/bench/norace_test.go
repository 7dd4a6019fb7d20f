//go:build !race

package bench

const (
	fanoutModuleMB = 20
	fanoutMinTTL   = 0 // the default, 5s (+ 3s grace)
)
