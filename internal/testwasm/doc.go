// Package testwasm builds Go packages as WASI preview 1 modules for tests
// (GOOS=wasip1 GOARCH=wasm), once per package per test binary.
package testwasm
