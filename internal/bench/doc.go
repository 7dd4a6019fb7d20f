// Package bench holds the measurements behind cmd/strata-bench: each one
// drives real Strata components and prints figures, last a line
// `<metric>=<value>` that scripts can read.
package bench
