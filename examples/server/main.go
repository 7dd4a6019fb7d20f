package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ln, err := listener()
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           newHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	fmt.Fprintln(os.Stderr, "server: serving on", ln.Addr())
	fmt.Fprintln(os.Stderr, "server:", srv.Serve(ln))
	os.Exit(1)
}

// listener returns the TCP listener the agent opened for this instance: the
// file descriptor in STRATA_LISTEN_FD (3 when the task has no mounts),
// switched to non-blocking mode so that Go's scheduler, not the socket,
// does the waiting.
func listener() (net.Listener, error) {
	fd := 3
	if s := os.Getenv("STRATA_LISTEN_FD"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("STRATA_LISTEN_FD=%q: %v", s, err)
		}
		fd = n
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("fd %d: %v (run this module in listener mode)", fd, err)
	}
	return net.FileListener(os.NewFile(uintptr(fd), "listener"))
}

// newHandler answers every request with "hello from <path>", and /healthz
// with "ok" for the agent's health check.
func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello from %s\n", r.URL.Path)
	})
	return mux
}
