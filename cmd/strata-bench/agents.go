package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/structs"

	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// AgentsConfig configures `strata-bench agents`.
type AgentsConfig struct {
	Strata string        // the strata binary, run as `strata server`
	Agents int           // simulated agents
	Steady time.Duration // how long steady heartbeating is measured
	Tiny   string        // examples/tiny/tiny.wasm: the job's module
	// ModuleMB > 0 adds a custom section of this many MiB to the module;
	// every agent then downloads it and checks its sha256 before it
	// reports the allocation running (issue 7 point 5 at scale).
	ModuleMB int
	Out      io.Writer
}

// Agents runs one `strata server` process and Agents simulated agents in
// this process, each on its own QUIC connection over loopback (fleet).
// It measures the time until all are registered; the server's CPU and
// RSS (from /proc/<pid>) over Steady seconds of heartbeating; then the
// time from submitting one job with an allocation on every node until
// every agent has received its allocation (push_all_ms), [has the module
// verified,] and the server has every status back.
func Agents(ctx context.Context, cfg AgentsConfig) error {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	tiny, err := os.ReadFile(cfg.Tiny)
	if err != nil {
		return fmt.Errorf("the job's module: %w", err)
	}
	dir, err := os.MkdirTemp("", "strata-bench-agents-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := startServerProcess(ctx, cfg.Strata, dir)
	if err != nil {
		return err
	}
	defer srv.stop()
	out := &report{w: cfg.Out}
	fmt.Fprintf(cfg.Out, "server pid %d, agents %s, HTTP %s; %d simulated agents in this process, %s\n",
		srv.pid, srv.link.AgentAddr, srv.httpAddr, cfg.Agents, loadavg())
	client := api.NewClient("http://" + srv.httpAddr)

	t0 := time.Now()
	f, err := startFleet(ctx, srv.link, cfg.Agents, "sim", cfg.ModuleMB > 0)
	if err != nil {
		return err
	}
	defer f.stop()
	registered := time.Since(t0)
	lo, hi, rate := f.heartbeatIntervals()
	fmt.Fprintf(cfg.Out, "%d agents registered in %s, %s\n", cfg.Agents, registered.Round(time.Millisecond), loadavg())
	fmt.Fprintf(cfg.Out, "heartbeat intervals given at registration %s to %s (the TTL grows with the cluster as each registers): %.0f heartbeats/s expected\n",
		lo, hi, rate)
	out.set("agents", "%d", cfg.Agents)
	out.set("register_all_ms", "%d", registered.Milliseconds())

	// Steady heartbeating. The first interval after registration is
	// skipped: it still holds the registrations' Raft writes.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(hi):
	}
	before, err := readProc(srv.pid)
	if err != nil {
		return err
	}
	hb0, err := client.HeartbeatStats(ctx)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(cfg.Steady):
	}
	after, err := readProc(srv.pid)
	if err != nil {
		return err
	}
	hb1, err := client.HeartbeatStats(ctx)
	if err != nil {
		return err
	}
	cpu := after.cpuPercent(before)
	fmt.Fprintf(cfg.Out, "steady heartbeating over %s: server CPU %.1f%% of one core, RSS %d MiB (peak %d MiB), %.0f heartbeats/s, %s\n",
		after.at.Sub(before.at).Round(time.Second), cpu, after.rssKB>>10, after.hwmKB>>10,
		float64(hb1.Beats-hb0.Beats)/after.at.Sub(before.at).Seconds(), loadavg())
	out.set("server_cpu_pct", "%.1f", cpu)
	out.set("server_rss_mb", "%d", after.rssKB>>10)

	module := tiny
	if cfg.ModuleMB > 0 {
		module = withCustomSection(tiny, "strata-bench-padding", make([]byte, cfg.ModuleMB<<20))
	}
	mid, err := readProc(srv.pid)
	if err != nil {
		return err
	}
	selfMid, err := readProc(os.Getpid())
	if err != nil {
		return err
	}
	r, err := allocateEverywhere(ctx, client, f, "everywhere", module, cfg.Agents)
	if err != nil {
		return err
	}
	end, err := readProc(srv.pid)
	if err != nil {
		return err
	}
	selfEnd, err := readProc(os.Getpid())
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "one job, one allocation per node (count=%d, distinct_hosts): the first agent received its allocation %s after submit, every agent %s after; the server had every status %s after, %s\n",
		cfg.Agents, r.pushFirst.Round(time.Millisecond), r.pushAll.Round(time.Millisecond), r.statusAll.Round(time.Millisecond), loadavg())
	if cfg.ModuleMB > 0 {
		fmt.Fprintf(cfg.Out, "module of %d MiB verified by every agent %s after submit (%.0f MiB/s served)\n",
			cfg.ModuleMB, r.modulesAll.Round(time.Millisecond), float64(r.moduleBytes)/(1<<20)/r.modulesAll.Seconds())
		out.set("module_all_ms", "%d", r.modulesAll.Milliseconds())
	}
	fmt.Fprintf(cfg.Out, "from module push to every status back (%s): server CPU %.1f%% of one core, this process (the agents) %.1f%%\n",
		end.at.Sub(mid.at).Round(time.Millisecond), end.cpuPercent(mid), selfEnd.cpuPercent(selfMid))
	hb, err := client.HeartbeatStats(ctx)
	if err != nil {
		return err
	}
	if err := checkHeartbeats(hb, client, ctx, cfg.Agents); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "heartbeats: %d, nodes marked down %d, least margin before a deadline %s (TTL %s + grace %s); server peak RSS %d MiB\n",
		hb.Beats, hb.NodesDown, time.Duration(hb.MinMarginMillis)*time.Millisecond,
		time.Duration(hb.TTLMillis)*time.Millisecond, time.Duration(hb.GraceMillis)*time.Millisecond, end.hwmKB>>10)
	out.set("server_peak_rss_mb", "%d", end.hwmKB>>10)
	out.set("nodes_down", "%d", hb.NodesDown)
	out.set("push_first_ms", "%d", r.pushFirst.Milliseconds())
	out.set("status_all_ms", "%d", r.statusAll.Milliseconds())
	out.set("push_all_ms", "%d", r.pushAll.Milliseconds())
	if w := srv.warnings(); w != "" {
		fmt.Fprintf(cfg.Out, "server stderr (warnings):\n%s", w)
	}
	out.flush()
	return nil
}

