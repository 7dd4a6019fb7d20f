// Command worker is a Strata command-mode module: a batch job that runs once
// to its end. It writes a sha256sum-style manifest of every file under a
// directory (its argument, default /data) to stdout, or with -out FILE to
// that file, and a summary to stderr; the agent keeps both in the task's
// log files.
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -o examples/worker/worker.wasm ./examples/worker
//
// A command-mode instance sees no filesystem unless the job mounts a host
// volume (examples/worker/worker.hcl mounts the agent's "example-data"
// volume read-only at /data: start the agent with -host-volume
// example-data=/some/dir). With -out under a read-only volume the write
// fails and so does the task. It
// exits 0 when done, which completes the task; exit code 1 (the directory
// cannot be read) fails it, and the restart policy decides what follows.
//
// The wasmhost tests run it under wazero (TestWorkerExample).
package main
