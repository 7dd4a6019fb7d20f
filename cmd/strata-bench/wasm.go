package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-run/strata/wasmhost"
)

// WasmConfig configures the wasm benchmark (`strata-bench wasm`).
type WasmConfig struct {
	Tiny   string // examples/tiny/tiny.wasm
	Hello  string // examples/hello/hello.wasm (http mode, Go)
	Server string // examples/server/server.wasm (listener mode, Go)

	Duration    time.Duration // measured time per load point; a tenth more warms up
	Concurrency []int         // clients per load point, e.g. 2 and 32

	// Density: instances are added until RSS reaches Budget, Max of them
	// run, or MaxTime passes; the figure is extrapolated to Budget from the
	// RSS each one added.
	Budget          int64
	MaxListeners    int
	MaxHTTPTasks    int
	DistinctModules int // compiled copies of the hello module, for the cost of one more module
	MaxTime         time.Duration

	Skip string // comma-separated parts to skip: compile, http, listener, density
	Out  io.Writer
}

// Wasm measures wasmhost the way the agent uses it, through real TCP
// listeners on loopback, with the load generator in the same process (so it
// shares the machine's cores with the agent): http mode (a fresh instance per
// request) for the tiny and the Go hello module, listener mode for the Go
// server, compile times cold and from the on-disk cache, and density (how many
// idle instances fit in the RSS budget). It prints figures as it goes, then
// key=value lines.
func Wasm(ctx context.Context, cfg WasmConfig) error {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if len(cfg.Concurrency) == 0 {
		cfg.Concurrency = []int{2, 32}
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 3 * time.Second
	}
	skip := map[string]bool{}
	for _, s := range strings.Split(cfg.Skip, ",") {
		skip[strings.TrimSpace(s)] = true
	}
	mods := map[string][]byte{}
	for name, p := range map[string]string{"tiny": cfg.Tiny, "hello": cfg.Hello, "server": cfg.Server} {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("%s module: %w (build the examples first: make examples)", name, err)
		}
		mods[name] = b
	}
	tmp, err := os.MkdirTemp("", "strata-bench-wasm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out := &report{w: cfg.Out, prefix: "wasm_"}
	fmt.Fprintf(cfg.Out, "GOMAXPROCS=%d, %s, load generator in-process\n", runtime.GOMAXPROCS(0), loadavg())

	cacheDir := filepath.Join(tmp, "cache")
	if !skip["compile"] {
		if err := benchCompile(ctx, out, cacheDir, mods); err != nil {
			return err
		}
	}

	h, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: cacheDir})
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	compiled := map[string]*wasmhost.Module{}
	for name, b := range mods {
		m, err := h.Compile(ctx, wasmhost.Digest(b), b)
		if err != nil {
			return fmt.Errorf("compile %s: %w", name, err)
		}
		compiled[name] = m
	}

	if !skip["http"] {
		for _, name := range []string{"tiny", "hello"} {
			handler, err := h.HTTPHandler(compiled[name], wasmhost.HTTPConfig{Name: name, Limits: wasmhost.Limits{MaxMemory: 64 << 20}})
			if err != nil {
				return err
			}
			srv, addr, err := serveHTTP(handler)
			if err != nil {
				return err
			}
			for _, c := range cfg.Concurrency {
				res, err := load(ctx, "http://"+addr+"/x", c, cfg.Duration)
				if err != nil {
					srv.Close()
					return fmt.Errorf("http %s: %w", name, err)
				}
				out.load(fmt.Sprintf("http_%s_c%d", name, c), fmt.Sprintf("http mode, %s module, %d clients", name, c), res)
			}
			srv.Close()
		}
	}

	if !skip["listener"] {
		addr, err := freeLoopback()
		if err != nil {
			return err
		}
		stop, err := startListener(ctx, h, compiled["server"], addr)
		if err != nil {
			return err
		}
		for _, c := range cfg.Concurrency {
			res, err := load(ctx, "http://"+addr+"/x", c, cfg.Duration)
			if err != nil {
				stop()
				return fmt.Errorf("listener: %w", err)
			}
			out.load(fmt.Sprintf("listener_server_c%d", c), fmt.Sprintf("listener mode, Go server, %d clients", c), res)
		}
		stop()
	}
	h.Close(ctx)

	if !skip["density"] {
		if err := benchDensity(ctx, out, cfg, cacheDir, mods); err != nil {
			return err
		}
	}
	out.flush()
	return nil
}

// report collects key=value lines, printed at the end.
type report struct {
	w      io.Writer
	prefix string // of every key
	kv     []string
}

func (r *report) set(key string, format string, args ...any) {
	r.kv = append(r.kv, r.prefix+key+"="+fmt.Sprintf(format, args...))
}

