package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/testutil"
)

// Cluster tests run real `strata server` processes on loopback and kill
// them with SIGKILL: what survives is what was on disk.

type serverProc struct {
	t        *testing.T
	name     string
	dataDir  string
	raftAddr string
	httpAddr string
	args     []string
	mu       sync.Mutex // guards cmd: workers check alive while another kills
	cmd      *exec.Cmd
	out      *testutil.Buffer
	done     chan error
}

func newServerProc(t *testing.T, name string) *serverProc {
	p := &serverProc{
		t: t, name: name, dataDir: t.TempDir(),
		raftAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	p.args = []string{"server", "-data-dir", p.dataDir, "-raft-addr", p.raftAddr, "-http-addr", p.httpAddr,
		"-agent-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-dns-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"-log-level", "warn"}
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *serverProc) start(extra ...string) {
	p.t.Helper()
	p.out = &testutil.Buffer{}
	p.done = make(chan error, 1)
	cmd := exec.Command(strataBin, append(slices.Clone(p.args), extra...)...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	logOnFailure(p.t, p.name, p.out)
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
}

// kill sends SIGKILL: no shutdown code runs.
func (p *serverProc) kill() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Kill()
	<-p.done
}

func (p *serverProc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

var httpc = &http.Client{Timeout: 10 * time.Second}

func getLeader(addr string) string {
	resp, err := httpc.Get("http://" + addr + "/v1/status/leader")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var l string
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&l) != nil {
		return ""
	}
	return l
}

// waitClusterLeader waits until every live server reports the same
// leader and returns the leading process.
func waitClusterLeader(t *testing.T, procs []*serverProc) *serverProc {
	t.Helper()
	var leading *serverProc
	testutil.Eventually(t, 60*time.Second, "every live server agrees on a leader", func() error {
		seen := map[string]string{} // server -> the leader it reports
		for _, p := range procs {
			if p.alive() {
				seen[p.name] = getLeader(p.httpAddr)
			}
		}
		var leader string
		for _, l := range seen {
			if l == "" || (leader != "" && l != leader) {
				return fmt.Errorf("leaders reported: %v", seen)
			}
			leader = l
		}
		for _, p := range procs {
			if p.raftAddr == leader && p.alive() {
				leading = p
				return nil
			}
		}
		return fmt.Errorf("leaders reported: %v; no live server has that address", seen)
	})
	return leading
}

func jobJSON(id string) []byte {
	b, _ := json.Marshal(map[string]any{"Job": map[string]any{
		"ID": id, "Type": "service", "Priority": 50,
		"Groups": []any{map[string]any{"Name": "g", "Count": 1, "Tasks": []any{map[string]any{
			"Name": "t", "Driver": "docker", "Config": map[string]any{"Image": "example/app:1"},
			"Resources": map[string]any{"CPU": 100, "MemoryMB": 64},
			"Restart":   map[string]any{"Attempts": 2, "Interval": "30m", "Delay": "15s", "Mode": "fail"},
		}}}},
	}})
	return b
}

// submit registers a job through one server; nil means acknowledged.
func submit(addr, id string) error {
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/jobs", bytes.NewReader(jobJSON(id)))
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return nil
}

type jobEntry struct {
	ID      string
	Version uint64
}

func listJobs(t *testing.T, addr, mode string) []jobEntry {
	t.Helper()
	resp, err := httpc.Get("http://" + addr + "/v1/jobs?" + mode)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var js []jobEntry
	if err := json.NewDecoder(resp.Body).Decode(&js); err != nil {
		t.Fatal(err)
	}
	return js
}

func startCluster(t *testing.T, n int) []*serverProc {
	t.Helper()
	procs := make([]*serverProc, n)
	for i := range procs {
		procs[i] = newServerProc(t, fmt.Sprintf("s%d", i+1))
	}
	for i, p := range procs {
		var others []string
		for j, o := range procs {
			if j != i {
				others = append(others, o.raftAddr)
			}
		}
		p.start("-bootstrap-expect", fmt.Sprint(n), "-join", strings.Join(others, ","))
	}
	waitClusterLeader(t, procs)
	return procs
}

// Kill -9 the leader while 500 jobs are being submitted: every
// acknowledged job is on the new leader, each registered once, and the
// killed server catches up after a restart.
func TestClusterLeaderKilledDuringSubmissions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	buildArtifacts(t)
	procs := startCluster(t, 3)
	leader := waitClusterLeader(t, procs)

	var mu sync.Mutex
	acked := map[string]bool{}
	var next atomic.Int64
	var submitted atomic.Int64
	killAt := int64(150)
	killed := make(chan struct{})
	var killOnce sync.Once
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > 500 {
					return
				}
				id := fmt.Sprintf("job-%03d", i)
				// Each job is retried on the live servers in turn until
				// acknowledged, for at most 30s (not acknowledged: counted below).
				attempt := 0
				if testutil.Poll(30*time.Second, 50*time.Millisecond, "submit "+id, func() error {
					for range procs {
						p := procs[(int(i)+attempt+w)%len(procs)]
						attempt++
						if p.alive() {
							return submit(p.httpAddr, id)
						}
					}
					return errors.New("no live server")
				}) == nil {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
				if submitted.Add(1) == killAt {
					killOnce.Do(func() { leader.kill(); close(killed) })
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatal("the leader was never killed")
	}
	newLeader := waitClusterLeader(t, procs)
	if newLeader == leader {
		t.Fatal("the killed server is still the leader")
	}
	// The operator's view: three peers, the new leader marked.
	out, err := exec.Command(strataBin, "operator", "raft", "list-peers", "-address", "http://"+newLeader.httpAddr).CombinedOutput()
	if err != nil || strings.Count(string(out), "127.0.0.1:") != 3 || !strings.Contains(string(out), newLeader.raftAddr+"  leader") {
		t.Fatalf("list-peers: %v\n%s", err, out)
	}
	jobs := listJobs(t, newLeader.httpAddr, "consistent")
	seen := map[string]int{}
	for _, j := range jobs {
		seen[j.ID]++
		if j.Version != 0 {
			t.Errorf("job %s has version %d: it was registered more than once", j.ID, j.Version)
		}
	}
	lost := 0
	for id := range acked {
		if seen[id] != 1 {
			lost++
			t.Errorf("acknowledged job %s appears %d times on the new leader", id, seen[id])
		}
	}
	t.Logf("acknowledged %d of 500 submissions; %d jobs on the new leader; %d acknowledged jobs lost", len(acked), len(jobs), lost)
	if len(acked) != 500 {
		t.Errorf("only %d of 500 submissions were acknowledged within 30s each: the cluster did not recover to accept writes", len(acked))
	}

	// The killed server restarts on its data dir and catches up.
	leader.start()
	testutil.Eventually(t, 60*time.Second, "the restarted server catches up", func() error {
		if l := getLeader(leader.httpAddr); l == "" {
			return errors.New("it knows no leader")
		}
		if n := len(listJobs(t, leader.httpAddr, "stale")); n != len(jobs) {
			return fmt.Errorf("it has %d of %d jobs", n, len(jobs))
		}
		return nil
	})
}

// failoverTime kills the leader and measures until a surviving server
// acknowledges a write.
func failoverTime(t *testing.T, procs []*serverProc, probe string) (time.Duration, *serverProc) {
	t.Helper()
	leader := waitClusterLeader(t, procs)
	start := time.Now()
	leader.kill()
	// A fine tick: the time is the measurement.
	i := 0
	err := testutil.Poll(60*time.Second, 5*time.Millisecond, "a write acknowledged after killing the leader", func() error {
		p := procs[i%len(procs)]
		i++
		if !p.alive() {
			return errors.New("asked the killed server")
		}
		return submit(p.httpAddr, probe)
	})
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(start), leader
}

// The time from kill -9 of the leader to a new leader answering writes,
// five times (the figure is logged for the note, not asserted).
func TestClusterFailoverTime(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	buildArtifacts(t)
	procs := startCluster(t, 3)
	var times []time.Duration
	for round := range 5 {
		d, killed := failoverTime(t, procs, fmt.Sprintf("probe-%d", round))
		times = append(times, d)
		killed.start()
		waitClusterLeader(t, procs)
	}
	slices.Sort(times)
	t.Logf("kill -9 leader -> write acknowledged: %v; median %v", times, times[len(times)/2])
}

// Five servers tolerate two down; with three down writes are refused with
// a clear error; when they return, writes succeed again.
func TestClusterQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	buildArtifacts(t)
	procs := startCluster(t, 5)
	leader := waitClusterLeader(t, procs)
	var others []*serverProc
	for _, p := range procs {
		if p != leader {
			others = append(others, p)
		}
	}
	// Two down, the leader among them.
	leader.kill()
	others[0].kill()
	waitClusterLeader(t, procs)
	if err := submitAny(procs, "with-two-down"); err != nil {
		t.Fatalf("write with 2 of 5 down: %v", err)
	}
	// A follower learns that an entry is committed from the leader's next
	// message: wait until both survivors-to-be have applied it.
	testutil.Eventually(t, 30*time.Second, "the acknowledged write reaches every live server", func() error {
		for _, p := range others[2:] {
			if ids := jobIDs(listJobs(t, p.httpAddr, "stale")); !slices.Contains(ids, "with-two-down") {
				return fmt.Errorf("%s has %v", p.name, ids)
			}
		}
		return nil
	})
	// Three down: no quorum.
	others[1].kill()
	testutil.Eventually(t, 30*time.Second, "the survivors know they have no leader", func() error {
		for _, p := range others[2:] {
			if l := getLeader(p.httpAddr); l != "" {
				return fmt.Errorf("%s reports leader %s", p.name, l)
			}
		}
		return nil
	})
	err := submit(others[2].httpAddr, "with-three-down")
	if err == nil {
		t.Fatal("a write was acknowledged with 3 of 5 servers down")
	}
	if !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("refusal %q does not say there is no quorum", err)
	}
	// Reads: refused by default without a leader, served with ?stale.
	resp, err := httpc.Get("http://" + others[2].httpAddr + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "?stale") {
		t.Fatalf("default read without a leader = %d %s; want 503 suggesting ?stale", resp.StatusCode, body)
	}
	if ids := jobIDs(listJobs(t, others[2].httpAddr, "stale")); !slices.Contains(ids, "with-two-down") {
		t.Fatalf("stale read without a leader = %v; want the committed job", ids)
	}
	// They return: the cluster recovers.
	leader.start()
	others[0].start()
	others[1].start()
	waitClusterLeader(t, procs)
	if err := submitAny(procs, "after-recovery"); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	ids := jobIDs(listJobs(t, waitClusterLeader(t, procs).httpAddr, "consistent"))
	if !slices.Contains(ids, "with-two-down") || !slices.Contains(ids, "after-recovery") || slices.Contains(ids, "with-three-down") {
		t.Fatalf("jobs after recovery = %v", ids)
	}
}

// submitAny registers a job through any live server, retrying for a few
// seconds: a follower that has just learnt of a new leader may still
// refuse to forward.
func submitAny(procs []*serverProc, id string) error {
	return testutil.Poll(10*time.Second, 200*time.Millisecond, "submit "+id+" through a live server", func() error {
		var errs []error
		for _, p := range procs {
			if p.alive() {
				err := submit(p.httpAddr, id)
				if err == nil {
					return nil
				}
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
			}
		}
		return errors.Join(errs...)
	})
}

func jobIDs(js []jobEntry) []string {
	var ids []string
	for _, j := range js {
		ids = append(ids, j.ID)
	}
	return ids
}
