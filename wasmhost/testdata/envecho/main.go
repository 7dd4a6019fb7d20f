// Command envecho is a WAGI test module for package wasmhost: it answers with
// its environment, arguments and standard input, one per line. The query
// string steers it: loop=1 spins forever, sleep=<duration> sleeps first,
// exit=<n> exits with code n before writing anything.
package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	q, _ := url.ParseQuery(os.Getenv("QUERY_STRING"))
	if q.Get("loop") != "" {
		for {
		}
	}
	if d, err := time.ParseDuration(q.Get("sleep")); err == nil {
		time.Sleep(d)
	}
	if n, err := strconv.Atoi(q.Get("exit")); err == nil {
		os.Exit(n)
	}
	stdin, _ := io.ReadAll(os.Stdin)
	env := os.Environ()
	slices.Sort(env)

	var b strings.Builder
	b.WriteString("Content-Type: text/plain\nX-Echo: yes\n\n")
	for _, kv := range env {
		b.WriteString("ENV " + kv + "\n")
	}
	for i, a := range os.Args {
		fmt.Fprintf(&b, "ARG%d %s\n", i, a)
	}
	b.WriteString("STDIN " + string(stdin) + "\n")
	os.Stdout.WriteString(b.String())
}
