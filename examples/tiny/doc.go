// Package tiny holds the smallest Strata http-mode (WAGI) module, written by
// hand in WebAssembly text: tiny.wat, assembled into the 153-byte tiny.wasm.
// It answers every request with "Content-Type: text/plain" and "hello", and
// imports a single WASI function (fd_write). It is what the agent's
// per-request cost is measured with (cmd/strata-bench wasm): everything but
// instantiating and running the module is the agent's own overhead.
//
// tiny.wasm is committed. To rebuild it, either of:
//
//	wat2wasm -o examples/tiny/tiny.wasm examples/tiny/tiny.wat   # wabt
//	go test ./examples/tiny -run TestTinyWasm -update             # no wabt needed
//
// TestTinyWasm checks that the committed bytes are what the encoder in
// tiny_test.go assembles from tiny.wat's structure (and, where wat2wasm is
// installed, what wabt makes of tiny.wat), then runs them.
//
// Deploy it with examples/tiny/tiny.hcl.
package tiny
