package wasmhost

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHelloExample runs examples/hello, built for wasip1, through the handler.
func TestHelloExample(t *testing.T) {
	h, m := sharedGoModule(t, helloPkg)
	handler := mustHandler(t, h, m, HTTPConfig{Name: "hello"})
	for _, tc := range []struct{ target, want string }{
		{"/x", "hello from /x\n"},
		{"/", "hello from /\n"},
		{"/a/b%20c?q=1", "hello from /a/b c\n"},
	} {
		rec := do(handler, http.MethodGet, tc.target, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d, body %q", tc.target, rec.Code, rec.Body)
		}
		if got := rec.Body.String(); got != tc.want {
			t.Errorf("GET %s: body %q, want %q", tc.target, got, tc.want)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "text/plain" {
			t.Errorf("GET %s: Content-Type %q, want text/plain", tc.target, ct)
		}
		if cl := rec.Header().Get("Content-Length"); cl != fmt.Sprint(len(tc.want)) {
			t.Errorf("GET %s: Content-Length %q, want %d", tc.target, cl, len(tc.want))
		}
	}
}

// Through a real server and client: the request and response travel over TCP.
func TestHelloOverTCP(t *testing.T) {
	h, m := sharedGoModule(t, helloPkg)
	srv := httptest.NewServer(mustHandler(t, h, m, HTTPConfig{Name: "hello"}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "hello from /x\n" {
		t.Fatalf("GET /x: %d %q", resp.StatusCode, body)
	}
}

// parseEcho parses envecho's output into env, args and stdin.
func parseEcho(t *testing.T, body string) (env map[string]string, args []string, stdin string) {
	t.Helper()
	env = map[string]string{}
	for line := range strings.Lines(body) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "ENV "):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "ENV "), "=")
			env[k] = v
		case strings.HasPrefix(line, "ARG"):
			_, a, _ := strings.Cut(line, " ")
			args = append(args, a)
		case strings.HasPrefix(line, "STDIN "):
			stdin = strings.TrimPrefix(line, "STDIN ")
		}
	}
	return env, args, stdin
}

func TestCGIEnvironment(t *testing.T) {
	h, m := sharedGoModule(t, envechoPkg)
	handler := mustHandler(t, h, m, HTTPConfig{
		Name: "echo",
		Args: []string{"-v", "two words"},
		Env:  map[string]string{"DB_HOST": "db01.example.com", "REQUEST_METHOD": "task env loses", "BAD=NAME": "dropped"},
	})

	req := httptest.NewRequest(http.MethodPost, "http://example.com:8080/a/b%2Fc?greet=matt&foo=bar", strings.NewReader("the body"))
	req.RemoteAddr = "192.0.2.7:51234"
	req.Header.Set("Content-Type", "application/x-test")
	req.Header.Set("X-Test-Header", "hello")
	req.Header.Add("Accept", "text/html")
	req.Header.Add("Accept", "text/plain")
	req.SetBasicAuth("alice", "secret")
	req.Header.Set("Proxy", "http://evil.example:3128")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %q", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("X-Echo"); got != "yes" {
		t.Errorf("X-Echo header %q, want yes", got)
	}
	env, args, stdin := parseEcho(t, rec.Body.String())

	want := map[string]string{
		"DB_HOST":            "db01.example.com",
		"REQUEST_METHOD":     "POST",
		"PATH_INFO":          "/a/b/c",
		"PATH_TRANSLATED":    "/a/b/c",
		"X_RAW_PATH_INFO":    "/a/b%2Fc",
		"QUERY_STRING":       "greet=matt&foo=bar",
		"SCRIPT_NAME":        "/echo",
		"SERVER_NAME":        "example.com",
		"SERVER_PORT":        "8080",
		"SERVER_PROTOCOL":    "HTTP/1.1",
		"SERVER_SOFTWARE":    serverSoftware,
		"REMOTE_ADDR":        "192.0.2.7",
		"REMOTE_HOST":        "192.0.2.7",
		"REMOTE_USER":        "alice",
		"AUTH_TYPE":          "Basic",
		"CONTENT_LENGTH":     "8",
		"CONTENT_TYPE":       "application/x-test",
		"GATEWAY_INTERFACE":  "CGI/1.1",
		"X_FULL_URL":         "http://example.com:8080/a/b%2Fc?greet=matt&foo=bar",
		"X_MATCHED_ROUTE":    "/...",
		"HTTP_HOST":          "example.com:8080",
		"HTTP_X_TEST_HEADER": "hello",
		"HTTP_ACCEPT":        "text/html, text/plain",
		"HTTP_CONTENT_TYPE":  "application/x-test",
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("env %s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	if _, ok := env["HTTP_PROXY"]; ok {
		t.Error("the Proxy header reached the module as HTTP_PROXY")
	}
	if got := env["HTTP_AUTHORIZATION"]; got != "Basic YWxpY2U6c2VjcmV0" {
		t.Errorf("HTTP_AUTHORIZATION = %q, want the header", got)
	}
	if _, ok := env["BAD"]; ok {
		t.Error("invalid task env name reached the module")
	}
	if got := strings.Join(args, "|"); got != "echo|-v|two words" {
		t.Errorf("args %q, want echo|-v|two words", got)
	}
	if stdin != "the body" {
		t.Errorf("stdin %q, want %q", stdin, "the body")
	}
}

