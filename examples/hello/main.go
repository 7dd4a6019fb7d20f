package main

import (
	"io"
	"os"
)

func main() {
	respond(os.Stdout, os.Getenv("PATH_INFO"), os.Getenv)
}

// respond writes the WAGI response for a request whose PATH_INFO is
// pathInfo. Two environment variables make it useful for deployment
// examples and tests: HELLO_VERSION, when set, is appended to the answer
// ("hello from /x (v2)"), and HEALTHY=false makes /health answer 503.
func respond(w io.Writer, pathInfo string, getenv func(string) string) {
	if pathInfo == "" {
		pathInfo = "/"
	}
	if pathInfo == "/health" && getenv("HEALTHY") == "false" {
		io.WriteString(w, "Status: 503 Service Unavailable\nContent-Type: text/plain\n\nunhealthy\n")
		return
	}
	suffix := ""
	if v := getenv("HELLO_VERSION"); v != "" {
		suffix = " (" + v + ")"
	}
	io.WriteString(w, "Content-Type: text/plain\n\nhello from "+pathInfo+suffix+"\n")
}
