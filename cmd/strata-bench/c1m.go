package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// C1MConfig is Nomad's C1M shape: Jobs jobs of Count allocations each on
// Nodes simulated nodes.
type C1MConfig struct {
	Nodes, Jobs, Count int
	Submitters         int    // concurrent API clients
	Workers            int    // scheduler workers (0: the coordinator's default)
	DataDir            string // "" = a temporary directory, removed after
	Out                io.Writer
}

// simNodes returns n nodes big enough for the C1M job shape.
func simNodes(n int) []sched.Node {
	nodes := make([]sched.Node, n)
	for i := range nodes {
		nodes[i] = sched.Node{
			ID: fmt.Sprintf("node-%05d", i), Name: fmt.Sprintf("sim-%05d", i), Datacenter: "dc1",
			Address: "127.0.0.1", Drivers: map[string]bool{"docker": true, "wasm": true},
			Capacity: sched.Resources{CPU: 16000, MemoryMB: 32768},
			Status:   sched.NodeReady, Eligible: true,
		}
	}
	return nodes
}

// c1mJob is one C1M job: count copies of a small container task.
func c1mJob(i, count int) *spec.Job {
	return &spec.Job{ID: fmt.Sprintf("c1m-%04d", i), Type: "service", Priority: 50, Groups: []*spec.Group{{
		Name: "g", Count: count, Tasks: []*spec.Task{{
			Name: "t", Driver: "docker", Config: spec.TaskConfig{Image: "redis:7"},
			Resources: spec.Resources{CPU: 20, MemoryMB: 32},
			Restart:   &spec.RestartPolicy{Attempts: 2, Interval: spec.Duration(30 * time.Minute), Delay: spec.Duration(15 * time.Second), Mode: "fail"},
		}},
	}}}
}

// C1M registers simulated nodes in a real coordinator (Raft and bbolt on
// disk), submits the jobs through the HTTP API, and measures until every
// allocation is committed.
func C1M(ctx context.Context, cfg C1MConfig) error {
	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "strata-c1m-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	srv, err := coordinator.New(coordinator.Config{DataDir: dir, Bootstrap: true, DevMode: true, Workers: cfg.Workers,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	for deadline := time.Now().Add(30 * time.Second); srv.Leader() == ""; {
		if time.Now().After(deadline) {
			return fmt.Errorf("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	defer hs.Close()

	nodes := simNodes(cfg.Nodes)
	t0 := time.Now()
	if err := srv.RegisterNodes(ctx, nodes); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "registered %d simulated nodes in %s\n", len(nodes), time.Since(t0).Round(time.Millisecond))
	// Keep them alive (their TTL grows with their number).
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				for _, n := range nodes {
					srv.Heartbeat(hbCtx, n.ID)
				}
			}
		}
	}()

	want := cfg.Jobs * cfg.Count
	start := time.Now()
	if err := submitJobs(ctx, "http://"+ln.Addr().String(), cfg); err != nil {
		return err
	}
	submitted := time.Since(start)
	// Every allocation committed: poll the count (bounded).
	deadline := time.Now().Add(30 * time.Minute)
	var got int
	for {
		got = srv.Store().LiveAllocs()
		if got >= want {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d allocations committed", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	// Outside the timed window: every job has exactly Count allocations,
	// one per index, and every node holds no more than its capacity.
	if err := verifyC1M(srv.Store(), cfg); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "nodes=%d jobs=%d count=%d\n", cfg.Nodes, cfg.Jobs, cfg.Count)
	fmt.Fprintf(cfg.Out, "jobs submitted through the API in %s; %d allocations committed in %s\n", submitted.Round(time.Millisecond), got, elapsed.Round(time.Millisecond))
	fmt.Fprintf(cfg.Out, "peak_rss_mb=%d\n", peakRSSMB())
	fmt.Fprintf(cfg.Out, "placements_per_sec=%.0f\n", float64(got)/elapsed.Seconds())
	return nil
}

