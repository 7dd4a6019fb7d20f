// Command hello is the program of the test image strata-test/hello
// (package testdocker builds it, static, into a FROM scratch image). It
// is what a container task needs to show: it serves HTTP, writes to
// stdout and stderr, exits with a chosen code, stops on SIGTERM and says
// which other signals it got.
//
//	hello [serve]   serve HTTP on :$PORT (default 8080) until SIGTERM; print
//	                "hello: serving on :PORT" once it listens, and
//	                "hello: got SIGHUP" (or SIGUSR1) on stdout for those
//	hello exit N    print a line on stdout and on stderr, exit with code N
//	hello eat MB    allocate and touch MB MiB, then sleep (to be OOM-killed)
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		serve()
	case "exit":
		code := 0
		if len(args) > 0 {
			code, _ = strconv.Atoi(args[0])
		}
		fmt.Printf("hello: exiting with code %d\n", code)
		fmt.Fprintf(os.Stderr, "hello: stderr before exit %d\n", code)
		os.Exit(code)
	case "eat":
		mb := 256
		if len(args) > 0 {
			mb, _ = strconv.Atoi(args[0])
		}
		fmt.Printf("hello: eating %d MiB\n", mb)
		var keep [][]byte
		for range mb {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Printf("hello: ate %d MiB\n", len(keep))
		time.Sleep(time.Hour)
	default:
		fmt.Fprintf(os.Stderr, "hello: unknown command %q\n", cmd)
		os.Exit(2)
	}
}

func serve() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		fmt.Fprintln(w, strings.Join(env, "\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(os.Stderr, "hello: %s %s\n", r.Method, r.URL.Path)
		fmt.Fprintf(w, "hello from %s\n", r.URL.Path)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// Listening before saying so: a client that read the line connects.
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		os.Exit(1)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	other := make(chan os.Signal, 4)
	signal.Notify(other, syscall.SIGHUP, syscall.SIGUSR1)
	fmt.Printf("hello: serving on :%s\n", port)
	for ctx.Err() == nil {
		select {
		case err := <-errc:
			fmt.Fprintf(os.Stderr, "hello: %v\n", err)
			os.Exit(1)
		case sig := <-other:
			name := "SIGHUP"
			if sig == syscall.SIGUSR1 {
				name = "SIGUSR1"
			}
			fmt.Printf("hello: got %s\n", name)
		case <-ctx.Done():
		}
	}
	fmt.Println("hello: stopping on SIGTERM")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
}
