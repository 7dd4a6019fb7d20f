// Command hello is the smallest Strata http-mode (WAGI) module: it answers
// every request with "hello from <PATH_INFO>". With HELLO_VERSION set in
// its env it says which version answered ("hello from /x (v2)"), and with
// HEALTHY=false its /health answers 503: enough to try a rolling update, a
// canary and an automatic revert (examples/hello/deploy.hcl).
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -o examples/hello/hello.wasm ./examples/hello
//
// A WAGI module reads the request from its environment (CGI variables) and
// standard input, and writes the response to standard output: header lines,
// a blank line, then the body.
//
// Deploy it with examples/hello/hello.hcl (see the README: `make run`).
package main
