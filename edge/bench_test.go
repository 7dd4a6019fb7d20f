package edge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/wasmhost"
)

// The request path of an http-mode task as the agent serves it (the wasm
// driver's handler, which counts requests and instances for stats),
// beside wasmhost's handler alone: the driver must add nothing a request
// would notice. No network: the handlers are called directly.
func BenchmarkWasmHTTPTask(b *testing.B) {
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		b.Fatal(err)
	}
	h, err := wasmhost.New(context.Background(), wasmhost.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	mod, err := h.Compile(context.Background(), wasmhost.Digest(tiny), tiny)
	if err != nil {
		b.Fatal(err)
	}
	serve := func(b *testing.B, handler http.Handler) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d", rec.Code)
			}
		}
	}
	b.Run("wasmhost", func(b *testing.B) {
		handler, err := h.HTTPHandler(mod, wasmhost.HTTPConfig{Name: "task"})
		if err != nil {
			b.Fatal(err)
		}
		serve(b, handler)
	})
	b.Run("agent", func(b *testing.B) {
		d := &wasmDriver{host: h, bindAddr: "127.0.0.1", log: testLoggerDiscard()}
		ln, err := d.startHTTP(&taskSpec{Task: wire.Task{Name: "task", Config: wire.TaskConfig{Mode: wire.ModeHTTP}},
			Ports: []wire.Port{{Label: "http", Value: 0}}}, mod, wasmhost.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		defer ln.stop(0)
		serve(b, ln.(*httpTask).srv.Handler)
	})
}
