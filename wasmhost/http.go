package wasmhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/sys"
)

// Defaults of HTTPConfig.
const (
	DefaultMaxRequestTime   = 30 * time.Second
	DefaultMaxBodyBytes     = 16 << 20
	DefaultMaxResponseBytes = 16 << 20
)

// HTTPConfig configures the http (WAGI) mode of one task.
type HTTPConfig struct {
	Name           string            // used for SCRIPT_NAME ("/"+Name) and log attributes, e.g. the task name
	Args           []string          // argv after argv[0]; argv[0] is Name
	Env            map[string]string // task env, added to the CGI env (request variables win on a clash)
	MaxRequestTime time.Duration     // 0 = 30s default; on expiry the instance is stopped and client gets 504
	Stderr         io.Writer         // module stderr; nil = discard. Writes are serialised across instances.

	// MaxBodyBytes bounds the request body, which is read in full before the
	// instance starts (so CONTENT_LENGTH is exact and the module never blocks on
	// a slow client). 0 = 16 MiB; a larger body gets 413.
	MaxBodyBytes int64
	// MaxResponseBytes bounds what the module may write to stdout. 0 = 16 MiB;
	// a module writing more gets its writes failed, and the client 502.
	MaxResponseBytes int64
}

// Server identification in SERVER_SOFTWARE, and the route every request
// matches in X_MATCHED_ROUTE: an http-mode task owns its whole port.
const (
	serverSoftware = "Strata WAGI/1"
	matchedRoute   = "/..."
)

