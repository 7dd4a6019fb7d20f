//go:build faults

package main

// The fault suite (`make faults`, called by `make test`): three real
// `strata server` processes and an agent, 20 leader kills (kill -9, then
// a restart on the same data dir) and 10 partitions (iptables in a
// private network namespace: the leader alone in the minority, or a
// follower alone), under a workload of concurrent job registrations and
// reads through API clients that know the three servers. The history is
// checked for linearizability with porcupine, a register per job: a
// write registers the job with meta v = n, a read returns the v it sees
// (0: no such job). It prints what it did and measured.
//
// It needs root: `make faults` runs the test binary under `unshare -n`
// and sets STRATA_FAULTS_NETNS=1, so the iptables rules and the fixed
// addresses (127.0.0.11–13) are the namespace's own.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/spec"
)

const (
	faultKills      = 20
	faultPartitions = 10
	faultKeys       = 5 // jobs, one writer each
	faultReaders    = 6
)

var faultIPs = []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}

// faultCluster is the three servers, each on its own loopback IP with the
// default ports, so a partition is a pair of iptables rules per pair of
// servers (servers dial each other from their Raft IP).
type faultCluster struct {
	t     *testing.T
	procs []*serverProc
}

func startFaultCluster(t *testing.T) *faultCluster {
	c := &faultCluster{t: t}
	for i, ip := range faultIPs {
		p := &serverProc{t: t, name: fmt.Sprintf("s%d", i+1), dataDir: t.TempDir(), raftAddr: ip + ":4701", httpAddr: ip + ":4700"}
		p.args = []string{"server", "-data-dir", p.dataDir, "-bind", ip, "-log-level", "warn"}
		t.Cleanup(p.kill)
		c.procs = append(c.procs, p)
	}
	for i, p := range c.procs {
		var others []string
		for j, o := range c.procs {
			if j != i {
				others = append(others, o.raftAddr)
			}
		}
		p.start("-bootstrap-expect", "3", "-join", strings.Join(others, ","))
	}
	waitClusterLeader(t, c.procs)
	return c
}

// addresses is STRATA_ADDR for the three servers, starting at server
// first (so clients spread over them).
func (c *faultCluster) addresses(first int) string {
	var out []string
	for i := range c.procs {
		out = append(out, "http://"+c.procs[(first+i)%len(c.procs)].httpAddr)
	}
	return strings.Join(out, ",")
}

func (c *faultCluster) client(first int) *api.Client {
	cl, err := api.New(api.Config{Address: c.addresses(first)})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// leader is the process every live server names as leader.
func (c *faultCluster) leader() *serverProc { return waitClusterLeader(c.t, c.procs) }

// isolate drops every packet between server i and the other two, both
// ways; heal removes the rules.
func (c *faultCluster) isolate(i int) {
	for j, ip := range faultIPs {
		if j == i {
			continue
		}
		for _, pair := range [][2]string{{faultIPs[i], ip}, {ip, faultIPs[i]}} {
			iptables(c.t, "-A", "INPUT", "-s", pair[0], "-d", pair[1], "-j", "DROP")
		}
	}
}

func (c *faultCluster) heal() { iptables(c.t, "-F", "INPUT") }

func iptables(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		t.Fatalf("iptables %v: %v\n%s", args, err, out)
	}
}

func (c *faultCluster) index(p *serverProc) int { return slices.Index(c.procs, p) }

// faultJobHCL is a job with meta v; count 0, so registering it is a Raft
// write and an evaluation and places nothing.
const faultJobHCL = `job %q {
  meta { v = "%d" }
  group "g" {
    count = 0
    task "t" {
      driver = "docker"
      config { image = "example/app:1" }
    }
  }
}
`

func faultJobSource(id string, v int) string { return fmt.Sprintf(faultJobHCL, id, v) }

// faultJob is faultJobSource parsed as the CLI parses a file.
func faultJob(id string, v int) *spec.Job {
	j, err := spec.Parse(id+".hcl", []byte(faultJobSource(id, v)))
	if err != nil {
		panic(fmt.Sprintf("the suite's own job does not parse: %v", err))
	}
	return j
}