func verifyC1M(st *state.Store, cfg C1MConfig) error {
	for i := range cfg.Jobs {
		id := c1mJob(i, cfg.Count).ID
		allocs, err := st.JobAllocs(id)
		if err != nil {
			return err
		}
		seen := map[int]bool{}
		for _, a := range allocs {
			if a.DesiredStatus != sched.DesiredRun {
				continue
			}
			if seen[a.Index] {
				return fmt.Errorf("verify: job %s has index %d twice", id, a.Index)
			}
			seen[a.Index] = true
		}
		if len(seen) != cfg.Count {
			return fmt.Errorf("verify: job %s has %d allocations, want %d", id, len(seen), cfg.Count)
		}
	}
	for _, ns := range st.NodeStates() {
		if ns.Used.CPU > ns.Node.Capacity.CPU || ns.Used.MemoryMB > ns.Node.Capacity.MemoryMB {
			return fmt.Errorf("verify: node %s overcommitted: %+v of %+v", ns.Node.Name, ns.Used, ns.Node.Capacity)
		}
	}
	fmt.Fprintf(cfg.Out, "verified: %d jobs with exactly %d allocations each, one per index; no node overcommitted\n", cfg.Jobs, cfg.Count)
	return nil
}

func submitJobs(ctx context.Context, addr string, cfg C1MConfig) error {
	n := cfg.Submitters
	if n <= 0 {
		n = 8
	}
	jobs := make(chan int)
	errc := make(chan error, n)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 2 * time.Minute}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				body, _ := json.Marshal(structs.JobRegisterRequest{Job: c1mJob(i, cfg.Count)})
				req, _ := http.NewRequestWithContext(ctx, http.MethodPut, addr+"/v1/jobs", bytes.NewReader(body))
				resp, err := client.Do(req)
				if err != nil {
					errc <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errc <- fmt.Errorf("register job %d: %d %s", i, resp.StatusCode, b)
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range cfg.Jobs {
		select {
		case jobs <- i:
		case err = <-errc:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

// peakRSSMB is VmHWM from /proc/self/status.
func peakRSSMB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	return -1
}

// PlaceConfig measures the pure scheduler: one job of Allocs copies
// (in jobs of at most 1000 copies) on Nodes nodes.
type PlaceConfig struct {
	Nodes, Allocs int
	Out           io.Writer
}

// Place runs sched.Schedule alone, feeding each plan's placements back
// into the node states as the coordinator would.
func Place(cfg PlaceConfig) error {
	sims := simNodes(cfg.Nodes)
	states := make([]*sched.NodeState, len(sims))
	for i := range sims {
		states[i] = &sched.NodeState{Node: &sims[i], UsedPorts: map[int]bool{}}
	}
	byID := map[string]*sched.NodeState{}
	for _, ns := range states {
		byID[ns.Node.ID] = ns
	}
	placed := 0
	var spent time.Duration
	for j := 0; placed < cfg.Allocs; j++ {
		count := min(1000, cfg.Allocs-placed)
		req := &sched.Request{EvalID: fmt.Sprintf("eval-%d", j), Job: c1mJob(j, count), Nodes: states}
		t0 := time.Now()
		plan, err := sched.Schedule(req)
		spent += time.Since(t0)
		if err != nil {
			return err
		}
		if len(plan.Place) != count {
			return fmt.Errorf("job %d: placed %d of %d: %v", j, len(plan.Place), count, plan.Failed)
		}
		for _, a := range plan.Place {
			ns := byID[a.NodeID]
			ns.Used = ns.Used.Add(a.Resources)
		}
		placed += count
	}
	fmt.Fprintf(cfg.Out, "nodes=%d allocs=%d scheduler time %s\n", cfg.Nodes, placed, spent.Round(time.Millisecond))
	fmt.Fprintf(cfg.Out, "placements_per_sec=%.0f\n", float64(placed)/spent.Seconds())
	return nil
}
