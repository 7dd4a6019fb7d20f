package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// APIVersion is the Engine API version every versioned request is made
// with. 1.41 is Docker 20.10's; Docker 23 through 28 accept it too (their
// minimum is 1.12 or 1.24). Docker 29 raised its minimum to 1.44 and
// refuses it: Negotiate says so.
const APIVersion = "1.41"

// DefaultHost is the daemon's socket when DOCKER_HOST is not set.
const DefaultHost = "unix:///var/run/docker.sock"

// Client talks to one Docker daemon. It is safe for concurrent use. It
// has no timeouts of its own: every call takes a context, and the
// streaming ones (logs, wait, pull, build) last as long as it does.
type Client struct {
	host string
	base string // scheme and authority of every request
	hc   *http.Client
}

// New returns a client of the daemon at host: "unix:///path" or
// "tcp://host:port" (plain HTTP). An empty host means $DOCKER_HOST, and
// DefaultHost when that is empty too. New does not connect; Ping does.
func New(host string) (*Client, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = DefaultHost
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker: host %q: %w", host, err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	c := &Client{host: host, hc: &http.Client{Transport: tr}}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			return nil, fmt.Errorf("docker: host %q has no socket path", host)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://docker" // the host name is not used on a unix socket
	case "tcp", "http":
		if u.Host == "" {
			return nil, fmt.Errorf("docker: host %q has no address", host)
		}
		c.base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("docker: host %q: only unix:// and tcp:// (without TLS) are supported", host)
	}
	return c, nil
}

// Host is the daemon address the client was made for.
func (c *Client) Host() string { return c.host }

// Error is the daemon's answer to a request it refused.
type Error struct {
	Method     string // "POST"
	Path       string // "/containers/create", without version or query
	StatusCode int
	Message    string // the daemon's message
}

func (e *Error) Error() string {
	return fmt.Sprintf("docker: %s %s: %s (HTTP %d)", e.Method, e.Path, e.Message, e.StatusCode)
}

// IsNotFound reports whether err is the daemon's 404: no such container
// or image.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// request describes one call: a versioned path unless raw.
type request struct {
	method, path string
	query        url.Values
	body         any       // JSON-encoded when not nil
	raw          io.Reader // sent as is instead of body
	contentType  string
	unversioned  bool
}

// do sends r and returns the response of a successful (< 400) status; the
// caller closes its body. Any other status is an *Error.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	path := r.path
	if !r.unversioned {
		path = "/v" + APIVersion + path
	}
	u := c.base + (&url.URL{Path: path}).EscapedPath()
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader = r.raw
	ctype := r.contentType
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("docker: %s %s: %w", r.method, r.path, err)
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("docker: %s %s: %w", r.method, r.path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker: %s %s: %w", r.method, r.path, err)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(b))
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		msg = m.Message
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return nil, &Error{Method: r.method, Path: r.path, StatusCode: resp.StatusCode, Message: msg}
}

// call sends r and decodes a JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, r request, out any) error {
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("docker: %s %s: decoding the answer: %w", r.method, r.path, err)
	}
	return nil
}

// Ping checks that a daemon answers GET /_ping.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/_ping", unversioned: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if string(b) != "OK" {
		return fmt.Errorf("docker: GET /_ping: answered %q, want OK", b)
	}
	return nil
}

// Version is the daemon's GET /version, in part.
type Version struct {
	Version       string `json:"Version"` // the Engine's, "28.2.2"
	APIVersion    string `json:"ApiVersion"`
	MinAPIVersion string `json:"MinAPIVersion"`
	Os            string `json:"Os"`
	Arch          string `json:"Arch"`
}

// Negotiate asks the daemon its version and checks that it accepts
// APIVersion.
func (c *Client) Negotiate(ctx context.Context) (Version, error) {
	var v Version
	if err := c.call(ctx, request{method: http.MethodGet, path: "/version", unversioned: true}, &v); err != nil {
		return v, err
	}
	if v.MinAPIVersion != "" && compareVersions(v.MinAPIVersion, APIVersion) > 0 {
		return v, fmt.Errorf("docker: Engine %s at %s requires API %s or later; Strata speaks %s", v.Version, c.host, v.MinAPIVersion, APIVersion)
	}
	if compareVersions(v.APIVersion, APIVersion) < 0 {
		return v, fmt.Errorf("docker: Engine %s at %s speaks API %s at most; Strata needs %s", v.Version, c.host, v.APIVersion, APIVersion)
	}
	return v, nil
}

// compareVersions compares API versions "major.minor" numerically.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
