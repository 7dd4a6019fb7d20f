package main

import (
	"strings"
	"testing"
)

// The module is also run under wazero, through the WAGI handler, by the
// wasmhost tests (TestHelloExample); this test keeps the response format honest
// on the host platform.
func TestRespond(t *testing.T) {
	for _, tc := range []struct {
		pathInfo string
		env      map[string]string
		want     string
	}{
		{"/x", nil, "Content-Type: text/plain\n\nhello from /x\n"},
		{"", nil, "Content-Type: text/plain\n\nhello from /\n"},
		{"/a/b c", nil, "Content-Type: text/plain\n\nhello from /a/b c\n"},
		{"/x", map[string]string{"HELLO_VERSION": "v2"}, "Content-Type: text/plain\n\nhello from /x (v2)\n"},
		{"/health", nil, "Content-Type: text/plain\n\nhello from /health\n"},
		{"/health", map[string]string{"HEALTHY": "false"}, "Status: 503 Service Unavailable\nContent-Type: text/plain\n\nunhealthy\n"},
	} {
		var b strings.Builder
		respond(&b, tc.pathInfo, func(k string) string { return tc.env[k] })
		if got := b.String(); got != tc.want {
			t.Errorf("respond(%q, %v) = %q, want %q", tc.pathInfo, tc.env, got, tc.want)
		}
	}
}
