package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
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

	// MaxConcurrency bounds the instances running at once (0 = no bound).
	// A request over it waits, first come first served, for a free slot
	// until its MaxRequestTime ends, and gets 503 if none frees in time; at
	// most MaxQueue requests wait, the next get 503 at once.
	MaxConcurrency int
	// MaxQueue bounds the requests waiting for a slot; 0 = 4×MaxConcurrency.
	MaxQueue int

	// Limits: memory per instance, mounts, clocks (off by default: see Limits).
	Limits

	// MaxBodyBytes bounds the request body, which is read in full before the
	// instance starts (so CONTENT_LENGTH is exact and the module never blocks on
	// a slow client). 0 = 16 MiB; a larger body gets 413.
	MaxBodyBytes int64
	// MaxResponseBytes bounds what the module may write to stdout. 0 = 16 MiB;
	// a module writing more gets its writes failed, and the client 502.
	MaxResponseBytes int64

	// Observe, if set, is told of every request once it is answered: the
	// status sent (0 when the client left before an answer) and the time
	// from its arrival to the end of the answer. It runs on the request's
	// goroutine: it must not block, and should not allocate (the agent's
	// metrics use pre-resolved counters). wasmhost keeps no metrics.
	Observe func(status int, elapsed time.Duration)
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
// CGI response; stderr to cfg.Stderr. No sockets; a filesystem only through
// cfg.Mounts; deterministic clocks unless cfg.RealClock.
//
// Every request header becomes HTTP_<NAME> (upper case, '-' → '_', repeated
// values joined), Authorization included: Strata does no authentication of its
// own, so the module is where it happens. Two exceptions: Proxy, which would
// become HTTP_PROXY ("httpoxy"), and names with '_', which would be
// indistinguishable from the same name with '-' (Apache drops them too). The
// task owns its whole port, so
// X_MATCHED_ROUTE is "/...", PATH_INFO is the whole decoded path and SCRIPT_NAME
// is "/"+cfg.Name (identifying the script, as early WAGI did, not a URL prefix).
// REMOTE_HOST is REMOTE_ADDR: no reverse lookups.
//
// random_get reads crypto/rand: wazero's default is a deterministic random
// source, which would make crypto/rand in the module predictable. A sleep ends
// early when the request does.
//
// Status codes of its own: 502 for output that is not a CGI response, 500 when
// the module traps, exits non-zero (proc_exit(0) is success) or outgrows
// MaxMemory (the instance is stopped), 504 when MaxRequestTime passes (the
// instance is stopped), 503 once the Host is closed or when MaxConcurrency is
// reached and no slot frees in time (with Retry-After: 1), 413/408/400 for a
// request body too large, too slow or unreadable. The reason goes to the Host's
// logger, a short text to the client.
//
// HTTPHandler returns an error for a bad configuration: a mount whose source
// is not a directory, a module whose initial memory is over MaxMemory
// (ErrMemoryLimit). It panics if m was compiled by another Host.
func (h *Host) HTTPHandler(m *Module, cfg HTTPConfig) (http.Handler, error) {
	if m == nil || m.host != h {
		panic("wasmhost: HTTPHandler: module was not compiled by this Host")
	}
	if err := m.CheckMemory(cfg.MaxMemory); err != nil {
		return nil, err
	}
	hh := &httpHandler{
		host:      h,
		mod:       m,
		log:       h.log.With("task", cfg.Name, "digest", m.digest),
		maxTime:   orDefault(cfg.MaxRequestTime, DefaultMaxRequestTime),
		maxBody:   orDefault(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		maxResp:   orDefault(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		maxMemory: cfg.MaxMemory,
		observe:   cfg.Observe,
	}
	if cfg.MaxConcurrency > 0 {
		hh.slots = make(chan struct{}, cfg.MaxConcurrency)
		queue := cfg.MaxQueue
		if queue <= 0 {
			queue = 4 * cfg.MaxConcurrency
		}
		hh.queue = make(chan struct{}, queue)
	}

	// The static part of every instance's config, built once. It carries no
	// environment: ours is one byte slice per request, read by our own
	// environ_get (instantiateWASI), where wazero's ModuleConfig.WithEnv
	// clones the config for every variable.
	var stderr io.Writer = io.Discard
	if cfg.Stderr != nil {
		stderr = &lockedWriter{w: cfg.Stderr}
	}
	base, err := baseConfig(cfg.Name, cfg.Args, nil, stderr, cfg.Limits)
	if err != nil {
		return nil, err
	}
	hh.base = base

	scriptName := ""
	if cfg.Name != "" {
		scriptName = "/" + strings.TrimPrefix(cfg.Name, "/")
	}
	hh.staticHTTP = map[string]bool{}
	for i, kv := 0, newStaticEnv(cfg.Env, hh.log); i < len(kv); i += 2 {
		if requestVars[kv[i]] {
			continue // set by every request, which wins
		}
		if strings.HasPrefix(kv[i], "HTTP_") {
			hh.staticHTTP[kv[i]] = true
		}
		hh.staticEnv = append(hh.staticEnv, kv[i], kv[i+1])
	}
	hh.staticEnv = append(hh.staticEnv,
		"GATEWAY_INTERFACE", "CGI/1.1",
		"SERVER_SOFTWARE", serverSoftware,
		"SCRIPT_NAME", scriptName,
		"X_MATCHED_ROUTE", matchedRoute,
	)
	return hh, nil
}

// requestVars are the variables every request sets, after the static ones.
var requestVars = map[string]bool{
	"GATEWAY_INTERFACE": true, "SERVER_SOFTWARE": true, "SCRIPT_NAME": true, "X_MATCHED_ROUTE": true,
	"REQUEST_METHOD": true, "SERVER_PROTOCOL": true, "SERVER_NAME": true, "SERVER_PORT": true,
	"PATH_INFO": true, "PATH_TRANSLATED": true, "X_RAW_PATH_INFO": true, "QUERY_STRING": true,
	"X_FULL_URL": true, "REMOTE_ADDR": true, "REMOTE_HOST": true, "AUTH_TYPE": true,
	"REMOTE_USER": true, "CONTENT_LENGTH": true, "CONTENT_TYPE": true, "HTTP_HOST": true,
}

type httpHandler struct {
	host       *Host
	mod        *Module
	log        *slog.Logger
	maxTime    time.Duration
	maxBody    int64
	maxResp    int64
	maxMemory  int64
	base       wazero.ModuleConfig
	staticEnv  []string        // name, value pairs: the task env, then the fixed CGI variables
	staticHTTP map[string]bool // task env names starting with HTTP_, which a header may override

	slots chan struct{} // nil: no MaxConcurrency
	queue chan struct{} // requests waiting for a slot

	observe func(status int, elapsed time.Duration) // HTTPConfig.Observe
}

// orDefault returns v, or def when v is zero or negative.
func orDefault[T int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (hh *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if hh.observe == nil {
		hh.serve(w, r, time.Now())
		return
	}
	start := time.Now()
	status := hh.serve(w, r, start)
	hh.observe(status, time.Since(start))
}

// serve answers one request that arrived at now, and returns the status
// it sent (0: none, the client left).
func (hh *httpHandler) serve(w http.ResponseWriter, r *http.Request, now time.Time) int {
	deadline := now.Add(hh.maxTime)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	rc := http.NewResponseController(w)

	if hh.host.closed.Load() {
		return hh.fail(w, http.StatusServiceUnavailable, "host is closed")
	}
	body, code, err := hh.readBody(r, rc, deadline)
	if err != nil {
		return hh.fail(w, code, "reading request body: "+err.Error())
	}
	if hh.slots != nil {
		release, ok := hh.acquire(ctx)
		if !ok {
			if r.Context().Err() != nil {
				return 0 // the client left while waiting
			}
			w.Header().Set("Retry-After", "1")
			return hh.fail(w, http.StatusServiceUnavailable, fmt.Sprintf("%d requests running (MaxConcurrency) and no slot free in time", cap(hh.slots)))
		}
		defer release()
	}

	stdout := &limitedBuffer{max: hh.maxResp}
	cfg := hh.base.
		WithStdin(bytes.NewReader(body)).
		WithStdout(stdout)
	st := &instState{mem: newLinearMemory(hh.maxMemory), log: hh.log}
	hh.buildEnv(st, r, len(body))

	start := time.Now()
	runErr := hh.host.runInstance(ctx, hh.mod, cfg, st)
	runErr = hh.host.exitOf(r.Context(), runErr, st, time.Since(start), hh.maxTime, nil)
	var exit *ExitError
	switch {
	case errors.Is(runErr, ErrClosed):
		return hh.fail(w, http.StatusServiceUnavailable, "host closed during the request")
	case runErr != nil && r.Context().Err() != nil:
		hh.log.Debug("request canceled by the client; instance stopped", "path", r.URL.Path, "err", runErr)
		return 0
	case errors.As(runErr, &exit) && exit.Kind == ExitTimeout:
		return hh.fail(w, http.StatusGatewayTimeout, fmt.Sprintf("stopped after %s (MaxRequestTime)", hh.maxTime))
	case runErr != nil:
		return hh.fail(w, http.StatusInternalServerError, strings.TrimPrefix(runErr.Error(), "wasmhost: "))
	case stdout.overflow:
		return hh.fail(w, http.StatusBadGateway, fmt.Sprintf("response larger than %d bytes (MaxResponseBytes)", hh.maxResp))
	}

	resp, err := parseCGIResponse(stdout.buf.Bytes())
	if err != nil {
		return hh.fail(w, http.StatusBadGateway, "invalid CGI response: "+err.Error())
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
	return resp.status
}

// fail logs reason and answers code with a short text body; it returns code.
func (hh *httpHandler) fail(w http.ResponseWriter, code int, reason string) int {
	hh.log.Warn("http request failed", "status", code, "reason", reason)
	http.Error(w, fmt.Sprintf("%d %s", code, http.StatusText(code)), code)
	return code
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

// acquire waits for a free instance slot until ctx ends. The wait is bounded
// in length too: when MaxQueue requests already wait, it fails at once.
func (hh *httpHandler) acquire(ctx context.Context) (release func(), ok bool) {
	select {
	case hh.slots <- struct{}{}:
		return func() { <-hh.slots }, true
	default:
	}
	select {
	case hh.queue <- struct{}{}:
	default:
		return nil, false
	}
	defer func() { <-hh.queue }()
	select {
	case hh.slots <- struct{}{}:
		return func() { <-hh.slots }, true
	case <-ctx.Done():
		return nil, false
	}
}

// buildEnv writes the environment of one request into st: the static
// variables, then the request's CGI variables, then one HTTP_<NAME> per
// request header. A header overrides a task env variable of the same name.
func (hh *httpHandler) buildEnv(st *instState, r *http.Request, contentLength int) {
	var override map[string]bool // task env HTTP_* names a header replaces; rare
	if len(hh.staticHTTP) > 0 {
		for name := range r.Header {
			if n := headerEnvName(name); hh.staticHTTP[n] {
				if override == nil {
					override = map[string]bool{}
				}
				override[n] = true
			}
		}
	}
	st.env = make([]byte, 0, 1024)
	for i := 0; i < len(hh.staticEnv); i += 2 {
		if !override[hh.staticEnv[i]] {
			st.addEnv(hh.staticEnv[i], hh.staticEnv[i+1])
		}
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

	st.addEnv("REQUEST_METHOD", r.Method)
	st.addEnv("SERVER_PROTOCOL", r.Proto)
	st.addEnv("SERVER_NAME", serverName)
	st.addEnv("SERVER_PORT", serverPort)
	st.addEnv("PATH_INFO", r.URL.Path)
	st.addEnv("PATH_TRANSLATED", r.URL.Path)
	st.addEnv("X_RAW_PATH_INFO", r.URL.EscapedPath())
	st.addEnv("QUERY_STRING", r.URL.RawQuery)
	st.addEnv("X_FULL_URL", scheme+"://"+r.Host+r.URL.RequestURI())
	st.addEnv("REMOTE_ADDR", remoteAddr)
	st.addEnv("REMOTE_HOST", remoteAddr) // no reverse lookups: RFC 3875 §4.1.9 allows REMOTE_ADDR
	st.addEnv("AUTH_TYPE", authType)
	st.addEnv("REMOTE_USER", remoteUser)
	st.addEnv("CONTENT_LENGTH", strconv.Itoa(contentLength))
	st.addEnv("CONTENT_TYPE", r.Header.Get("Content-Type"))
	st.addEnv("HTTP_HOST", r.Host) // net/http moves Host out of r.Header

	for name, values := range r.Header {
		if name == "Proxy" || strings.IndexByte(name, '_') >= 0 {
			continue // "httpoxy", and names that would clash with their '-' spelling
		}
		sep := ", "
		if name == "Cookie" {
			sep = "; "
		}
		st.addEnv(headerEnvName(name), strings.Join(values, sep))
	}
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