// regInput is one operation of the register model.
type regInput struct {
	key   int
	write bool
	v     int
}

var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(regInput).key
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return 0 },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.write {
			return true, in.v
		}
		return output.(int) == state.(int), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("job-%d := %d", in.key, in.v)
		}
		return fmt.Sprintf("job-%d -> %v", in.key, output)
	},
}

// history records operations with monotonic timestamps.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(client int, in regInput, call int64, out any, ret int64) {
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// workload is the writers and readers, running until stop.
type workload struct {
	h                    *history
	writeErrs, readErrs  atomic.Int64
	writes, reads        atomic.Int64
	killPhase            atomic.Bool
	killPhaseWriteErrors atomic.Int64
	acked                sync.Map // job ID -> true once a write was acknowledged
}

func (w *workload) run(ctx context.Context, c *faultCluster, wg *sync.WaitGroup) {
	for k := range faultKeys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.client(k)
			id := fmt.Sprintf("job-%d", k)
			tick := time.NewTicker(20 * time.Millisecond) // pace: 2 cores shared
			defer tick.Stop()
			for v := 1; ctx.Err() == nil; v++ {
				call := w.h.now()
				octx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cl.RegisterJob(octx, faultJob(id, v))
				cancel()
				ret := w.h.now()
				w.writes.Add(1)
				if err != nil {
					// Unknown outcome: it may take effect at any time after
					// its call.
					ret = math.MaxInt64
					w.writeErrs.Add(1)
					if w.killPhase.Load() {
						w.killPhaseWriteErrors.Add(1)
					}
					c.t.Logf("write %s := %d after %s: %v", id, v, time.Duration(w.h.now()-call), err)
				} else {
					w.acked.Store(id, true)
				}
				w.h.add(k, regInput{key: k, write: true, v: v}, call, 0, ret)
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		}()
	}
	for r := range faultReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.client(r) // each reader starts at its own server
			tick := time.NewTicker(15 * time.Millisecond)
			defer tick.Stop()
			for i := r; ctx.Err() == nil; i++ {
				k := i % faultKeys
				call := w.h.now()
				octx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				rec, err := cl.Job(octx, fmt.Sprintf("job-%d", k))
				cancel()
				ret := w.h.now()
				var se *api.StatusError
				v := 0
				switch {
				case err == nil:
					v, err = strconv.Atoi(rec.Job.Meta["v"])
				case errors.As(err, &se) && se.Status == http.StatusNotFound:
					err = nil // not registered yet: v = 0
				}
				w.reads.Add(1)
				if err != nil {
					w.readErrs.Add(1) // a read without an answer constrains nothing
				} else {
					w.h.add(faultKeys+r, regInput{key: k}, call, v, ret)
				}
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		}()
	}
}

// failover kills the leader with SIGKILL and returns the time until a
// surviving server acknowledges a write.
func (c *faultCluster) failover(probe string) (time.Duration, *serverProc) {
	leader := c.leader()
	start := time.Now()
	leader.kill()
	c.waitWrite(c.others(leader), probe, start)
	return time.Since(start), leader
}

// others lists the HTTP addresses of every server but p.
func (c *faultCluster) others(p *serverProc) []string {
	var out []string
	for _, o := range c.procs {
		if o != p {
			out = append(out, o.httpAddr)
		}
	}
	return out
}

