// Command hello is the smallest Strata http-mode (WAGI) module: it answers
// every request with "hello from <PATH_INFO>".
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -o examples/hello/hello.wasm ./examples/hello
//
// A WAGI module reads the request from its environment (CGI variables) and
// standard input, and writes the response to standard output: header lines,
// a blank line, then the body.
package main

import (
	"io"
	"os"
)

func main() {
	respond(os.Stdout, os.Getenv("PATH_INFO"))
}

// respond writes the WAGI response for a request whose PATH_INFO is pathInfo.
func respond(w io.Writer, pathInfo string) {
	if pathInfo == "" {
		pathInfo = "/"
	}
	io.WriteString(w, "Content-Type: text/plain\n\nhello from "+pathInfo+"\n")
}