func TestCGIEnvironmentDefaults(t *testing.T) {
	h, m := sharedGoModule(t, envechoPkg)
	handler := mustHandler(t, h, m, HTTPConfig{})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = "[2001:db8::1]"
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %q", rec.Code, rec.Body)
	}
	env, args, stdin := parseEcho(t, rec.Body.String())
	for k, v := range map[string]string{
		"SERVER_NAME":    "2001:db8::1",
		"SERVER_PORT":    "80",
		"SCRIPT_NAME":    "",
		"CONTENT_LENGTH": "0",
		"AUTH_TYPE":      "",
		"REMOTE_USER":    "",
		"PATH_INFO":      "/",
		"QUERY_STRING":   "",
	} {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("env %s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	if len(args) != 1 || args[0] != "" || stdin != "" {
		t.Errorf("args %q stdin %q, want [\"\"] and empty", args, stdin)
	}
}

// Requests served at once each see their own environment and stdin.
func TestConcurrentRequests(t *testing.T) {
	h, echo := sharedGoModule(t, envechoPkg)
	echoHandler := mustHandler(t, h, echo, HTTPConfig{Name: "echo", Env: map[string]string{"A": "1", "B": "2"}})
	tiny := mustHandler(t, h, mustCompile(t, h, okModule), HTTPConfig{Name: "tiny"})

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 8 {
		wg.Go(func() {
			path := fmt.Sprintf("/req/%d", i)
			body := fmt.Sprintf("body %d", i)
			rec := do(echoHandler, http.MethodPost, path+"?i="+fmt.Sprint(i), strings.NewReader(body))
			env, _, stdin := parseEcho(t, rec.Body.String())
			if rec.Code != http.StatusOK || env["PATH_INFO"] != path || env["QUERY_STRING"] != "i="+fmt.Sprint(i) || stdin != body || env["A"] != "1" {
				errs <- fmt.Errorf("request %d: %d, PATH_INFO %q, QUERY_STRING %q, stdin %q", i, rec.Code, env["PATH_INFO"], env["QUERY_STRING"], stdin)
			}
		})
		wg.Go(func() {
			for range 4 {
				if rec := do(tiny, http.MethodGet, "/", nil); rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
					errs <- fmt.Errorf("tiny: %d %q", rec.Code, rec.Body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestHandlerStatuses(t *testing.T) {
	h := newHost(t)
	for _, tc := range []struct {
		name     string
		module   []byte
		wantCode int
		wantBody string
	}{
		{"writes and returns", okModule, http.StatusOK, "ok\n"},
		{"proc_exit(0) is success", exit0Module, http.StatusOK, "ok\n"},
		{"proc_exit(7)", exit7Module, http.StatusInternalServerError, "500 Internal Server Error\n"},
		{"unreachable traps", trapModule, http.StatusInternalServerError, "500 Internal Server Error\n"},
		{"garbage output", garbageModule, http.StatusBadGateway, "502 Bad Gateway\n"},
		{"no output", emptyModule, http.StatusBadGateway, "502 Bad Gateway\n"},
		{"Status header", writeModule("Status: 404 Not Found\nContent-Type: text/plain\n\nnope", -1), http.StatusNotFound, "nope"},
		{"Location redirect", writeModule("Location: https://example.com/\n\n", -1), http.StatusFound, ""},
		{"no Content-Type", writeModule("X-Only: 1\n\nbody", -1), http.StatusBadGateway, "502 Bad Gateway\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handler := mustHandler(t, h, mustCompile(t, h, tc.module), HTTPConfig{Name: tc.name})
			rec := do(handler, http.MethodGet, "/", nil)
			if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body, tc.wantCode, tc.wantBody)
			}
			if tc.wantCode == http.StatusOK && rec.Header().Get("X-Tiny") != "1" {
				t.Errorf("module header X-Tiny missing: %v", rec.Header())
			}
		})
	}
}

// A module that never returns is stopped at MaxRequestTime with 504, and the
// same handler, and the Host, go on serving.
func TestMaxRequestTime(t *testing.T) {
	h := newHost(t)
	handler := mustHandler(t, h, mustCompile(t, h, loopIfBodyModule), HTTPConfig{Name: "loop", MaxRequestTime: 100 * time.Millisecond})
	for range 2 {
		if rec := do(handler, http.MethodPost, "/", strings.NewReader("spin")); rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("POST (loops): %d %q, want 504", rec.Code, rec.Body)
		}
		if rec := do(handler, http.MethodGet, "/", nil); rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
			t.Fatalf("GET after a timeout: %d %q, want 200", rec.Code, rec.Body)
		}
	}
	loop := mustHandler(t, h, mustCompile(t, h, loopModule), HTTPConfig{Name: "loop", MaxRequestTime: 10 * time.Millisecond})
	if rec := do(loop, http.MethodGet, "/", nil); rec.Code != http.StatusGatewayTimeout {
		t.Fatalf("loop module: %d %q, want 504", rec.Code, rec.Body)
	}
}

// The same with a Go module: spinning (loop=1) and sleeping (sleep=1h) are
// both stopped; a short sleep and a non-zero exit behave.
func TestMaxRequestTimeGo(t *testing.T) {
	h, m := sharedGoModule(t, envechoPkg)
	handler := mustHandler(t, h, m, HTTPConfig{Name: "echo", MaxRequestTime: time.Second})
	for _, target := range []string{"/?loop=1", "/?sleep=1h"} {
		if rec := do(handler, http.MethodGet, target, nil); rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("GET %s: %d %q, want 504", target, rec.Code, rec.Body)
		}
	}
	// A generous limit for the rest, so that a loaded machine (or the race
	// detector's interpreter) cannot turn them into 504s.
	handler = mustHandler(t, h, m, HTTPConfig{Name: "echo"})
	if rec := do(handler, http.MethodGet, "/?exit=3", nil); rec.Code != http.StatusInternalServerError {
		t.Fatalf("GET /?exit=3: %d %q, want 500", rec.Code, rec.Body)
	}
	if rec := do(handler, http.MethodGet, "/?sleep=1ms", nil); rec.Code != http.StatusOK {
		t.Fatalf("GET /?sleep=1ms: %d %q", rec.Code, rec.Body)
	}
}

