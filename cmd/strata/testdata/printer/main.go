// Command printer is the command-mode module of the alloc tests: each run
// counts itself in /data/count, prints two numbered lines to stdout and
// one to stderr, and fails (exit code 2) so that the restart policy runs
// it again. It panics rather than calling os.Exit: a Go 1.26 wasip1 module
// built in this Go module that calls os.Exit crashes at start under
// wasmhost (see docs/RATIONALE.md).
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	b, _ := os.ReadFile("/data/count")
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	if err := os.WriteFile("/data/count", []byte(strconv.Itoa(n)), 0o644); err != nil {
		panic(err)
	}
	fmt.Printf("attempt %d line 1\n", n)
	fmt.Printf("attempt %d line 2\n", n)
	fmt.Fprintf(os.Stderr, "printer: attempt %d failing\n", n)
	panic(fmt.Sprintf("attempt %d failed", n))
}
