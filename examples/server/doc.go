// Command server is a Strata listener-mode module: a long-lived Go net/http
// server on the TCP listener the agent opens for it.
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -o examples/server/server.wasm ./examples/server
//
// In listener mode the agent listens on the task's port and hands the socket
// to the instance as a file descriptor (wazero's experimental/sock), fd 3
// unless the task has mounts; STRATA_LISTEN_FD says which. WASI preview 1
// cannot open sockets itself, so this is the only network the module has.
// The module serves it with net.FileListener after making it non-blocking.
// One instance serves every request, keeping its state between them; the
// agent stops it (and frees the port) when the allocation stops.
//
// Deploy it with examples/server/server.hcl. The wasmhost tests run it
// under wazero (TestServerExample).
package main
