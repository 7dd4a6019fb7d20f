// Command env shows a task its runtime environment: it prints every
// variable it was given, sorted, one KEY=VALUE a line, then the file
// ECHO_FILE names, if any. Run in mode "http" (WAGI), it answers each
// request with that text; in mode "command" it prints it to its stdout
// log. examples/env/env.hcl runs three copies behind a group port, each
// with INDEX = "${NOMAD_ALLOC_INDEX}"; examples/env/dispatch.hcl is a
// parameterized job whose payload is the file it prints.
//
// Build it with:
//
//	GOOS=wasip1 GOARCH=wasm go build -o examples/env/env.wasm ./examples/env
package main