// A client that goes away stops the instance; nothing is written.
func TestClientCancel(t *testing.T) {
	h := newHost(t)
	handler := mustHandler(t, h, mustCompile(t, h, loopModule), HTTPConfig{Name: "loop"})
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		handler.ServeHTTP(rec, req)
	}()
	cancel()
	<-done // returns only because the instance was stopped
	if rec.Body.Len() != 0 {
		t.Errorf("wrote %q to a canceled request", rec.Body)
	}
}

func TestBodyLimits(t *testing.T) {
	h := newHost(t)
	m := mustCompile(t, h, okModule)
	handler := mustHandler(t, h, m, HTTPConfig{MaxBodyBytes: 4})

	if rec := do(handler, http.MethodPost, "/", strings.NewReader("12345")); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("5-byte body with Content-Length: %d, want 413", rec.Code)
	}
	// Without Content-Length (chunked), the limit applies while reading.
	req := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader("123"), strings.NewReader("45")))
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("5-byte chunked body: %d, want 413", rec.Code)
	}
	if rec := do(handler, http.MethodPost, "/", strings.NewReader("1234")); rec.Code != http.StatusOK {
		t.Errorf("4-byte body: %d, want 200", rec.Code)
	}
	req = httptest.NewRequest(http.MethodPost, "/", errReader{})
	req.ContentLength = -1
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("unreadable body: %d, want 400", rec.Code)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestMaxResponseBytes(t *testing.T) {
	h := newHost(t)
	handler := mustHandler(t, h, mustCompile(t, h, okModule), HTTPConfig{MaxResponseBytes: 10})
	if rec := do(handler, http.MethodGet, "/", nil); rec.Code != http.StatusBadGateway {
		t.Errorf("response over MaxResponseBytes: %d, want 502", rec.Code)
	}
}

