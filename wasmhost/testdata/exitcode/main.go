// Command exitcode is a test module for package wasmhost: it writes a line
// to stdout and one to stderr, then exits with the code its first argument
// gives (3 without one): what a Go batch task that fails on purpose does.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	code := 3
	if len(os.Args) > 1 {
		if n, err := strconv.Atoi(os.Args[1]); err == nil {
			code = n
		}
	}
	fmt.Println("failing on purpose")
	fmt.Fprintln(os.Stderr, "exitcode: giving up")
	os.Exit(code)
}
