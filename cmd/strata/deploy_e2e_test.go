package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/testutil"
)

// deployJobHCL is a 4-instance service of the hello module that rolls one
// instance at a time, each new one healthy after 1s of passing checks,
// stopping old ones 2s after they leave DNS.
const deployJobHCL = `
variable "module"      { default = "hello@0.1.0" }
variable "version"     { default = "v1" }
variable "healthy"     { default = "true" }
variable "canary"      { default = 0 }
variable "autopromote" { default = false }

job "roll" {
  update {
    max_parallel      = 1
    min_healthy_time  = "1s"
    healthy_deadline  = "10s"
    progress_deadline = "30s"
    stagger           = "1s"
    canary            = var.canary
    auto_promote      = var.autopromote
    auto_revert       = true
  }
  group "web" {
    count          = 4
    shutdown_delay = "2s"
    task "hello" {
      driver = "wasm"
      config {
        module = var.module
        mode   = "http"
      }
      env {
        HELLO_VERSION = var.version
        HEALTHY       = var.healthy
      }
      resources {
        cpu    = 50
        memory = 32
        network {
          port "http" {}
        }
      }
      service {
        tags = ["web"]
        port = "http"
        check {
          type     = "http"
          path     = "/health"
          interval = "1s"
          timeout  = "1s"
        }
      }
    }
  }
}
`

const rollService = "roll-web-hello.service.strata"

// load sends requests to a service without pause, each one resolved
// through Strata's DNS first (no caching), as a client that follows the
// registry would, and counts what it sees.
type load struct {
	t       *testing.T
	dnsAddr string
	stop    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	ok       int
	failures []string
	minSRV   int            // fewest instances DNS named
	versions map[string]int // answers by the version in them
	last     string         // the version of the last answer
}

var versionRe = regexp.MustCompile(`\((v\d+)\)`)

func startLoad(t *testing.T, dnsAddr string, workers int) *load {
	l := &load{t: t, dnsAddr: dnsAddr, stop: make(chan struct{}), minSRV: 1 << 30, versions: map[string]int{}}
	for range workers {
		l.wg.Go(l.run)
	}
	return l
}

func (l *load) run() {
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		addrs, err := resolveSRV(l.t, l.dnsAddr, rollService)
		if err != nil {
			l.fail("DNS: %v", err)
			continue
		}
		addr := addrs[rand.IntN(len(addrs))]
		code, body, err := httpGet("http://" + addr + "/x")
		l.mu.Lock()
		l.minSRV = min(l.minSRV, len(addrs))
		l.mu.Unlock()
		if err != nil || code != 200 {
			l.fail("GET %s: %d %q %v", addr, code, body, err)
			continue
		}
		m := versionRe.FindStringSubmatch(body)
		l.mu.Lock()
		l.ok++
		if m != nil {
			l.versions[m[1]]++
			l.last = m[1]
		}
		l.mu.Unlock()
	}
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 20 {
		l.failures = append(l.failures, fmt.Sprintf(format, args...))
	} else {
		l.failures = append(l.failures[:20], "…")
	}
}

// finish stops the load and fails the test if any request failed or DNS
// ever named fewer than minInstances; it returns the answers by version.
func (l *load) finish(what string, minInstances int) map[string]int {
	l.t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("%s: %d requests answered, %d failed, fewest instances in DNS %d, answers by version %v", what, l.ok, len(l.failures), l.minSRV, l.versions)
	if len(l.failures) > 0 {
		l.t.Fatalf("%s: %d failed requests, the first: %q", what, len(l.failures), l.failures)
	}
	if l.ok == 0 {
		l.t.Fatalf("%s: no request was answered", what)
	}
	if l.minSRV < minInstances {
		l.t.Fatalf("%s: DNS named %d instances at one point; want at least %d", what, l.minSRV, minInstances)
	}
	return l.versions
}

// answersOnly checks that the service now answers with one version only.
func answersOnly(t *testing.T, dnsAddr, version string) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "every instance answers "+version, func() error {
		addrs, err := resolveSRV(t, dnsAddr, rollService)
		if err != nil {
			return err
		}
		if len(addrs) != 4 {
			return fmt.Errorf("DNS names %d instances", len(addrs))
		}
		for _, a := range addrs {
			_, body, err := httpGet("http://" + a + "/x")
			if err != nil || !strings.Contains(body, "("+version+")") {
				return fmt.Errorf("%s answers %q, %v", a, body, err)
			}
		}
		return nil
	})
}

func latestDeployment(t *testing.T, d *devProc) *structs.Deployment {
	t.Helper()
	var dep structs.Deployment
	d.getJSON("/v1/job/roll/deployment", &dep)
	return &dep
}

