package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/strata-run/strata/wasmhost"
)

// A copy made distinct by a custom section is still the same valid module.
func TestWithCustomSection(t *testing.T) {
	b, err := os.ReadFile("../../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	c := withCustomSection(b, "strata-bench", []byte("1"))
	if wasmhost.Digest(c) == wasmhost.Digest(b) {
		t.Fatal("same digest")
	}
	if err := wasmhost.Validate(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	res, err := load(context.Background(), srv.URL, 2, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.n == 0 || res.errors != 0 || res.p50 > res.p99 {
		t.Fatalf("%+v", res)
	}
}
