package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/structs"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/edge"
	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/testwasm"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// A server and an agent in this process, a command task that prints
// numbered lines and fails: `alloc logs` prints them, `alloc logs -f`
// prints what the restarted task prints later and stops the agent's
// stream when it is interrupted, `alloc status` shows the task's events.
func TestAllocLogsAndStatusEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server, an agent and a wasm module")
	}
	module, err := testwasm.Build("", "./testdata/printer")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The server's and agent's logs, shown if the test fails.
	var logs testutil.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server and agent logs:\n%s", logs.String())
		}
	})
	srv, err := coordinator.New(coordinator.Config{DataDir: filepath.Join(dir, "server"), Bootstrap: true, DevMode: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	// Every change to the server's state is a commit the store announces:
	// the test waits on those, not on a clock.
	commits := srv.Store().Watch
	testutil.Await(t, time.Minute, "a leader with the cluster CA", commits, func() error {
		if srv.Leader() == "" || srv.CAPin() == "" {
			return fmt.Errorf("leader %q, CA pin %q", srv.Leader(), srv.CAPin())
		}
		return nil
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	tok, err := srv.CreateJoinToken(structs.JoinTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The printer counts its runs in a file of a host volume the agent declares.
	data := t.TempDir()
	agent, err := edge.New(context.Background(), edge.Config{Servers: []string{srv.AgentAddr()}, CAPin: srv.CAPin(), JoinToken: tok.Secret,
		DataDir: filepath.Join(dir, "agent"), NodeName: "edge-1", Logger: logger,
		HostVolumes: map[string]edge.HostVolume{"printer-data": {Path: data}}})
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(agentCtx) }()
	var stopOnce sync.Once
	stopAgentAndWait := func() {
		stopOnce.Do(func() {
			stopAgent()
			select {
			case <-agentDone:
			case <-time.After(time.Minute):
				t.Error("agent did not stop within a minute")
			}
		})
	}
	t.Cleanup(stopAgentAndWait)
	select {
	case <-agent.Registered():
	case <-time.After(time.Minute):
		t.Fatal("agent did not register within a minute")
	}

	ctx := context.Background()
	c := api.NewClient(hs.URL)
	if _, err := c.PushModule(ctx, "printer", "0.1.0", module); err != nil {
		t.Fatal(err)
	}
	job := &spec.Job{ID: "printer", Groups: []*spec.Group{{Name: "g", Count: 1,
		Volumes: []*spec.Volume{{Name: "data", Type: spec.VolumeTypeHost, Source: "printer-data"}}, Tasks: []*spec.Task{{
			Name: "print", Driver: "wasm", VolumeMounts: []*spec.VolumeMount{{Volume: "data", Destination: "/data"}},
			Config:    spec.TaskConfig{Module: "printer@0.1.0", Mode: spec.ModeCommand},
			Restart:   &spec.RestartPolicy{Attempts: 1, Interval: spec.Duration(time.Hour), Delay: spec.Duration(3 * time.Second), Mode: "fail"},
			Resources: spec.Resources{CPU: 100, MemoryMB: 64},
		}}}}}
	if _, err := c.RegisterJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"STRATA_ADDR": hs.URL}
	var alloc *structs.Alloc
	// hasEvent: the allocation's task has an event of type typ; the error
	// says what it has instead.
	hasEvent := func(typ string) func() error {
		return func() error {
			r, _, err := c.JobAllocs(ctx, "printer", 0, 0)
			if err != nil {
				return err
			}
			if len(r.Allocations) == 0 {
				return errors.New("no allocation")
			}
			alloc = r.Allocations[0]
			if ts := alloc.TaskStates["print"]; ts != nil {
				for _, e := range ts.Events {
					if e.Type == typ {
						return nil
					}
				}
			}
			return fmt.Errorf("allocation %s: %s %q, tasks %s", alloc.ID, alloc.ClientStatus, alloc.ClientDescription, mustJSON(t, alloc.TaskStates))
		}
	}
	testutil.Await(t, 5*time.Minute, "the first attempt ends and is restarted", commits, hasEvent("Restarting"))
	prefix := alloc.ID[len(alloc.ID)-6:] // the random end: time-ordered IDs share their start

	// `strata status JOB` lists the allocation by its short ID.
	if code, out, stderr := runMain(t, env, "status", "printer"); code != 0 || !strings.Contains(out, shortAlloc(alloc.ID)) {
		t.Fatalf("status printer: exit %d\n%s%s", code, out, stderr)
	}

	// The first attempt's output.
	code, out, stderr := runMain(t, env, "alloc", "logs", prefix)
	if code != 0 || out != "attempt 1 line 1\nattempt 1 line 2\n" {
		t.Fatalf("alloc logs: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if code, out, _ := runMain(t, env, "alloc", "logs", "-tail", "1", prefix, "print"); code != 0 || out != "attempt 1 line 2\n" {
		t.Fatalf("alloc logs -tail 1: exit %d, %q", code, out)
	}
	if code, out, _ := runMain(t, env, "alloc", "logs", "-stderr", prefix); code != 0 || !strings.HasPrefix(out, "printer: attempt 1 failing\npanic: attempt 1 failed") {
		t.Fatalf("alloc logs -stderr: exit %d, %q", code, out)
	}

	// -f: the restarted task's lines arrive on the open stream.
	fctx, stopFollow := context.WithCancel(ctx)
	var fout, ferr testutil.Buffer
	followed := make(chan int, 1)
	go func() {
		followed <- Main(fctx, &Env{Stdout: &fout, Stderr: &ferr, Getenv: func(k string) string { return env[k] }}, []string{"alloc", "logs", "-f", prefix})
	}()
	testutil.Await(t, 2*time.Minute, "alloc logs -f prints the restarted attempt's line", fout.Changed, func() error {
		if got := fout.String(); !strings.Contains(got, "attempt 2 line 2\n") {
			return fmt.Errorf("printed %q", got)
		}
		return nil
	})
	if got := fout.String(); !strings.HasPrefix(got, "attempt 1 line 1\nattempt 1 line 2\nattempt 2 line 1\n") {
		t.Fatalf("alloc logs -f printed %q", got)
	}
	if agent.ActiveLogStreams() != 1 {
		t.Fatalf("agent serves %d log streams during -f, want 1", agent.ActiveLogStreams())
	}
	stopFollow()
	select {
	case code := <-followed:
		if code != 0 {
			t.Fatalf("interrupted alloc logs -f: exit %d, %s", code, ferr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("alloc logs -f did not return after its context ended")
	}
	// The cancellation reaches the agent over its QUIC link, and the agent
	// announces nothing when a stream ends (edge is outside the test's
	// reach): this count is asked for again, through the one bounded poll.
	testutil.Eventually(t, 30*time.Second, "the agent stops streaming once the client went away", func() error {
		if n := agent.ActiveLogStreams(); n != 0 {
			return fmt.Errorf("%d log streams", n)
		}
		return nil
	})

	// The events, newest first, through the CLI.
	testutil.Await(t, time.Minute, "the policy gives up", commits, hasEvent("Not Restarting"))
	code, out, stderr = runMain(t, env, "alloc", "status", prefix)
	if code != 0 {
		t.Fatalf("alloc status: exit %d, %s", code, stderr)
	}
	for _, want := range []string{"ID                  = " + alloc.ID, "Client Status       = failed", `Task "print" is "dead"`,
		"Restarts    = 1", "Failed      = true", "Recent Events:", "Received", "Started", "Terminated", "Exit Code: 2, stderr: panic: attempt 2 failed",
		"Restarting", "Task restarting in", "Not Restarting", `Exceeded allowed attempts 1 in interval 1h0m0s and mode is "fail"`} {
		if !strings.Contains(out, want) {
			t.Errorf("alloc status lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "Not Restarting"), strings.Index(out, "Received"); i > j {
		t.Errorf("events not newest first:\n%s", out)
	}

	// Mistakes get clear errors.
	if code, _, stderr := runMain(t, env, "alloc", "status", "zzzz"); code != 1 || !strings.Contains(stderr, `no allocation with ID or ID prefix "zzzz"`) {
		t.Errorf("unknown prefix: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runMain(t, env, "alloc", "logs", prefix, "nosuch"); code != 1 || !strings.Contains(stderr, `has no task "nosuch" (its tasks: print)`) {
		t.Errorf("unknown task: exit %d, %q", code, stderr)
	}

	// An agent gone from every server: a clear error, not a hang.
	stopAgentAndWait()
	code, _, stderr = runMain(t, env, "alloc", "logs", prefix)
	if code != 1 || !strings.Contains(stderr, "node edge-1") || !strings.Contains(stderr, "not connected to any server") {
		t.Fatalf("logs of a disconnected node: exit %d, %q", code, stderr)
	}
}

// The layout of `alloc status`, against a fake API, and prefix errors.
func TestAllocStatusOutput(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	at := func(s int) int64 { return t0 + int64(s)*int64(time.Second) }
	one, two := 1, 0
	allocs := []*structs.Alloc{{
		Allocation: sched.Allocation{ID: "3f2a9c1e-1111-4222-8333-444455556666", Name: "printer.g[0]", JobID: "printer", Group: "g",
			NodeID: "9e8d7c6b-0000-4000-8000-000000000000", NodeName: "edge-1", DesiredStatus: "run", ClientStatus: "failed",
			ClientDescription: "print: module exited with code 1; not restarting: 1 attempts in 1h0m0s exhausted"},
		TaskStates: map[string]*structs.TaskState{
			"print": {State: "dead", Failed: true, Restarts: 1, StartedAt: at(5), FinishedAt: at(6), Events: []structs.TaskEvent{
				{Type: "Received", Time: at(0), Message: "Task received by the agent"},
				{Type: "Started", Time: at(1), Message: "Task started by the agent"},
				{Type: "Terminated", Time: at(2), Message: "Exit Code: 1, stderr: printer: attempt 1 failing", ExitCode: &one},
				{Type: "Restarting", Time: at(2), Message: "Task restarting in 3.412s", RestartDelayMillis: 3412},
				{Type: "Started", Time: at(5), Message: "Task started by the agent"},
				{Type: "Terminated", Time: at(6), Message: "Exit Code: 1, stderr: printer: attempt 2 failing", ExitCode: &one},
				{Type: "Not Restarting", Time: at(6), Message: `Exceeded allowed attempts 1 in interval 1h0m0s and mode is "fail"`, FailsTask: true},
			}},
			"sidecar": {State: "dead", StartedAt: at(1), FinishedAt: at(2), Events: []structs.TaskEvent{
				{Type: "Received", Time: at(0), Message: "Task received by the agent"},
				{Type: "Terminated", Time: at(2), Message: "Exit Code: 0, after 1s", ExitCode: &two},
			}},
		},
	}, {
		Allocation: sched.Allocation{ID: "3f2b0000-1111-4222-8333-444455556666", Name: "printer.g[1]", NodeName: "edge-2", ClientStatus: "running"},
	}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/allocations" {
			http.NotFound(w, r)
			return
		}
		var out []*structs.Alloc
		for _, a := range allocs {
			if strings.HasPrefix(a.ID, r.URL.Query().Get("prefix")) {
				out = append(out, a)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, mustJSON(t, out))
	}))
	defer hs.Close()
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), &Env{Stdout: &out, Stderr: &errb, Location: time.UTC,
			Getenv: func(k string) string { return map[string]string{"STRATA_ADDR": hs.URL}[k] }}, args)
		return code, out.String(), errb.String()
	}

	code, out, stderr := run("alloc", "status", "3f2a")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden := filepath.Join("testdata", "alloc_status.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if out != string(want) {
		t.Fatalf("alloc status output differs from %s (-update rewrites it):\n%s", golden, out)
	}

	code, _, stderr = run("alloc", "status", "3f2")
	if code != 1 || !strings.Contains(stderr, `ID prefix "3f2" matches 2 allocations`) || !strings.Contains(stderr, "3f2b0000-1111-4222-8333-444455556666") {
		t.Fatalf("ambiguous prefix: exit %d, %q", code, stderr)
	}
	code, _, stderr = run("alloc", "status", "ffff")
	if code != 1 || !strings.Contains(stderr, `no allocation with ID or ID prefix "ffff"`) {
		t.Fatalf("unknown prefix: exit %d, %q", code, stderr)
	}
	if code, _, stderr := run("alloc", "status"); code != 2 || !strings.Contains(stderr, "usage: strata alloc status ALLOC") {
		t.Fatalf("no argument: exit %d, %q", code, stderr)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