func (r *report) load(key, what string, res loadResult) {
	fmt.Fprintf(r.w, "%-40s %8.0f req/s  p50 %8s  p99 %8s  (%d requests, %d errors)\n",
		what, res.rps, res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.n, res.errors)
	r.set(key+"_rps", "%.0f", res.rps)
	r.set(key+"_p50_us", "%d", res.p50.Microseconds())
	r.set(key+"_p99_us", "%d", res.p99.Microseconds())
}

func (r *report) flush() {
	fmt.Fprintln(r.w)
	for _, kv := range r.kv {
		fmt.Fprintln(r.w, kv)
	}
}

// benchCompile measures a cold compile (empty cache dir, new Host) and one
// from the on-disk cache (another new Host on the same dir), per module.
func benchCompile(ctx context.Context, out *report, cacheDir string, mods map[string][]byte) error {
	for _, name := range []string{"tiny", "hello", "server"} {
		b := mods[name]
		var times [2]time.Duration
		for i := range times {
			h, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: cacheDir})
			if err != nil {
				return err
			}
			start := time.Now()
			_, err = h.Compile(ctx, wasmhost.Digest(b), b)
			times[i] = time.Since(start)
			h.Close(ctx)
			if err != nil {
				return fmt.Errorf("compile %s: %w", name, err)
			}
		}
		fmt.Fprintf(out.w, "compile %-6s (%7d bytes)  cold %8s  from cache %8s\n", name, len(b), times[0].Round(time.Millisecond), times[1].Round(time.Millisecond))
		out.set("compile_"+name+"_cold_ms", "%.1f", float64(times[0].Microseconds())/1000)
		out.set("compile_"+name+"_cached_ms", "%.1f", float64(times[1].Microseconds())/1000)
	}
	return nil
}

// serveHTTP serves handler on a loopback port the way the agent does.
func serveHTTP(handler http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, ln.Addr().String(), nil
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startListener runs m in listener mode on addr until stop is called.
func startListener(ctx context.Context, h *wasmhost.Host, m *wasmhost.Module, addr string) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	listening := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- h.RunListener(ctx, m, wasmhost.ListenerConfig{
			Name: "server", Addr: addr, OnListening: func() { close(listening) },
			Limits: wasmhost.Limits{MaxMemory: 64 << 20},
		})
	}()
	select {
	case <-listening:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("listener on %s: %v", addr, err)
	}
	return func() { cancel(); <-done }, nil
}

type loadResult struct {
	n, errors int
	rps       float64
	p50, p99  time.Duration
}

