package wasmhost

import (
	"bytes"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseCGIResponse(t *testing.T) {
	tests := []struct {
		name       string
		out        string
		wantStatus int
		wantHeader http.Header
		wantBody   string
		wantErr    string
	}{
		{
			name:       "minimal",
			out:        "Content-Type: text/plain\n\nhello\n",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   "hello\n",
		},
		{
			name:       "CRLF",
			out:        "Content-Type: text/html\r\nX-A: 1\r\n\r\n<p>hi</p>\r\n",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/html"}, "X-A": {"1"}},
			wantBody:   "<p>hi</p>\r\n",
		},
		{
			name:       "mixed line endings, blank line is CRLF",
			out:        "Content-Type: text/plain\n\r\nbody",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   "body",
		},
		{
			name:       "body keeps blank lines",
			out:        "Content-Type: text/plain\n\n\n\nx\n\n",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   "\n\nx\n\n",
		},
		{
			name:       "lowercase names, no space, extra spaces",
			out:        "content-type:text/plain\nx-multi:   a b  \t\n\n",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}, "X-Multi": {"a b"}},
		},
		{
			name:       "headers end at end of output",
			out:        "Content-Type: text/plain\n",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
		},
		{
			name:       "headers end at end of output without newline",
			out:        "Content-Type: text/plain",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
		},
		{
			name:       "Status with reason",
			out:        "Status: 404 Not Found\nContent-Type: text/plain\n\nnope",
			wantStatus: 404,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   "nope",
		},
		{
			name:       "Status code only, any case",
			out:        "STATUS: 201\nContent-Type: application/json\n\n{}",
			wantStatus: 201,
			wantHeader: http.Header{"Content-Type": {"application/json"}},
			wantBody:   "{}",
		},
		{
			name:       "Location alone is 302",
			out:        "Location: /elsewhere\n\n",
			wantStatus: 302,
			wantHeader: http.Header{"Location": {"/elsewhere"}},
		},
		{
			name:       "Location with Status",
			out:        "Status: 301 Moved Permanently\nLocation: https://example.com/\n\n",
			wantStatus: 301,
			wantHeader: http.Header{"Location": {"https://example.com/"}},
		},
		{
			name:       "repeated headers are kept in order",
			out:        "Content-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"a=1", "b=2"}},
		},
		{
			name:       "framing and hop-by-hop headers are dropped",
			out:        "Content-Type: text/plain\nContent-Length: 999\nTransfer-Encoding: chunked\nConnection: close\n\nab",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}},
			wantBody:   "ab",
		},
		{
			name:       "empty value",
			out:        "Content-Type: text/plain\nX-Empty:\n\n",
			wantStatus: 200,
			wantHeader: http.Header{"Content-Type": {"text/plain"}, "X-Empty": {""}},
		},
		{name: "empty output", out: "", wantErr: "module wrote nothing to stdout"},
		{name: "only a blank line", out: "\n", wantErr: "neither Content-Type nor Location"},
		{name: "Status alone", out: "Status: 204\n\n", wantErr: "neither Content-Type nor Location"},
		{name: "body without headers", out: "hello world\n", wantErr: `malformed header line "hello world"`},
		{name: "no colon", out: "Content-Type text/plain\n\n", wantErr: "malformed header line"},
		{name: "space in name", out: "Content Type: text/plain\n\n", wantErr: "malformed header line"},
		{name: "empty name", out: ": text/plain\n\n", wantErr: "malformed header line"},
		{name: "continuation line", out: "Content-Type: text/plain\n  folded\n\n", wantErr: "malformed header line"},
		{name: "control character", out: "Content-Type: text/plain\nX-Bad: a\x00b\n\n", wantErr: "control character"},
		{name: "bare CR inside", out: "Content-Type: text/plain\rX: 1\n\n", wantErr: "control character"},
		{name: "Status not a number", out: "Status: OK\nContent-Type: text/plain\n\n", wantErr: "bad Status"},
		{name: "Status 1xx", out: "Status: 101\nContent-Type: text/plain\n\n", wantErr: "bad Status"},
		{name: "Status 600", out: "Status: 600\nContent-Type: text/plain\n\n", wantErr: "bad Status"},
		{name: "Status 4 digits", out: "Status: 2000\nContent-Type: text/plain\n\n", wantErr: "bad Status"},
		{name: "Status twice", out: "Status: 200\nStatus: 404\nContent-Type: text/plain\n\n", wantErr: "more than one Status"},
		{name: "long garbage is cut in the message", out: strings.Repeat("x", 200), wantErr: "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := parseCGIResponse([]byte(tc.out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.status != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.status, tc.wantStatus)
			}
			if !reflect.DeepEqual(resp.header, tc.wantHeader) {
				t.Errorf("header = %v, want %v", resp.header, tc.wantHeader)
			}
			if string(resp.body) != tc.wantBody {
				t.Errorf("body = %q, want %q", resp.body, tc.wantBody)
			}
		})
	}
}

// FuzzParseCGIResponse checks that the parser never panics, that what it
// accepts is something net/http can send, and that it round-trips: writing an
// accepted response back out in CGI form parses to the same response.
func FuzzParseCGIResponse(f *testing.F) {
	for _, seed := range []string{
		"Content-Type: text/plain\n\nhello\n",
		"Content-Type: text/html\r\nX-A: 1\r\n\r\nbody",
		"Status: 404 Not Found\nContent-Type: text/plain\n\n",
		"Location: /x\n\n",
		"Status: 301\nLocation: /y\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n",
		"Content-Type: text/plain\nContent-Length: 3\n\nabc",
		"garbage",
		"\n\n",
		"Content-Type: a\x00b\n\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		resp, err := parseCGIResponse(out)
		if err != nil {
			return
		}
		if resp.status < 200 || resp.status > 599 {
			t.Fatalf("status %d out of range", resp.status)
		}
		if len(resp.header["Content-Type"]) == 0 && len(resp.header["Location"]) == 0 {
			t.Fatalf("accepted without Content-Type or Location: %v", resp.header)
		}
		if !bytes.HasSuffix(out, resp.body) {
			t.Fatalf("body %q is not a suffix of the output", resp.body)
		}
		for k, vs := range resp.header {
			if k != http.CanonicalHeaderKey(k) || !isToken([]byte(k)) || droppedHeaders[k] || k == "Status" {
				t.Fatalf("header name %q should not pass", k)
			}
			for _, v := range vs {
				if !isFieldValue([]byte(v)) || strings.Trim(v, " \t") != v {
					t.Fatalf("header %s value %q should not pass", k, v)
				}
			}
		}

		var again bytes.Buffer
		again.WriteString("Status: " + strconv.Itoa(resp.status) + " " + http.StatusText(resp.status) + "\n")
		keys := make([]string, 0, len(resp.header))
		for k := range resp.header {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			for _, v := range resp.header[k] {
				again.WriteString(k + ": " + v + "\r\n")
			}
		}
		again.WriteString("\r\n")
		again.Write(resp.body)
		resp2, err := parseCGIResponse(again.Bytes())
		if err != nil {
			t.Fatalf("re-parsing %q: %v", again.Bytes(), err)
		}
		if resp2.status != resp.status || !reflect.DeepEqual(resp2.header, resp.header) || !bytes.Equal(resp2.body, resp.body) {
			t.Fatalf("round trip changed the response:\n%+v\n%+v", resp, resp2)
		}
	})
}