// waitWrite writes through each of addrs at once, each polling with fine
// ticks (the time is the measurement), until one write is acknowledged.
func (c *faultCluster) waitWrite(addrs []string, probe string, since time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{}, len(addrs))
	for i, addr := range addrs {
		cl, err := api.New(api.Config{Address: "http://" + addr, RetryFor: -1})
		if err != nil {
			c.t.Fatal(err)
		}
		go func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for n := 1; ; n++ {
				if _, err := cl.RegisterJob(ctx, faultJob(fmt.Sprintf("%s-%d", probe, i), n)); err == nil {
					done <- struct{}{}
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
		c.t.Fatalf("no write acknowledged through %v within 60s of the fault (%s)", addrs, time.Since(since))
	}
}

// restartedReads restarts p on its data dir and reads the job list from
// it at once: a default read must hold every job acknowledged before
// the restart, or be refused; ?stale may be behind. It returns how many
// of the acknowledged jobs the first ?stale read missed.
func (c *faultCluster) restartedReads(p *serverProc, w *workload) (staleMissed int) {
	var acked []string
	w.acked.Range(func(k, _ any) bool { acked = append(acked, k.(string)); return true })
	p.start()
	has := func(query string) (int, map[string]bool, error) {
		resp, err := httpc.Get("http://" + p.httpAddr + "/v1/jobs" + query)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		seen := map[string]bool{}
		if resp.StatusCode == http.StatusOK {
			var js []jobEntry
			if err := json.NewDecoder(resp.Body).Decode(&js); err != nil {
				return 0, nil, err
			}
			for _, j := range js {
				seen[j.ID] = true
			}
		}
		return resp.StatusCode, seen, nil
	}
	staleDone := false
	testutil.Eventually(c.t, 60*time.Second, "a default read on the restarted server", func() error {
		if !staleDone {
			if code, seen, err := has("?stale"); err == nil && code == http.StatusOK {
				staleDone = true
				for _, id := range acked {
					if !seen[id] {
						staleMissed++
					}
				}
			}
		}
		code, seen, err := has("")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		for _, id := range acked {
			if !seen[id] {
				c.t.Fatalf("a default read on %s just after its restart misses the acknowledged job %s", p.name, id)
			}
		}
		return nil
	})
	return staleMissed
}

// cliLoop runs `strata run -detach` with STRATA_ADDR naming the three
// servers until stop, a new version each time, and counts its failures.
// cliLoop runs `strata run -detach` until stop closes, counting runs and
// failures; ran gets a value after each run (dropped when full).
func cliLoop(t *testing.T, c *faultCluster, stop <-chan struct{}, runs, failures *atomic.Int64, ran chan<- struct{}, wg *sync.WaitGroup) {
	dir := t.TempDir()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			file := filepath.Join(dir, "cli.hcl")
			if err := os.WriteFile(file, []byte(faultJobSource("cli-loop", v)), 0o644); err != nil {
				t.Error(err)
				return
			}
			cmd := exec.Command(strataBin, "run", "-detach", file)
			cmd.Env = append(os.Environ(), "STRATA_ADDR="+c.addresses(0))
			out, err := cmd.CombinedOutput()
			runs.Add(1)
			select {
			case ran <- struct{}{}:
			default:
			}
			if err != nil {
				failures.Add(1)
				t.Errorf("`strata run -detach` (version %d) during leader kills: %v\n%s", v, err, out)
			}
		}
	}()
}

func durations(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return "none"
	}
	return fmt.Sprintf("median %s, max %s (n=%d)", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
}