// HTTPHandler returns an http.Handler that serves each request by
// instantiating m fresh (WAGI/CGI style) and closing the instance after.
//
// Each instance gets: argv [cfg.Name, cfg.Args...]; the task env plus the CGI
// variables of RFC 3875 and WAGI (REQUEST_METHOD, PATH_INFO, QUERY_STRING,
// X_FULL_URL, …); the request body on stdin; stdout captured and parsed as a
// CGI response; stderr to cfg.Stderr. No filesystem, no sockets.
//
// Every request header becomes HTTP_<NAME> (upper case, '-' → '_', repeated
// values joined), Authorization included: Strata does no authentication of its
// own, so the module is where it happens. The one exception is Proxy, which
// would become HTTP_PROXY ("httpoxy"). The task owns its whole port, so
// X_MATCHED_ROUTE is "/...", PATH_INFO is the whole decoded path and SCRIPT_NAME
// is "/"+cfg.Name (identifying the script, as early WAGI did, not a URL prefix).
// REMOTE_HOST is REMOTE_ADDR: no reverse lookups.
//
// Clocks are real (wall and monotonic; a sleep ends early when the request
// does) and random_get reads crypto/rand: wazero's defaults are a fake clock
// and a deterministic random source, which would make crypto/rand in the
// module predictable.
//
// Status codes of its own: 502 for output that is not a CGI response, 500 when
// the module traps or exits non-zero (proc_exit(0) is success), 504 when
// MaxRequestTime passes (the instance is stopped), 503 once the Host is closed,
// 413/408/400 for a request body too large, too slow or unreadable. The reason
// goes to the Host's logger, a short text to the client.
//
// HTTPHandler panics if m was compiled by another Host.
func (h *Host) HTTPHandler(m *Module, cfg HTTPConfig) http.Handler {
	if m == nil || m.host != h {
		panic("wasmhost: HTTPHandler: module was not compiled by this Host")
	}
	hh := &httpHandler{
		host:    h,
		mod:     m,
		log:     h.log.With("task", cfg.Name, "digest", m.digest),
		maxTime: orDefault(cfg.MaxRequestTime, DefaultMaxRequestTime),
		maxBody: orDefault(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		maxResp: orDefault(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
	}

	// The static part of every instance's config, built once. It carries no
	// environment on purpose: wazero's ModuleConfig.WithEnv appends to a slice
	// that a derived config shares with its parent, so two requests deriving
	// from one base that already had env vars could race on its spare capacity.
	// Env goes in per request, starting from an empty slice.
	var stderr io.Writer = io.Discard
	if cfg.Stderr != nil {
		stderr = &lockedWriter{w: cfg.Stderr}
	}
	hh.base = wazero.NewModuleConfig().
		WithName(""). // anonymous: any number of instances at once
		WithArgs(append([]string{cfg.Name}, cfg.Args...)...).
		WithStderr(stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)

	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !validEnv(k, cfg.Env[k]) {
			hh.log.Warn("task env variable dropped: a name must be non-empty without '=' or NUL, a value without NUL", "name", k)
			continue
		}
		hh.staticEnv = append(hh.staticEnv, k, cfg.Env[k])
	}
	scriptName := ""
	if cfg.Name != "" {
		scriptName = "/" + strings.TrimPrefix(cfg.Name, "/")
	}
	hh.staticEnv = append(hh.staticEnv,
		"GATEWAY_INTERFACE", "CGI/1.1",
		"SERVER_SOFTWARE", serverSoftware,
		"SCRIPT_NAME", scriptName,
		"X_MATCHED_ROUTE", matchedRoute,
	)
	return hh
}

type httpHandler struct {
	host      *Host
	mod       *Module
	log       *slog.Logger
	maxTime   time.Duration
	maxBody   int64
	maxResp   int64
	base      wazero.ModuleConfig
	staticEnv []string // name, value pairs: the task env, then the fixed CGI variables
}

// orDefault returns v, or def when v is zero or negative.
func orDefault[T int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (hh *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	deadline := time.Now().Add(hh.maxTime)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	rc := http.NewResponseController(w)

	if hh.host.closed.Load() {
		hh.fail(w, http.StatusServiceUnavailable, "host is closed")
		return
	}
	body, code, err := hh.readBody(r, rc, deadline)
	if err != nil {
		hh.fail(w, code, "reading request body: "+err.Error())
		return
	}

	stdout := &limitedBuffer{max: hh.maxResp}
	cfg := hh.base.
		WithStdin(bytes.NewReader(body)).
		WithStdout(stdout).
		WithNanosleep(sleepUntilDone(ctx))
	cfg = hh.withEnv(cfg, r, len(body))

	mod, runErr := hh.host.runtime.InstantiateModule(ctx, hh.mod.compiled, cfg)
	if mod != nil {
		_ = mod.Close(context.WithoutCancel(ctx))
	}

	var exit *sys.ExitError
	if errors.As(runErr, &exit) && exit.ExitCode() == 0 {
		runErr = nil // proc_exit(0) is success (wazero reports it so already; be sure)
	}
	switch {
	case hh.host.closed.Load():
		// Closing the runtime ends running instances with exit code 0, which
		// would otherwise pass for success with a truncated response.
		hh.fail(w, http.StatusServiceUnavailable, "host closed during the request")
		return
	case errors.As(runErr, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded:
		hh.fail(w, http.StatusGatewayTimeout, fmt.Sprintf("stopped after %s (MaxRequestTime)", hh.maxTime))
		return
	case runErr != nil && r.Context().Err() != nil,
		errors.As(runErr, &exit) && exit.ExitCode() == sys.ExitCodeContextCanceled:
		hh.log.Debug("request canceled by the client; instance stopped", "path", r.URL.Path, "err", runErr)
		return
	case errors.As(runErr, &exit):
		hh.fail(w, http.StatusInternalServerError, fmt.Sprintf("module exited with code %d", exit.ExitCode()))
		return
	case runErr != nil:
		hh.fail(w, http.StatusInternalServerError, "module failed: "+runErr.Error())
		return
	case stdout.overflow:
		hh.fail(w, http.StatusBadGateway, fmt.Sprintf("response larger than %d bytes (MaxResponseBytes)", hh.maxResp))
		return
	}

	resp, err := parseCGIResponse(stdout.buf.Bytes())
	if err != nil {
		hh.fail(w, http.StatusBadGateway, "invalid CGI response: "+err.Error())
		return
	}
	header := w.Header()
	for k, v := range resp.header {
		header[k] = v
	}
	bodyAllowed := resp.status != http.StatusNoContent && resp.status != http.StatusNotModified
	if bodyAllowed {
		header.Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	// Bound the write too, so a client that does not read cannot hold the
	// connection forever. net/http clears the deadline after the handler.
	_ = rc.SetWriteDeadline(time.Now().Add(hh.maxTime))
	w.WriteHeader(resp.status)
	if bodyAllowed {
		_, _ = w.Write(resp.body)
	}
}

// fail logs reason and answers code with a short text body.
func (hh *httpHandler) fail(w http.ResponseWriter, code int, reason string) {
	hh.log.Warn("http request failed", "status", code, "reason", reason)
	http.Error(w, fmt.Sprintf("%d %s", code, http.StatusText(code)), code)
}

// readBody reads the whole request body, bounded in size by maxBody and in
// time by the request deadline, so that the instance gets it from memory and
// never blocks in a host call on a slow client, where a deadline cannot stop
// it. On error it also returns the status to answer.
func (hh *httpHandler) readBody(r *http.Request, rc *http.ResponseController, deadline time.Time) ([]byte, int, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, 0, nil
	}
	if r.ContentLength > hh.maxBody {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("Content-Length %d is over MaxBodyBytes %d", r.ContentLength, hh.maxBody)
	}
	// Not every ResponseWriter supports deadlines (httptest's does not); then
	// the server's own ReadTimeout is all there is.
	if rc.SetReadDeadline(deadline) == nil {
		defer rc.SetReadDeadline(time.Time{})
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, hh.maxBody+1))
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		return nil, http.StatusRequestTimeout, err
	case err != nil:
		return nil, http.StatusBadRequest, err
	case int64(len(b)) > hh.maxBody:
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body is over MaxBodyBytes %d", hh.maxBody)
	}
	return b, 0, nil
}

// withEnv adds the environment of one request to cfg: the static variables,
// then the request's CGI variables, then one HTTP_<NAME> per request header.
//
// wazero clones the config on every WithEnv (a map copy each), which makes this
// the costliest part of setting up an instance; see BenchmarkHTTPTiny.
func (hh *httpHandler) withEnv(cfg wazero.ModuleConfig, r *http.Request, contentLength int) wazero.ModuleConfig {
	set := func(k, v string) {
		if validEnv(k, v) {
			cfg = cfg.WithEnv(k, v)
		}
	}
	for i := 0; i < len(hh.staticEnv); i += 2 {
		cfg = cfg.WithEnv(hh.staticEnv[i], hh.staticEnv[i+1])
	}

	scheme, defaultPort := "http", "80"
	if r.TLS != nil {
		scheme, defaultPort = "https", "443"
	}
	serverName, serverPort := splitHostPort(r.Host)
	if serverPort == "" {
		serverPort = defaultPort
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if _, p := splitHostPort(la.String()); p != "" {
				serverPort = p
			}
		}
	}
	remoteAddr, _ := splitHostPort(r.RemoteAddr)
	authType, remoteUser := "", ""
	if user, _, ok := r.BasicAuth(); ok {
		authType, remoteUser = "Basic", user
	}

	set("REQUEST_METHOD", r.Method)
	set("SERVER_PROTOCOL", r.Proto)
	set("SERVER_NAME", serverName)
	set("SERVER_PORT", serverPort)
	set("PATH_INFO", r.URL.Path)
	set("PATH_TRANSLATED", r.URL.Path)
	set("X_RAW_PATH_INFO", r.URL.EscapedPath())
	set("QUERY_STRING", r.URL.RawQuery)
	set("X_FULL_URL", scheme+"://"+r.Host+r.URL.RequestURI())
	set("REMOTE_ADDR", remoteAddr)
	set("REMOTE_HOST", remoteAddr) // no reverse lookups: RFC 3875 §4.1.9 allows REMOTE_ADDR
	set("AUTH_TYPE", authType)
	set("REMOTE_USER", remoteUser)
	set("CONTENT_LENGTH", strconv.Itoa(contentLength))
	set("CONTENT_TYPE", r.Header.Get("Content-Type"))
	set("HTTP_HOST", r.Host) // net/http moves Host out of r.Header

	for name, values := range r.Header {
		if name == "Proxy" {
			continue // "httpoxy": HTTP_PROXY would set the module's outbound proxy
		}
		sep := ", "
		if name == "Cookie" {
			sep = "; "
		}
		set(headerEnvName(name), strings.Join(values, sep))
	}
	return cfg
}

