package wasmhost

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
)

// benchRequest serves one GET through handler, failing the benchmark on a
// non-200 answer.
func benchRequest(b *testing.B, handler http.Handler, req *http.Request) {
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d: %q", rec.Code, rec.Body)
	}
}

// browserHeaders is a typical set of request headers, each one an env var.
var browserHeaders = map[string]string{
	"Accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
	"Accept-Encoding": "gzip, deflate, br",
	"Accept-Language": "en-US,en;q=0.5",
	"Cache-Control":   "no-cache",
	"Cookie":          "session=0123456789abcdef",
	"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
	"X-Forwarded-For": "198.51.100.23",
	"X-Request-Id":    "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f",
}

// The hot path on the smallest module: instantiate, run, parse, respond.
func BenchmarkHTTPTiny(b *testing.B) {
	h := newHost(b)
	handler := mustHandler(b, h, mustCompile(b, h, okModule), HTTPConfig{Name: "tiny", Env: map[string]string{"A": "1", "B": "2"}})
	for _, headers := range []int{0, len(browserHeaders)} {
		b.Run(fmt.Sprintf("headers=%d", headers), func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/x?y=1", nil)
			if headers > 0 {
				for k, v := range browserHeaders {
					req.Header.Set(k, v)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				benchRequest(b, handler, req)
			}
		})
	}
}

// The same for examples/hello: dominated by the Go runtime's start-up.
func BenchmarkHTTPHello(b *testing.B) {
	h, m := sharedGoModule(b, helloPkg)
	handler := mustHandler(b, h, m, HTTPConfig{Name: "hello"})
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	b.ReportAllocs()
	for b.Loop() {
		benchRequest(b, handler, req)
	}
}

// The per-request environment alone (ours: one byte slice, read by our own
// environ_get; wazero's WithEnv cloned its whole config per variable).
func BenchmarkBuildEnv(b *testing.B) {
	h := newHost(b)
	hh := mustHandler(b, h, mustCompile(b, h, okModule), HTTPConfig{Name: "tiny"}).(*httpHandler)
	req := httptest.NewRequest(http.MethodGet, "/x?y=1", nil)
	for k, v := range browserHeaders {
		req.Header.Set(k, v)
	}
	b.ReportAllocs()
	for b.Loop() {
		hh.buildEnv(&instState{}, req, 0)
	}
}

func BenchmarkValidateHello(b *testing.B) {
	hello := goModule(b, helloPkg)
	ctx := context.Background()
	b.SetBytes(int64(len(hello)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(ctx, hello); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCGIResponse(b *testing.B) {
	out := []byte("Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nSet-Cookie: a=1\r\n\r\n<!doctype html><p>hello</p>\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseCGIResponse(out); err != nil {
			b.Fatal(err)
		}
	}
}

// The price of WithCloseOnContextDone, which Host always enables: a tight loop
// of 1M iterations (countdownModule's run) with and without it, compiler engine.
func BenchmarkTightLoop(b *testing.B) {
	const iterations = 1_000_000
	for _, closeOnDone := range []bool{false, true} {
		b.Run(fmt.Sprintf("closeOnContextDone=%v", closeOnDone), func(b *testing.B) {
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone))
			defer r.Close(ctx)
			mod, err := r.InstantiateWithConfig(ctx, countdownModule, wazero.NewModuleConfig().WithStartFunctions())
			if err != nil {
				b.Fatal(err)
			}
			run := mod.ExportedFunction("run")
			for b.Loop() {
				if _, err := run.Call(ctx, iterations); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/iterations, "ns/iteration")
		})
	}
}

// What WithCloseOnContextDone costs one instance, start to end, on the tiny
// module and on examples/hello (which loops in the Go runtime's start-up):
// the same runtime, WASI, module rewriting and memory as a Host, with and
// without it.
func BenchmarkCloseOnContextDone(b *testing.B) {
	hello := goModule(b, helloPkg)
	for _, mod := range []struct {
		name string
		bin  []byte
	}{{"tiny", okModule}, {"hello", hello}} {
		for _, closeOnDone := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/closeOnContextDone=%v", mod.name, closeOnDone), func(b *testing.B) {
				ctx := context.Background()
				r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone))
				defer r.Close(ctx)
				if _, err := instantiateWASI(ctx, r); err != nil {
					b.Fatal(err)
				}
				cm, err := r.CompileModule(ctx, coalesceData(mod.bin))
				if err != nil {
					b.Fatal(err)
				}
				cfg := wazero.NewModuleConfig().WithName("").WithStdout(io.Discard).WithRandSource(rand.Reader)
				b.ReportAllocs()
				for b.Loop() {
					st := &instState{mem: newLinearMemory(64 << 20)}
					st.addEnv("PATH_INFO", "/x")
					ictx := experimental.WithMemoryAllocator(context.WithValue(ctx, instKey{}, st), st.mem.allocator())
					m, err := r.InstantiateModule(ictx, cm, cfg)
					if err != nil {
						b.Fatal(err)
					}
					m.Close(ctx)
					st.mem.release()
				}
			})
		}
	}
}

// The listener mode's per-request cost: examples/server, one keep-alive
// client over loopback TCP.
func BenchmarkListenerRequest(b *testing.B) {
	h, m := sharedGoModule(b, serverPkg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	listening := make(chan struct{})
	go func() {
		done <- h.RunListener(ctx, m, ListenerConfig{Addr: addr, OnListening: func() { close(listening) }})
	}()
	defer func() { cancel(); <-done }()
	<-listening
	client := &http.Client{}
	for b.Loop() {
		resp, err := client.Get("http://" + addr + "/x")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