func TestFaults(t *testing.T) {
	if os.Getenv("STRATA_FAULTS_NETNS") != "1" {
		t.Skip("run by `make faults`: it partitions servers with iptables inside a private network namespace (unshare -n, as root)")
	}
	buildArtifacts(t)
	c := startFaultCluster(t)

	// An agent, connected to the three servers through every fault.
	leader := c.leader()
	_, pin := serverAgentAddr(t, leader)
	// The leader first: the join token was just written there, and a
	// follower checks a join against its own state (which may not have
	// applied the token yet).
	var agentServers []string
	for _, p := range append([]*serverProc{leader}, c.procs...) {
		a := strings.Replace(p.raftAddr, ":4701", ":4702", 1)
		if !slices.Contains(agentServers, a) {
			agentServers = append(agentServers, a)
		}
	}
	startAgent(t, leader, "edge-1", "127.0.0.1", strings.Join(agentServers, ","), pin)
	agentReady := func() error {
		ns, err := c.client(0).Nodes(context.Background())
		if err != nil {
			return err
		}
		if len(ns) != 1 || ns[0].Status != "ready" {
			return fmt.Errorf("nodes: %+v", ns)
		}
		return nil
	}
	testutil.Eventually(t, 30*time.Second, "the agent's node is ready", agentReady)

	w := &workload{h: &history{start: time.Now()}}
	ctx, stopWork := context.WithCancel(context.Background())
	var work sync.WaitGroup
	w.run(ctx, c, &work)
	defer func() { stopWork(); work.Wait() }()

	// Leader kills; the CLI loop writes through the first three.
	var failovers []time.Duration
	staleMissed := 0
	var cliRuns, cliFailures atomic.Int64
	cliStop := make(chan struct{})
	var cliWG sync.WaitGroup
	cliRan := make(chan struct{}, 64)
	cliLoop(t, c, cliStop, &cliRuns, &cliFailures, cliRan, &cliWG)
	// The first three kills land between CLI runs whatever the machine's
	// speed: two runs before each, one after the third.
	awaitCLI := func(n int) {
		for range n {
			select {
			case <-cliRan:
			case <-time.After(time.Minute):
				t.Fatalf("the CLI loop made no progress for a minute (%d runs)", cliRuns.Load())
			}
		}
	}
	w.killPhase.Store(true)
	for i := range faultKills {
		if i < 3 {
			awaitCLI(2)
		}
		d, killed := c.failover(fmt.Sprintf("probe-kill-%d", i))
		failovers = append(failovers, d)
		if i == 2 {
			awaitCLI(1)
			close(cliStop)
			cliWG.Wait()
		}
		t0 := time.Now()
		staleMissed += c.restartedReads(killed, w)
		t1 := time.Now()
		c.leader() // all three agree again before the next kill
		t.Logf("kill %d: failover %s, restarted reads %s, agreement %s, writes %d", i, d, t1.Sub(t0), time.Since(t1), w.writes.Load())
		<-time.After(700 * time.Millisecond) // the workload runs on a whole cluster between faults
	}
	w.killPhase.Store(false)

	// Partitions: the leader alone (it must step down; the other two
	// elect a leader and take writes), then a follower alone (the leader
	// keeps a majority and keeps writing).
	var stepDowns, partitionFailovers []time.Duration
	minority, majority := 0, 0
	for i := range faultPartitions {
		leader := c.leader()
		li := c.index(leader)
		if i%2 == 0 {
			minority++
			start := time.Now()
			c.isolate(li)
			testutil.Eventually(t, 10*time.Second, "the isolated leader steps down", func() error {
				if l := getLeader(leader.httpAddr); l == leader.raftAddr {
					return errors.New("it still names itself leader")
				}
				return nil
			})
			stepDowns = append(stepDowns, time.Since(start))
			c.waitWrite(c.others(leader), fmt.Sprintf("probe-partition-%d", i), start)
			partitionFailovers = append(partitionFailovers, time.Since(start))
		} else {
			majority++
			c.isolate((li + 1) % len(c.procs))
			c.waitWrite([]string{leader.httpAddr}, fmt.Sprintf("probe-partition-%d", i), time.Now())
		}
		<-time.After(1500 * time.Millisecond) // the fault lasts while the workload runs
		c.heal()
		c.leader()
	}
	stopWork()
	work.Wait()

	ops := w.h.ops
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, 2*time.Minute)
	t.Logf("faults: %d operations (%d writes, %d reads answered) on %d jobs; %d write errors (%d during the leader kills), %d reads refused or failed",
		len(ops), w.writes.Load(), len(ops)-int(w.writes.Load()), faultKeys, w.writeErrs.Load(), w.killPhaseWriteErrors.Load(), w.readErrs.Load())
	t.Logf("faults: %d leader kills (kill -9, restart): failover to an acknowledged write %s", faultKills, durations(failovers))
	t.Logf("faults: %d partitions: %d with the leader alone in the minority (stepped down %s; the majority took a write %s), %d with a follower alone",
		faultPartitions, minority, durations(stepDowns), durations(partitionFailovers), majority)
	t.Logf("faults: restarted servers: default reads missed 0 acknowledged jobs; the first ?stale read missed %d in all", staleMissed)
	t.Logf("faults: `strata run -detach` with STRATA_ADDR naming 3 servers through 3 leader kills: %d runs, %d errors", cliRuns.Load(), cliFailures.Load())
	t.Logf("faults: porcupine: %s", res)
	if res != porcupine.Ok {
		f := filepath.Join(os.TempDir(), "strata-faults-history.html")
		if err := porcupine.VisualizePath(registerModel, info, f); err == nil {
			t.Logf("faults: the history is drawn in %s", f)
		}
		for _, line := range explainRegister(ops, 10) {
			t.Log("faults: " + line)
		}
		t.Errorf("porcupine: the history is %s, want Ok", res)
	}
	if n := w.killPhaseWriteErrors.Load(); n != 0 {
		t.Errorf("%d writes failed during the leader kills: a leader change must be invisible to a client that knows the three servers", n)
	}
	if cliRuns.Load() < 5 {
		t.Errorf("the CLI loop ran %d times through 3 leader kills, want at least 5", cliRuns.Load())
	}
	// The agent rode through it all: its node is ready.
	testutil.Eventually(t, 30*time.Second, "the agent's node is ready after the faults", agentReady)
}

