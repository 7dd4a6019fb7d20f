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
	// agent: no metrics; agent+metrics: the agent's metrics count and time
	// every request (wasmhost's Observe hook, label children resolved once).
	for _, withMetrics := range []bool{false, true} {
		name := "agent"
		if withMetrics {
			name = "agent+metrics"
		}
		b.Run(name, func(b *testing.B) {
			d := &wasmDriver{host: h, bindAddr: "127.0.0.1", log: testLoggerDiscard()}
			if withMetrics {
				d.metrics = newAgentMetrics(&Agent{mods: &moduleCache{}, link: &link{}, allocs: &allocSet{}})
			}
			ln, err := d.startHTTP(&taskSpec{JobID: "j", Group: "g", Task: wire.Task{Name: "task", Config: wire.TaskConfig{Mode: wire.ModeHTTP}},
				Ports: []wire.Port{{Label: "http", Value: 0}}}, mod, wasmhost.Limits{})
			if err != nil {
				b.Fatal(err)
			}
			defer ln.stop(0)
			serve(b, ln.(*httpTask).srv.Handler)
		})
	}
}