func TestStderr(t *testing.T) {
	h := newHost(t)
	// fd_write to fd 2 instead of 1: patch writeModule's "i32.const 1" fd.
	b := writeModule(okResponse, -1)
	fd := concat(i32Const(1), i32Const(0), i32Const(1), i32Const(8), []byte{opCall})
	i := bytes.Index(b, fd)
	if i < 0 {
		t.Fatal("fd_write call not found in the test module")
	}
	b = bytes.Clone(b)
	b[i+1] = 2
	var stderr bytes.Buffer
	handler := mustHandler(t, h, mustCompile(t, h, b), HTTPConfig{Stderr: &stderr})
	if rec := do(handler, http.MethodGet, "/", nil); rec.Code != http.StatusBadGateway {
		t.Errorf("module writing only to stderr: %d, want 502", rec.Code)
	}
	if stderr.String() != okResponse {
		t.Errorf("stderr %q, want %q", stderr.String(), okResponse)
	}
}

// An instance that outgrows MaxMemory is stopped: 500, and the handler goes
// on serving.
func TestHTTPMemoryLimit(t *testing.T) {
	h := newHost(t)
	grow := mustHandler(t, h, mustCompile(t, h, growModule), HTTPConfig{Limits: Limits{MaxMemory: 4 << 20}})
	if rec := do(grow, http.MethodGet, "/", nil); rec.Code != http.StatusInternalServerError {
		t.Fatalf("growing past MaxMemory: %d %q, want 500", rec.Code, rec.Body)
	}

	h2, m := sharedGoModule(t, envechoPkg)
	echo := mustHandler(t, h2, m, HTTPConfig{Limits: Limits{MaxMemory: 32 << 20}})
	if rec := do(echo, http.MethodGet, "/?alloc=64", nil); rec.Code != http.StatusInternalServerError {
		t.Fatalf("Go module allocating 64 MiB under 32: %d %q, want 500", rec.Code, rec.Body)
	}
	if rec := do(echo, http.MethodGet, "/?alloc=8", nil); rec.Code != http.StatusOK {
		t.Fatalf("Go module allocating 8 MiB under 32: %d %q, want 200", rec.Code, rec.Body)
	}
}