// rollout is what allocateEverywhere measured, from the job's submission.
type rollout struct {
	pushFirst   time.Duration // the first agent received its allocation
	pushAll     time.Duration // every agent received its allocation
	modulesAll  time.Duration // every agent verified the module (fleets that fetch)
	moduleBytes int64
	statusAll   time.Duration // the server has every allocation running
}

// allocateEverywhere pushes module as a new module version, then submits
// one job with an allocation on each of the fleet's n nodes (count = n
// with distinct_hosts: the scheduler has no system jobs) and waits for
// the agents to receive them and the server to have every status back.
func allocateEverywhere(ctx context.Context, c *api.Client, f *fleet, jobID string, module []byte, n int) (rollout, error) {
	var r rollout
	name := "bench-" + jobID
	if _, err := c.PushModule(ctx, name, "1.0.0", module); err != nil {
		return r, fmt.Errorf("push module: %w", err)
	}
	job := &spec.Job{ID: jobID, Type: "service", Priority: 50,
		Constraints: []*spec.Constraint{{Operator: "distinct_hosts", Value: "true"}},
		Groups: []*spec.Group{{Name: "g", Count: n, Tasks: []*spec.Task{{
			Name: "t", Driver: "wasm", Config: spec.TaskConfig{Module: name + "@1.0.0", Mode: spec.ModeCommand},
			Resources: spec.Resources{CPU: 10, MemoryMB: 16},
		}}}}}
	start := time.Now()
	if _, err := c.RegisterJob(ctx, job); err != nil {
		return r, fmt.Errorf("register job: %w", err)
	}
	const timeout = 10 * time.Minute
	err := f.waitFor(ctx, "every agent received its allocation", timeout, func() bool {
		return f.received[jobID] >= n || len(f.failures) > 0
	})
	if err == nil {
		err = f.failed()
	}
	if err != nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		return r, fmt.Errorf("%d of %d agents received an allocation: %w", f.received[jobID], n, err)
	}
	f.mu.Lock()
	r.pushAll = f.lastRecv[jobID].Sub(start)
	r.pushFirst = f.firstRecv[jobID].Sub(start)
	f.mu.Unlock()
	if f.fetchModules {
		err := f.waitFor(ctx, "every agent verified the module", timeout, func() bool {
			return f.verified >= n || len(f.failures) > 0
		})
		if err == nil {
			err = f.failed()
		}
		if err != nil {
			return r, err
		}
		f.mu.Lock()
		r.modulesAll, r.moduleBytes = f.lastDone.Sub(start), f.modBytes
		f.mu.Unlock()
		if r.moduleBytes != int64(n)*int64(len(module)) {
			return r, fmt.Errorf("agents verified %d bytes, want %d × %d", r.moduleBytes, n, len(module))
		}
	}
	// The server's view: poll with blocking queries, at most every 100ms.
	var index uint64
	deadline := time.Now().Add(timeout)
	for {
		resp, idx, err := c.JobAllocs(ctx, jobID, index, 10*time.Second)
		if err != nil {
			return r, err
		}
		running := 0
		for _, a := range resp.Allocations {
			if a.ClientStatus == sched.ClientRunning {
				running++
			}
		}
		if running >= n {
			r.statusAll = time.Since(start)
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("the server has %d of %d allocations running after %s", running, n, timeout)
		}
		index = idx
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// heartbeatIntervals returns the shortest and longest interval the
// agents were given, and the heartbeat rate they add up to.
func (f *fleet) heartbeatIntervals() (lo, hi time.Duration, perSec float64) {
	for i, a := range f.agents {
		if i == 0 || a.every < lo {
			lo = a.every
		}
		hi = max(hi, a.every)
		if a.every > 0 {
			perSec += float64(time.Second) / float64(a.every)
		}
	}
	return lo, hi, perSec
}

func (f *fleet) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failures) > 0 {
		return fmt.Errorf("%d agent failures, first: %w", len(f.failures), f.failures[0])
	}
	return nil
}