// The register model refuses what the suite must catch: a read that
// returns an older value after a newer one was acknowledged (a stale
// follower), and accepts a read concurrent with the write.
func TestRegisterModel(t *testing.T) {
	op := func(client int, in regInput, call int64, out any, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	w1 := op(0, regInput{key: 1, write: true, v: 1}, 0, 0, 10)
	w2 := op(0, regInput{key: 1, write: true, v: 2}, 11, 0, 20)
	stale := op(1, regInput{key: 1}, 21, 1, 30)      // after w2 returned, sees 1
	concurrent := op(1, regInput{key: 1}, 15, 1, 30) // overlaps w2: 1 is fine
	other := op(2, regInput{key: 2}, 21, 0, 30)      // another job, never written
	if res := porcupine.CheckOperationsTimeout(registerModel, []porcupine.Operation{w1, w2, stale, other}, time.Minute); res != porcupine.Illegal {
		t.Errorf("a stale read after an acknowledged write: %s, want Illegal", res)
	}
	if res := porcupine.CheckOperationsTimeout(registerModel, []porcupine.Operation{w1, w2, concurrent, other}, time.Minute); res != porcupine.Ok {
		t.Errorf("a read concurrent with the write: %s, want Ok", res)
	}
}

// explainRegister names up to limit reads that break the register's rules
// in the simplest ways (one writer per job): a value older than a write
// acknowledged before the read began, one newer than any write begun
// before it ended, or older than what a read that ended before it saw.
func explainRegister(ops []porcupine.Operation, limit int) []string {
	var out []string
	for _, r := range ops {
		in := r.Input.(regInput)
		if in.write || len(out) >= limit {
			continue
		}
		got := r.Output.(int)
		acked, begun := 0, 0
		for _, o := range ops {
			oi := o.Input.(regInput)
			if oi.key != in.key {
				continue
			}
			switch {
			case oi.write && o.Return < r.Call:
				acked = max(acked, oi.v)
			case !oi.write && o.Return < r.Call && o.Output.(int) > got:
				out = append(out, fmt.Sprintf("job-%d: reader %d saw %d in [%d,%d] after reader %d saw %d in [%d,%d]",
					in.key, r.ClientId, got, r.Call, r.Return, o.ClientId, o.Output, o.Call, o.Return))
			}
			if oi.write && o.Call < r.Return {
				begun = max(begun, oi.v)
			}
		}
		if got < acked {
			out = append(out, fmt.Sprintf("job-%d: reader %d saw %d in [%d,%d]; %d was acknowledged before", in.key, r.ClientId, got, r.Call, r.Return, acked))
		}
		if got > begun {
			out = append(out, fmt.Sprintf("job-%d: reader %d saw %d in [%d,%d]; only %d had been sent", in.key, r.ClientId, got, r.Call, r.Return, begun))
		}
	}
	return out
}
