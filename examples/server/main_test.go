package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The module itself runs under wazero in the wasmhost tests
// (TestServerExample); this test keeps its handler honest natively.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	for _, tc := range []struct{ path, want string }{
		{"/x", "hello from /x\n"},
		{"/", "hello from /\n"},
		{"/healthz", "ok\n"},
	} {
		resp, err := srv.Client().Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != tc.want || resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("GET %s: %d %q (%s), want 200 %q text/plain", tc.path, resp.StatusCode, body, resp.Header.Get("Content-Type"), tc.want)
		}
	}
}