// headerEnvName maps a header name to its CGI variable: "X-Foo" → "HTTP_X_FOO".
func headerEnvName(name string) string {
	b := make([]byte, 0, len("HTTP_")+len(name))
	b = append(b, "HTTP_"...)
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// validEnv reports whether wazero accepts k=v as an environment entry: a
// non-empty name without '=', and no NUL anywhere.
func validEnv(k, v string) bool {
	return k != "" && !strings.ContainsAny(k, "=\x00") && !strings.ContainsRune(v, 0)
}

// splitHostPort splits "host:port", "[v6]:port", "host" or "[v6]"; port is ""
// when absent.
func splitHostPort(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
}

// sleepUntilDone is the instance's nanosleep (WASI poll_oneoff on a clock): a
// real sleep that ends early when ctx does, so a sleeping instance cannot
// outlive its request.
func sleepUntilDone(ctx context.Context) sys.Nanosleep {
	return func(ns int64) {
		t := time.NewTimer(time.Duration(ns))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

// limitedBuffer is an instance's stdout: it keeps up to max bytes and fails
// writes beyond that.
type limitedBuffer struct {
	buf      bytes.Buffer
	max      int64
	overflow bool
}

var errResponseTooLarge = errors.New("wasmhost: response exceeds MaxResponseBytes")

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if int64(b.buf.Len())+int64(len(p)) > b.max {
		b.overflow = true
		return 0, errResponseTooLarge
	}
	return b.buf.Write(p)
}
