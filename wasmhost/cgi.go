package wasmhost

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// cgiResponse is a module's stdout parsed as a CGI response (RFC 3875 §6).
type cgiResponse struct {
	status int
	header http.Header // canonical keys; no Status, no framing or hop-by-hop headers
	body   []byte      // aliases the parsed output
}

// Headers a module may not set: the agent frames the response itself
// (Content-Length from the body it received) and owns the connection.
var droppedHeaders = map[string]bool{
	"Connection":        true,
	"Content-Length":    true,
	"Keep-Alive":        true,
	"Proxy-Connection":  true,
	"Te":                true,
	"Trailer":           true,
	"Transfer-Encoding": true,
	"Upgrade":           true,
}

var errEmptyResponse = errors.New("module wrote nothing to stdout")

// parseCGIResponse parses out, a WAGI module's stdout: header lines up to the
// first empty line (lines end in "\n" or "\r\n"), then the body. End of output
// also ends the headers (the body is then empty).
//
//   - "Status: 404 Not Found" sets the status (200–599; the reason phrase is
//     ignored, Go writes its own);
//   - "Location:" without Status means 302 (a local redirect is not followed:
//     the client gets it);
//   - otherwise the status is 200.
//
// A response with neither Content-Type nor Location, a malformed header line
// (no colon, a name that is not an HTTP token, a control character in the
// value, a continuation line) or a bad or repeated Status is an error; the
// handler answers 502. Framing and hop-by-hop headers (Content-Length,
// Transfer-Encoding, Connection, …) are dropped.
func parseCGIResponse(out []byte) (cgiResponse, error) {
	if len(out) == 0 {
		return cgiResponse{}, errEmptyResponse
	}
	resp := cgiResponse{header: make(http.Header)}
	rest := out
	for len(rest) > 0 {
		var line []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			line, rest = rest, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			resp.body = rest
			break
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || !isToken(name) {
			return cgiResponse{}, fmt.Errorf("malformed header line %s", quoteShort(line))
		}
		value = bytes.Trim(value, " \t")
		if !isFieldValue(value) {
			return cgiResponse{}, fmt.Errorf("header %s has a control character in its value", quoteShort(name))
		}
		key := http.CanonicalHeaderKey(string(name))
		switch {
		case key == "Status":
			if resp.status != 0 {
				return cgiResponse{}, errors.New("more than one Status header")
			}
			code, err := parseStatus(value)
			if err != nil {
				return cgiResponse{}, err
			}
			resp.status = code
		case droppedHeaders[key]:
		default:
			resp.header[key] = append(resp.header[key], string(value))
		}
	}

	_, hasType := resp.header["Content-Type"]
	_, hasLocation := resp.header["Location"]
	switch {
	case !hasType && !hasLocation:
		return cgiResponse{}, errors.New("response has neither Content-Type nor Location")
	case resp.status == 0 && hasLocation:
		resp.status = http.StatusFound
	case resp.status == 0:
		resp.status = http.StatusOK
	}
	return resp, nil
}

// parseStatus parses a Status header value: a 3-digit code and an optional
// reason phrase.
func parseStatus(v []byte) (int, error) {
	code, _, _ := bytes.Cut(v, []byte{' '})
	n, err := strconv.Atoi(string(code))
	if err != nil || len(code) != 3 || n < 200 || n > 599 {
		return 0, fmt.Errorf("bad Status %s: want a code from 200 to 599", quoteShort(v))
	}
	return n, nil
}

// isToken reports whether b is a non-empty HTTP field name (RFC 9110 token).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isFieldValue reports whether b, already trimmed, is a valid field value: no
// control characters other than horizontal tab.
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// quoteShort quotes b for an error message, cut to a readable length.
func quoteShort(b []byte) string {
	const max = 48
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}
