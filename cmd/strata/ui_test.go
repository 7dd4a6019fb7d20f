package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/edge"
	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/testwasm"
	"github.com/strata-run/strata/spec"
)

var screenshots = flag.Bool("screenshots", false, "save the web UI's screenshots to docs/ui/")

// uiTimeout bounds each wait on the browser: a real browser, a server and
// an agent run on a loaded machine (and the agent's first compile of the
// 9 MB example module takes minutes under the race detector), so it is
// generous; the waits end as soon as the page shows what they look for.
const uiTimeout = 6 * time.Minute

// Must-show 4: a server with ACLs and an agent in this process, Debian's
// chromium driven by chromedp. The browser opens /ui/ with the token in
// the URL fragment (kept in session storage, gone from the address bar),
// sees the running job, follows it to its allocation and the task's log
// lines, and sees a scale change appear without a reload.
func TestWebUI(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("the web UI test needs Debian's chromium (make tools-chromium installs it): ", err)
	}
	// The listener-mode example: a long-lived HTTP server with a health
	// check, which logs where it serves on stderr.
	module, err := testwasm.Build(repoRoot(), "./examples/server")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(repoRoot(), "examples", "server", "server.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	job, err := spec.Parse("server.hcl", src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var logs testutil.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server and agent logs:\n%s", logs.String())
		}
	})
	srv, err := coordinator.New(coordinator.Config{DataDir: filepath.Join(dir, "server"), Bootstrap: true, DevMode: true, ACLEnabled: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	commits := srv.Store().Watch
	testutil.Await(t, time.Minute, "a leader with the cluster CA", commits, func() error {
		if srv.Leader() == "" || srv.CAPin() == "" {
			return fmt.Errorf("leader %q, CA pin %q", srv.Leader(), srv.CAPin())
		}
		return nil
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	ctx := context.Background()
	c := api.NewClient(hs.URL)
	mgmt, err := c.ACLBootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Token = mgmt.SecretID

	tok, err := srv.CreateJoinToken(structs.JoinTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := edge.New(ctx, edge.Config{Servers: []string{srv.AgentAddr()}, CAPin: srv.CAPin(), JoinToken: tok.Secret,
		DataDir: filepath.Join(dir, "agent"), NodeName: "edge-1", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(agentCtx) }()
	t.Cleanup(func() {
		stopAgent()
		select {
		case <-agentDone:
		case <-time.After(time.Minute):
			t.Error("agent did not stop within a minute")
		}
	})
	select {
	case <-agent.Registered():
	case <-time.After(time.Minute):
		t.Fatal("agent did not register within a minute")
	}

	if _, err := c.PushModule(ctx, "server", "0.1.0", module); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterJob(ctx, job); err != nil {
		t.Fatal(err)
	}

	// The browser: headless, its own profile, no sandbox (CI runs as root).
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.UserDataDir(filepath.Join(dir, "chromium")))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, uiTimeout)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("browser: %s: %v\n%s", what, err, pageText(bctx))
		}
	}
	// until waits for a JavaScript predicate to hold on the page.
	until := func(what, predicate string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, uiTimeout+10*time.Second)
		defer cancel()
		if _, err := chromedp.Run(sctx, chromedp.Poll[bool](predicate, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(uiTimeout))); err != nil {
			t.Fatalf("browser: waiting for %s: %v\n%s", what, err, pageText(bctx))
		}
	}
	// click clicks the first element matching a CSS selector, found and
	// clicked in one step in the page: the page re-renders its body when
	// events arrive, so a node found in one protocol call may be gone in
	// the next.
	click := func(what, selector string) {
		t.Helper()
		until(what, fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; el.click(); return true; })()`, selector))
	}
	shot := func(name string) {
		t.Helper()
		if !*screenshots {
			return
		}
		sctx, cancel := context.WithTimeout(bctx, uiTimeout)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "ui", name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(bctx); err != nil { // start the browser on the long-lived context
		t.Fatalf("starting chromium: %v", err)
	}

	// The token arrives in the fragment; the page keeps it in session
	// storage and removes it from the address bar.
	run("open /ui/ with a token", chromedp.Navigate(hs.URL+"/ui/#token="+mgmt.SecretID))
	until("the jobs table lists the job, running",
		`[...document.querySelectorAll('#page tbody tr')].some(r => r.textContent.includes('server') && r.textContent.includes('running'))`)
	until("the token leaves the address bar for session storage",
		fmt.Sprintf(`!location.href.includes('token') && sessionStorage.getItem('strata.token') === %q`, mgmt.SecretID))
	until("the event stream is live", `document.getElementById('live').dataset.state === 'live'`)
	shot("jobs")

	// The job, then its allocation and the task's log lines.
	click("follow the job", `#page a[href="#/job/server"]`)
	until("the job's allocation, running",
		`(() => { const t = document.querySelector('[aria-label="Allocations"] tbody'); return !!t && t.rows.length === 1 && t.textContent.includes('running'); })()`)
	shot("job")
	click("follow the allocation", `[aria-label="Allocations"] tbody a[href^="#/allocation/"]`)
	until("the task's events", `!!document.querySelector('[aria-label="Events of task server"]')`)
	until("the task's log, stdout", `document.getElementById('log-type').value === 'stdout'`)
	until("switch to stderr", `(() => { const s = document.getElementById('log-type'); s.value = 'stderr'; s.dispatchEvent(new Event('change')); return true; })()`)
	until("the task's log lines", `/^server: serving on \S+\n/.test(document.getElementById('log').textContent)`)
	shot("allocation")

	// Back on the job's page, a scale to 2 shows a second allocation with
	// no reload: a value set on the page survives, and the page was not
	// navigated again.
	click("back to the job", `#page a[href="#/job/server"]`)
	until("the job page again", `!!document.querySelector('[aria-label="Allocations"] tbody')`)
	until("mark the page", `(window.__notReloaded = 'yes') === 'yes'`)
	if _, err := c.ScaleJob(ctx, "server", "web", 2); err != nil {
		t.Fatal(err)
	}
	until("the second allocation appears, running",
		`(() => { const t = document.querySelector('[aria-label="Allocations"] tbody'); return !!t && t.rows.length === 2 && [...t.rows].every(r => r.textContent.includes('running')); })()`)
	until("the page was not reloaded", `window.__notReloaded === 'yes' && performance.getEntriesByType('navigation').length === 1`)

	// The other pages show the node with its driver and allocations, and
	// this server; a phone-sized window shows the jobs.
	run("the nodes page", chromedp.Navigate(hs.URL+"/ui/#/nodes"))
	until("the node, ready, with its two allocations",
		`(() => { const r = document.querySelector('[aria-label="Nodes"] tbody tr'); return !!r && r.textContent.includes('edge-1') && r.textContent.includes('ready') && r.textContent.includes('wasm') && r.cells[r.cells.length-1].textContent === '2'; })()`)
	shot("nodes")
	click("the node's page", `[aria-label="Nodes"] tbody a`)
	until("its drivers and allocations", `!!document.querySelector('[aria-label="Drivers"]') && document.querySelectorAll('[aria-label="Allocations"] tbody tr').length === 2`)
	shot("node")
	run("the services page", chromedp.Navigate(hs.URL+"/ui/#/services"))
	until("the service's two instances, passing",
		`(() => { const rows = document.querySelectorAll('[aria-label="Instances of server-web-server"] tbody tr'); return rows.length === 2 && [...rows].every(r => r.textContent.includes('passing')); })()`)
	shot("services")
	run("the servers page", chromedp.Navigate(hs.URL+"/ui/#/servers"))
	until("this server, the leader", `(() => { const r = document.querySelector('[aria-label="Servers"] tbody tr'); return !!r && r.textContent.includes('alive') && r.textContent.includes('leader'); })()`)
	shot("servers")
	run("a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(hs.URL+"/ui/#/jobs"))
	until("the jobs on a phone, without sideways scrolling of the page",
		`!!document.querySelector('#page tbody tr') && document.documentElement.scrollWidth <= window.innerWidth`)
	shot("jobs-phone")

	// Without a token the page asks for one.
	run("a desktop again", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(hs.URL+"/ui/#/jobs"))
	click("forget the token", "#forget-token")
	until("the token form", `!!document.getElementById('token-input') && document.querySelector('form.token [role=alert]').textContent.includes('no ACL token')`)
	shot("token")
}

// pageText is the page's text, for a failure's message.
func pageText(ctx context.Context) string {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "(page unreadable: " + err.Error() + ")"
	}
	return "page:\n" + strings.TrimSpace(s)
}
