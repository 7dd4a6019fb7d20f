package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The handler serves the page at the prefix and its files under it, each
// with the headers that keep it from being framed or running inline code.
func TestHandlerServesTheFiles(t *testing.T) {
	h := Handler("/ui/")
	for _, c := range []struct{ path, ctype, has string }{
		{"/ui/", "text/html", `<script type="module" src="app.js">`},
		{"/ui/app.js", "javascript", "/v1/event/stream"},
		{"/ui/app.css", "text/css", "@media (max-width: 40rem)"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), c.ctype) || !strings.Contains(rec.Body.String(), c.has) {
			t.Errorf("GET %s: %d %q, body has %q: %v", c.path, rec.Code, rec.Header().Get("Content-Type"), c.has, strings.Contains(rec.Body.String(), c.has))
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/nope.js", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("a missing file: %d", rec.Code)
	}
}
