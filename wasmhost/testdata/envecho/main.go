// Command envecho is a test module for package wasmhost: it answers with its
// environment, arguments and standard input, one per line. It runs in every
// mode (as a WAGI module it writes a CGI response; as a command the same
// text). The query string, QUERY_STRING in its environment, steers it:
//
//	loop=1        spin forever
//	sleep=<d>     sleep first
//	exit=<n>      exit with code n before writing anything
//	stderr=<s>    write s to stderr first
//	panic=<s>     panic(s)
//	alloc=<MiB>   allocate and touch that much memory first
//	now=1         add a NOW line with the wall clock (Unix seconds)
//	write=<path>  write "written" to the file at path (exit 1 on error)
//	read=<path>   add a FILE line with the file's content (exit 1 on error)
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

var sink []byte

func main() {
	q, _ := url.ParseQuery(os.Getenv("QUERY_STRING"))
	if q.Get("loop") != "" {
		for {
		}
	}
	if d, err := time.ParseDuration(q.Get("sleep")); err == nil {
		time.Sleep(d)
	}
	if s := q.Get("stderr"); s != "" {
		fmt.Fprintln(os.Stderr, s)
	}
	if s := q.Get("panic"); s != "" {
		panic(s)
	}
	if n, err := strconv.Atoi(q.Get("exit")); err == nil {
		os.Exit(n)
	}
	if n, err := strconv.Atoi(q.Get("alloc")); err == nil {
		sink = make([]byte, n<<20)
		for i := 0; i < len(sink); i += 4096 {
			sink[i] = 1
		}
	}
	if p := q.Get("write"); p != "" {
		if err := os.WriteFile(p, []byte("written"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "envecho:", err)
			os.Exit(1)
		}
	}
	var file string
	if p := q.Get("read"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "envecho:", err)
			os.Exit(1)
		}
		file = string(b)
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
	if q.Get("now") != "" {
		fmt.Fprintf(&b, "NOW %d\n", time.Now().Unix())
	}
	if q.Get("read") != "" {
		b.WriteString("FILE " + file + "\n")
	}
	os.Stdout.WriteString(b.String())
}