// checkHeartbeats fails if the server marked any node down or holds one
// that is not ready.
func checkHeartbeats(hb *structs.HeartbeatStats, c *api.Client, ctx context.Context, n int) error {
	if hb.NodesDown > 0 {
		return fmt.Errorf("the server marked %d nodes down for missed heartbeats", hb.NodesDown)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return err
	}
	ready := 0
	for _, nd := range nodes {
		if nd.Status == sched.NodeReady {
			ready++
		}
	}
	if ready != n {
		return fmt.Errorf("%d of %d nodes ready", ready, n)
	}
	return nil
}

// serverProcess is a `strata server` child process.
type serverProcess struct {
	cmd      *exec.Cmd
	pid      int
	httpAddr string
	link     SimLink
	stderr   string // path of its stderr
	done     chan error
}

// startServerProcess runs `strata server` on loopback ports of its
// choosing, with its data in dir, and reads its addresses and CA pin
// from what it prints.
func startServerProcess(ctx context.Context, strata, dir string) (*serverProcess, error) {
	errPath := filepath.Join(dir, "server.stderr")
	errFile, err := os.Create(errPath)
	if err != nil {
		return nil, err
	}
	defer errFile.Close()
	cmd := exec.Command(strata, "server", "-data-dir", filepath.Join(dir, "server"),
		"-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0", "-agent-addr", "127.0.0.1:0",
		"-dns-addr", "127.0.0.1:0", "-log-level", "warn")
	cmd.Stderr = errFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", strata, err)
	}
	p := &serverProcess{cmd: cmd, pid: cmd.Process.Pid, stderr: errPath, done: make(chan error, 1)}
	lines := make(chan string, 64) // startup prints a few lines; later ones are dropped
	go func() {
		// Owned by the child: ends when its stdout closes (it exits).
		defer close(lines)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			select {
			case lines <- s.Text():
			default: // nobody listens after startup
			}
		}
		p.done <- cmd.Wait()
	}()
	timeout := time.After(60 * time.Second)
	for p.httpAddr == "" || p.link.CAPin == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				return nil, fmt.Errorf("strata server exited during startup: %s", p.warnings())
			}
			f := strings.Fields(line)
			switch {
			case len(f) >= 3 && f[0] == "HTTP" && f[1] == "API:":
				p.httpAddr = strings.TrimPrefix(f[2], "http://")
			case len(f) >= 6 && f[0] == "Agents:" && f[4] == "pin":
				p.link = SimLink{AgentAddr: f[1], CAPin: f[5]}
			}
		case <-timeout:
			p.stop()
			return nil, errors.New("strata server did not print its addresses within 60s")
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		}
	}
	tok, err := api.NewClient(p.httpAddr).CreateJoinToken(ctx, structs.JoinTokenRequest{Reusable: true, Description: "strata-bench simulated agents"})
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("creating the simulated agents' join token: %w", err)
	}
	p.link.JoinToken = tok.Secret
	return p, nil
}

// stop interrupts the server and waits for it (killing it after 30s).
func (p *serverProcess) stop() {
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// warnings is the server's stderr, at most 20 lines.
func (p *serverProcess) warnings() string {
	b, _ := os.ReadFile(p.stderr)
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > 20 {
		lines = append(lines[:20], fmt.Sprintf("... %d more lines\n", len(lines)-20))
	}
	return strings.Join(lines, "")
}

// procSample is a process's CPU time and memory at one moment.
type procSample struct {
	at           time.Time
	cpuTicks     int64 // utime + stime, in clock ticks
	rssKB, hwmKB int64
}

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.cpuTicks = utime + stime
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			s.rssKB = v
		case "VmHWM:":
			s.hwmKB = v
		}
	}
	return s, nil
}

// cpuPercent is the CPU used between before and s, in percent of one core.
func (s procSample) cpuPercent(before procSample) float64 {
	wall := s.at.Sub(before.at).Seconds()
	if wall <= 0 {
		return 0
	}
	return float64(s.cpuTicks-before.cpuTicks) / clockTicks / wall * 100
}