// Issue 14, points 1, 2, 3 and 5, through the real binary: a rolling
// update of a new module version, a version whose checks fail reverted
// by itself, plan and -check-index, job revert, canaries promoted by hand
// and by auto_promote, all under steady load resolved through DNS, with
// no failed request.
func TestDeploymentsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries")
	}
	buildArtifacts(t)
	d := startDev(t, t.TempDir(), freePort(t), freePort(t))
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.2.0")
	job := filepath.Join(t.TempDir(), "roll.hcl")
	if err := os.WriteFile(job, []byte(deployJobHCL), 0o644); err != nil {
		t.Fatal(err)
	}
	out := d.mustCLI("run", job)
	if !strings.Contains(out, "Deployment completed successfully") {
		t.Fatalf("first run:\n%s", out)
	}
	answersOnly(t, d.dnsAddr, "v1")

	// plan: a diff with the module's version and digest, the modify index;
	// nothing changes.
	r := d.cli("plan", "-var", "module=hello@0.2.0", "-var", "version=v2", job)
	if r.code != 1 {
		t.Fatalf("plan of a change exits %d, want 1 (Nomad's: allocations would change)\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{`config > module: "hello@0.1.0" => "hello@0.2.0"`, `env > HELLO_VERSION: "v1" => "v2"`, "4 create/destroy update", "starts a deployment"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("plan output lacks %q:\n%s", want, r.stdout)
		}
	}
	m := regexp.MustCompile(`Job Modify Index: (\d+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("plan printed no modify index:\n%s", r.stdout)
	}
	index, _ := strconv.ParseUint(m[1], 10, 64)
	var versions structs.JobVersionsResponse
	d.getJSON("/v1/job/roll/versions", &versions)
	if len(versions.Versions) != 1 {
		t.Fatalf("plan changed the job: %d versions", len(versions.Versions))
	}

	// -check-index refuses a stale apply.
	r = d.cli("run", "-check-index", fmt.Sprint(index+1), "-var", "module=hello@0.2.0", "-var", "version=v2", job)
	if r.code == 0 || !strings.Contains(r.stderr, "changed since") {
		t.Fatalf("a stale -check-index: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Point 1: the new module version rolls out under load: 0 failed
	// requests, never fewer than 3 instances in DNS.
	l := startLoad(t, d.dnsAddr, 4)
	out = d.mustCLI("run", "-check-index", fmt.Sprint(index), "-var", "module=hello@0.2.0", "-var", "version=v2", job)
	if !strings.Contains(out, "Deployment completed successfully") {
		t.Fatalf("rolling update:\n%s", out)
	}
	answersOnly(t, d.dnsAddr, "v2")
	if v := l.finish("rolling update", 3); v["v1"] == 0 || v["v2"] == 0 {
		t.Fatalf("the load saw versions %v; want both v1 and v2 during the update", v)
	}

	// Point 2: a version whose health check fails is reverted; its
	// instances never serve; run exits non-zero saying why.
	l = startLoad(t, d.dnsAddr, 4)
	r = d.cli("run", "-var", "module=hello@0.2.0", "-var", "version=v3", "-var", "healthy=false", job)
	if r.code == 0 || !strings.Contains(r.stderr, "Failed due to unhealthy allocations - rolling back to job version 1") {
		t.Fatalf("a failing version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	answersOnly(t, d.dnsAddr, "v2")
	if v := l.finish("automatic revert", 3); v["v3"] != 0 {
		t.Fatalf("the failing version answered %d requests", v["v3"])
	}
	d.getJSON("/v1/job/roll/versions", &versions)
	if v := versions.Versions[0]; v.Version != 3 || v.Job.Groups[0].Tasks[0].Env["HELLO_VERSION"] != "v2" || !v.Stable {
		t.Fatalf("after the revert the job is version %d (%s, stable %t); want 3 with version 1's spec, stable",
			v.Version, v.Job.Groups[0].Tasks[0].Env["HELLO_VERSION"], v.Stable)
	}

	// Point 5: job revert restores an earlier version (0: v1, hello@0.1.0).
	l = startLoad(t, d.dnsAddr, 2)
	out = d.mustCLI("job", "revert", "roll", "0")
	if !strings.Contains(out, "Deployment completed successfully") {
		t.Fatalf("job revert:\n%s", out)
	}
	answersOnly(t, d.dnsAddr, "v1")
	l.finish("job revert", 3)
	hist := d.mustCLI("job", "history", "-p", "roll")
	if !strings.Contains(hist, `module: "hello@0.2.0" => "hello@0.1.0"`) {
		t.Fatalf("job history -p does not show the revert's diff:\n%s", hist)
	}

	// Point 3: one canary beside the 4, tagged, out of the untagged answer
	// until promoted; promote rolls the rest.
	out = d.mustCLI("run", "-var", "version=v5", "-var", "canary=1", job)
	if !strings.Contains(out, "wait to be promoted") {
		t.Fatalf("canary run:\n%s", out)
	}
	canaries, err := resolveSRV(t, d.dnsAddr, "canary."+rollService)
	if err != nil || len(canaries) != 1 {
		t.Fatalf("canary.%s: %v, %v; want the one canary", rollService, canaries, err)
	}
	if _, body, _ := httpGet("http://" + canaries[0] + "/x"); !strings.Contains(body, "(v5)") {
		t.Fatalf("the canary answers %q", body)
	}
	answersOnly(t, d.dnsAddr, "v1") // the untagged name: the 4 old ones only
	dep := latestDeployment(t, d)
	l = startLoad(t, d.dnsAddr, 2)
	d.mustCLI("deployment", "promote", dep.ID[:8])
	testutil.Eventually(t, 90*time.Second, "the promoted deployment completes", func() error {
		if dep := latestDeployment(t, d); dep.Status != structs.DeploymentSuccessful {
			return fmt.Errorf("deployment %s: %s", dep.Status, dep.StatusDescription)
		}
		return nil
	})
	answersOnly(t, d.dnsAddr, "v5")
	l.finish("canary promotion", 3)

	// auto_promote promotes by itself once the canary is healthy.
	out = d.mustCLI("run", "-var", "version=v6", "-var", "canary=1", "-var", "autopromote=true", job)
	if !strings.Contains(out, "Deployment completed successfully") {
		t.Fatalf("auto_promote run:\n%s", out)
	}
	answersOnly(t, d.dnsAddr, "v6")
	var all []structs.Deployment
	d.getJSON("/v1/job/roll/deployments", &all)
	raw, _ := json.Marshal(all[0].Groups)
	if !all[0].Groups["web"].Promoted {
		t.Fatalf("auto-promoted deployment's groups: %s", raw)
	}
}

// Issue 14, point 4: a deployment in the middle of its rollout when the
// leader is killed (kill -9, three servers) is resumed by the new leader
// and completes, with no allocation lost or duplicated.
func TestDeploymentSurvivesLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server and agent processes")
	}
	buildArtifacts(t)
	procs := startCluster(t, 3)
	leader := waitClusterLeader(t, procs)
	var servers []string
	var pin string
	for _, p := range procs {
		addr, pn := serverAgentAddr(t, p)
		servers, pin = append(servers, addr), pn
	}
	startAgent(t, leader, "edge-1", "127.0.0.1", strings.Join(servers, ","), pin)
	d := &devProc{t: t, httpAddr: leader.httpAddr, out: leader.out}
	waitNodes(t, d, 1)
	d.mustCLI("module", "push", helloWasm, "-name", "hello", "-version", "0.1.0")
	// Slow enough to be caught in the middle: 3s of passing checks per instance.
	job := filepath.Join(t.TempDir(), "roll.hcl")
	src := strings.Replace(deployJobHCL, `min_healthy_time  = "1s"`, `min_healthy_time  = "3s"`, 1)
	if err := os.WriteFile(job, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	d.mustCLI("run", job)
	d.mustCLI("run", "-detach", "-var", "version=v2", job)

	// Mid-rollout: one new instance healthy, the others not yet.
	testutil.Eventually(t, 60*time.Second, "the rollout is half way", func() error {
		dep := latestDeployment(t, d)
		if g := dep.Groups["web"]; dep.JobVersion != 1 || g == nil || g.HealthyAllocs < 1 || g.HealthyAllocs > 2 {
			return fmt.Errorf("deployment v%d %s %+v", dep.JobVersion, dep.Status, dep.Groups["web"])
		}
		return nil
	})
	killed := time.Now()
	leader.kill()
	var rest []*serverProc
	for _, p := range procs {
		if p != leader {
			rest = append(rest, p)
		}
	}
	next := waitClusterLeader(t, rest)
	t.Logf("new leader %s after %s", next.name, time.Since(killed).Round(time.Millisecond))
	d = &devProc{t: t, httpAddr: next.httpAddr, out: next.out}
	testutil.Eventually(t, 90*time.Second, "the new leader completes the deployment", func() error {
		dep := latestDeployment(t, d)
		if dep.JobVersion != 1 || dep.Status != structs.DeploymentSuccessful {
			return fmt.Errorf("deployment v%d %s: %s %+v", dep.JobVersion, dep.Status, dep.StatusDescription, dep.Groups["web"])
		}
		return nil
	})
	t.Logf("deployment completed %s after the leader was killed", time.Since(killed).Round(time.Millisecond))

	// Nothing lost, nothing duplicated: four live instances of version 1,
	// one per index, and four placed by the deployment in all.
	testutil.Eventually(t, 30*time.Second, "the old version stopped", func() error {
		var r structs.JobAllocsResponse
		d.getJSON("/v1/job/roll/allocations", &r)
		byIndex := map[int]int{}
		placed := 0
		for _, a := range r.Allocations {
			if a.JobVersion == 1 {
				placed++
			}
			if a.DesiredStatus == "run" && a.ClientStatus == "running" {
				if a.JobVersion != 1 {
					return fmt.Errorf("%s of version %d still runs", a.Name, a.JobVersion)
				}
				byIndex[a.Index]++
			}
		}
		if placed != 4 {
			t.Fatalf("%d allocations of version 1 were placed; want 4 (none duplicated, none lost)", placed)
		}
		for i := range 4 {
			if byIndex[i] != 1 {
				return fmt.Errorf("index %d runs %d instances (%v)", i, byIndex[i], byIndex)
			}
		}
		return nil
	})
	if g := latestDeployment(t, d).Groups["web"]; g.PlacedAllocs != 4 || g.HealthyAllocs != 4 || g.UnhealthyAllocs != 0 {
		t.Fatalf("deployment counters %+v; want 4 placed and healthy", g)
	}
}
