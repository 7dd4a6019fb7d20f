package main

import (
	"strings"
	"testing"
)

// The module is also run under wazero, through the WAGI handler, by the
// wasmhost tests (TestHelloExample); this test keeps the response format honest
// on the host platform.
func TestRespond(t *testing.T) {
	for _, tc := range []struct{ pathInfo, want string }{
		{"/x", "Content-Type: text/plain\n\nhello from /x\n"},
		{"", "Content-Type: text/plain\n\nhello from /\n"},
		{"/a/b c", "Content-Type: text/plain\n\nhello from /a/b c\n"},
	} {
		var b strings.Builder
		respond(&b, tc.pathInfo)
		if got := b.String(); got != tc.want {
			t.Errorf("respond(%q) = %q, want %q", tc.pathInfo, got, tc.want)
		}
	}
}