// While one request spins until its MaxRequestTime, others are served.
func TestHTTPLoopDoesNotBlockOthers(t *testing.T) {
	h := newHost(t)
	loop := mustHandler(t, h, mustCompile(t, h, loopModule), HTTPConfig{Name: "loop", MaxRequestTime: 500 * time.Millisecond})
	ok := mustHandler(t, h, mustCompile(t, h, okModule), HTTPConfig{Name: "ok"})
	looped := make(chan int, 1)
	go func() { looped <- do(loop, http.MethodGet, "/", nil).Code }()
	for i := range 20 {
		if rec := do(ok, http.MethodGet, "/", nil); rec.Code != http.StatusOK {
			t.Fatalf("request %d beside a spinning one: %d", i, rec.Code)
		}
	}
	if code := <-looped; code != http.StatusGatewayTimeout {
		t.Fatalf("spinning request: %d, want 504", code)
	}
}

// MaxConcurrency: requests over it wait for a slot, bounded in number
// (MaxQueue) and in time (their MaxRequestTime), then get 503.
func TestHTTPMaxConcurrency(t *testing.T) {
	h := newHost(t)
	m := mustCompile(t, h, okModule)
	hh := mustHandler(t, h, m, HTTPConfig{MaxConcurrency: 1, MaxQueue: 1, MaxRequestTime: 50 * time.Millisecond}).(*httpHandler)
	if rec := do(hh, http.MethodGet, "/", nil); rec.Code != http.StatusOK {
		t.Fatalf("free slot: %d", rec.Code)
	}

	hh.slots <- struct{}{} // an instance is running
	rec := do(hh, http.MethodGet, "/", nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("no slot before the deadline: %d %v, want 503 with Retry-After", rec.Code, rec.Header())
	}
	hh.queue <- struct{}{} // and a request is waiting
	if rec := do(hh, http.MethodGet, "/", nil); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("queue full: %d, want 503", rec.Code)
	}
	<-hh.queue

	// A waiting request gets the slot once it frees.
	hh2 := mustHandler(t, h, m, HTTPConfig{MaxConcurrency: 1}).(*httpHandler)
	hh2.slots <- struct{}{}
	done := make(chan int)
	go func() { done <- do(hh2, http.MethodGet, "/", nil).Code }()
	<-hh2.slots
	if code := <-done; code != http.StatusOK {
		t.Fatalf("after the slot freed: %d, want 200", code)
	}

	// Under load, every request is served, never more than MaxConcurrency at once.
	hh3 := mustHandler(t, h, m, HTTPConfig{MaxConcurrency: 2, MaxQueue: 16, MaxRequestTime: time.Minute})
	var wg sync.WaitGroup
	codes := make(chan int, 16)
	for range 16 {
		wg.Go(func() { codes <- do(hh3, http.MethodGet, "/", nil).Code })
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Errorf("under load: %d", code)
		}
	}
}

// A header overrides a task env variable of the same name; header names with
// '_' are dropped (they would be ambiguous with '-').
func TestHTTPEnvOverride(t *testing.T) {
	h, m := sharedGoModule(t, envechoPkg)
	handler := mustHandler(t, h, m, HTTPConfig{Env: map[string]string{"HTTP_X_A": "task", "HTTP_X_B": "task", "PATH_INFO": "task"}})
	req := httptest.NewRequest(http.MethodGet, "/p", nil)
	req.Header.Set("X-A", "header")
	req.Header["X_C"] = []string{"underscore"}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	env, _, _ := parseEcho(t, rec.Body.String())
	for k, want := range map[string]string{"HTTP_X_A": "header", "HTTP_X_B": "task", "PATH_INFO": "/p"} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	if v, ok := env["HTTP_X_C"]; ok {
		t.Errorf("HTTP_X_C = %q: a header name with '_' reached the module", v)
	}
}