// load sends GET url from c clients (keep-alive connections) for d after a
// warm-up of d/10, and measures.
func load(ctx context.Context, url string, c int, d time.Duration) (loadResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	get := func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	if err := get(); err != nil {
		return loadResult{}, err
	}
	warm := time.Now().Add(d / 10)
	end := warm.Add(d)
	lat := make([][]time.Duration, c)
	errs := make([]int, c)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for i := range c {
		wg.Go(func() {
			lat[i] = make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				start := time.Now()
				if start.After(end) {
					return
				}
				err := get()
				if start.Before(warm) {
					continue
				}
				if err != nil {
					errs[i]++
					errOnce.Do(func() { firstErr = err })
					continue
				}
				lat[i] = append(lat[i], time.Since(start))
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	res := loadResult{}
	for i := range c {
		all = append(all, lat[i]...)
		res.errors += errs[i]
	}
	if len(all) == 0 {
		return res, fmt.Errorf("no successful request (first error: %v)", firstErr)
	}
	slices.Sort(all)
	res.n = len(all)
	res.rps = float64(len(all)) / d.Seconds()
	res.p50 = all[len(all)/2]
	res.p99 = all[len(all)*99/100]
	return res, nil
}

// rss returns the process's resident set size in bytes, after a GC that
// returns freed memory to the system.
func rss() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load unknown"
	}
	return "load " + strings.Join(f[:3], " ")
}

// benchDensity adds idle instances until the RSS budget, a count or the time
// bound is reached, then extrapolates per-instance RSS to the budget.
func benchDensity(ctx context.Context, out *report, cfg WasmConfig, cacheDir string, mods map[string][]byte) error {
	if cfg.Budget <= 0 {
		cfg.Budget = 4 << 30
	}
	if cfg.MaxTime <= 0 {
		cfg.MaxTime = 3 * time.Minute
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	getOK := func(url string) error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}

	// Listener mode: each instance is a Go net/http server that has served
	// one request.
	h, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: cacheDir})
	if err != nil {
		return err
	}
	server, err := h.Compile(ctx, wasmhost.Digest(mods["server"]), mods["server"])
	if err != nil {
		return err
	}
	base := rss()
	var stops []func()
	deadline := time.Now().Add(cfg.MaxTime)
	n, used := 0, int64(0)
	for n < cfg.MaxListeners && time.Now().Before(deadline) && ctx.Err() == nil {
		addr, err := freeLoopback()
		if err != nil {
			break
		}
		stop, err := startListener(ctx, h, server, addr)
		if err != nil {
			fmt.Fprintf(out.w, "listener density: instance %d: %v\n", n+1, err)
			break
		}
		stops = append(stops, stop)
		if err := getOK("http://" + addr + "/x"); err != nil {
			fmt.Fprintf(out.w, "listener density: instance %d: %v\n", n+1, err)
			break
		}
		n++
		if n%25 == 0 {
			if used = rss() - base; base+used >= cfg.Budget {
				break
			}
		}
	}
	used = rss() - base
	per := used / int64(max(n, 1))
	fit := (cfg.Budget - base) / max(per, 1)
	fmt.Fprintf(out.w, "listener density: %d Go server instances (one request served each) use %d MiB RSS over a %d MiB base: %d KiB each; %d fit in %d GiB\n",
		n, used>>20, base>>20, per>>10, fit, cfg.Budget>>30)
	out.set("density_listener_measured", "%d", n)
	out.set("density_listener_rss_kib_each", "%d", per>>10)
	out.set("density_listener_per_4gib", "%d", fit)
	for _, stop := range stops {
		stop()
	}
	h.Close(ctx)

	// http mode, idle tasks of one module: each is an agent-side server on
	// its own port with a handler; the module is compiled once.
	h, err = wasmhost.New(ctx, wasmhost.Config{CacheDir: cacheDir})
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	hello, err := h.Compile(ctx, wasmhost.Digest(mods["hello"]), mods["hello"])
	if err != nil {
		return err
	}
	base = rss()
	var servers []*http.Server
	n = 0
	deadline = time.Now().Add(cfg.MaxTime)
	for n < cfg.MaxHTTPTasks && time.Now().Before(deadline) && ctx.Err() == nil {
		handler, err := h.HTTPHandler(hello, wasmhost.HTTPConfig{Name: "hello", Env: map[string]string{"STRATA_TASK_NAME": "hello" + strconv.Itoa(n)}})
		if err != nil {
			return err
		}
		srv, _, err := serveHTTP(handler)
		if err != nil {
			fmt.Fprintf(out.w, "http density: task %d: %v\n", n+1, err)
			break
		}
		servers = append(servers, srv)
		n++
	}
	used = rss() - base
	per = used / int64(max(n, 1))
	fit = (cfg.Budget - base) / max(per, 1)
	fmt.Fprintf(out.w, "http density: %d idle tasks of one module use %d MiB RSS: %d KiB each; %d would fit in %d GiB (the dynamic port range, 20000-32000, allows 12001 per node)\n",
		n, used>>20, per>>10, fit, cfg.Budget>>30)
	out.set("density_http_tasks_measured", "%d", n)
	out.set("density_http_rss_kib_each", "%d", per>>10)
	out.set("density_http_tasks_per_4gib", "%d", fit)
	for _, srv := range servers {
		srv.Close()
	}

	// One more distinct module costs its compiled code: measured with copies
	// of the hello module made distinct by a custom section.
	if cfg.DistinctModules > 0 {
		base = rss()
		for i := range cfg.DistinctModules {
			b := withCustomSection(mods["hello"], "strata-bench", []byte(strconv.Itoa(i)))
			if _, err := h.Compile(ctx, wasmhost.Digest(b), b); err != nil {
				return err
			}
		}
		per = (rss() - base) / int64(cfg.DistinctModules)
		fmt.Fprintf(out.w, "http density: each distinct Go module compiled adds %d KiB RSS (%d modules): %d distinct idle tasks would fit in %d GiB\n",
			per>>10, cfg.DistinctModules, (cfg.Budget-base)/max(per, 1), cfg.Budget>>30)
		out.set("density_module_rss_kib_each", "%d", per>>10)
		out.set("density_distinct_module_tasks_per_4gib", "%d", (cfg.Budget-base)/max(per, 1))
	}
	return nil
}

// withCustomSection returns b with a custom section appended: a different
// digest, the same program.
func withCustomSection(b []byte, name string, data []byte) []byte {
	uleb := func(n int) []byte {
		var out []byte
		for {
			c := byte(n & 0x7f)
			n >>= 7
			if n == 0 {
				return append(out, c)
			}
			out = append(out, c|0x80)
		}
	}
	content := append(uleb(len(name)), name...)
	content = append(content, data...)
	out := bytes.Clone(b)
	out = append(out, 0)
	out = append(out, uleb(len(content))...)
	return append(out, content...)
}
