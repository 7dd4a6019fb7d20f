package wasmhost

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// HTTPConfig.Observe hears of every request with the status its client
// got: a module's answer and wasmhost's own refusals alike.
func TestHTTPObserve(t *testing.T) {
	h := newHost(t)
	type seen struct {
		status  int
		elapsed time.Duration
	}
	var got []seen
	handler := mustHandler(t, h, mustCompile(t, h, okModule), HTTPConfig{Name: "tiny", MaxBodyBytes: 4,
		Observe: func(status int, elapsed time.Duration) { got = append(got, seen{status, elapsed}) }})
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/x", nil),
		httptest.NewRequest(http.MethodPost, "/x", strings.NewReader("more than four bytes")),
	} {
		handler.ServeHTTP(httptest.NewRecorder(), req)
	}
	if len(got) != 2 || got[0].status != http.StatusOK || got[1].status != http.StatusRequestEntityTooLarge {
		t.Fatalf("observed %+v, want 200 then 413", got)
	}
	if got[0].elapsed <= 0 {
		t.Fatalf("a request that ran an instance took %v", got[0].elapsed)
	}
}
