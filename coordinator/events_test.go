package coordinator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/sched"
)

// streamLine is one decoded line of the event stream.
type streamLine struct {
	Index  uint64        `json:"Index"`
	Events []state.Event `json:"Events"`
	Error  string        `json:"Error"`
}

// subscription reads an event stream's lines on its own goroutine, ended
// by stop (or the server closing the stream).
type subscription struct {
	lines chan streamLine
	stop  context.CancelFunc
	done  chan struct{}
}

// subscribe opens the stream at url+query with secret; it fails the test
// unless the server answers 200.
func subscribe(t *testing.T, url, query, secret string) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/event/stream?"+query, nil)
	if secret != "" {
		req.Header.Set("X-Strata-Token", secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		resp.Body.Close()
		t.Fatalf("event stream %s: %d", query, resp.StatusCode)
	}
	s := &subscription{lines: make(chan streamLine, 1024), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var l streamLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l.Error = fmt.Sprintf("undecodable line %q: %v", sc.Text(), err)
			}
			if l.Index == 0 && l.Error == "" {
				continue // a heartbeat
			}
			select {
			case s.lines <- l:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { s.stop(); <-s.done })
	return s
}

// until reads lines until one holds an event for which cond is true, and
// returns the lines read (bounded by a generous deadline: a process
// boundary, the HTTP connection, is crossed).
func (s *subscription) until(t *testing.T, what string, cond func(e state.Event) bool) []streamLine {
	t.Helper()
	var out []streamLine
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("the stream ended before %s", what)
			}
			if l.Error != "" {
				t.Fatalf("the stream ended with an error before %s: %s", what, l.Error)
			}
			out = append(out, l)
			for _, e := range l.Events {
				if cond(e) {
					return out
				}
			}
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func flatten(lines []streamLine) []state.Event {
	var out []state.Event
	for _, l := range lines {
		out = append(out, l.Events...)
	}
	return out
}

func describe(e state.Event) string {
	s := fmt.Sprintf("%d %s %s %s", e.Index, e.Topic, e.Type, e.Key)
	if a := e.Payload.Allocation; a != nil {
		s += " " + a.ClientStatus
	}
	if d := e.Payload.Deployment; d != nil {
		s += " " + d.Status
	}
	return s
}

// Must-show 3: the stream delivers a job's registration, its allocations'
// state changes and its deployment in order, and a subscriber that
// reconnects with the last index it saw gets what followed, without a gap
// or a duplicate (checked against a subscriber that never disconnected).
func TestEventStreamDeliversAJobInOrderAndResumes(t *testing.T) {
	s := startTestServer(t)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	agents := healthyAgents(t, s, 1)
	setHealth(agents, func(wire.Alloc) string { return wire.Healthy })

	witness := subscribe(t, ts.URL, "topic=Job&topic=Allocation&topic=Deployment", "")
	first := subscribe(t, ts.URL, "topic=Job&topic=Allocation&topic=Deployment", "")
	r := register(t, s, rollingDockerJob("app:1", 2, 1, 0))

	// The first subscriber leaves as soon as an allocation runs.
	seen := first.until(t, "an allocation running", func(e state.Event) bool {
		return e.Payload.Allocation != nil && e.Payload.Allocation.ClientStatus == sched.ClientRunning
	})
	first.stop()
	last := seen[len(seen)-1].Index

	// It comes back with the last index it saw; the deployment finishes
	// meanwhile, and the job is stopped.
	resumed := subscribe(t, ts.URL, fmt.Sprintf("topic=Job&topic=Allocation&topic=Deployment&index=%d", last), "")
	waitDeployment(t, s, 0, 2, 1, structs.DeploymentSuccessful)
	stop, _ := http.NewRequest("DELETE", ts.URL+"/v1/job/web", nil)
	if resp, err := http.DefaultClient.Do(stop); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stop: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	isStop := func(e state.Event) bool { return e.Type == "JobDeregistered" && e.Key == "web" }
	all := flatten(witness.until(t, "the job's stop (witness)", isStop))
	after := flatten(resumed.until(t, "the job's stop (resumed)", isStop))

	// In order: registered, then its deployment, then placements, each
	// allocation pending before running, then the deployment's success.
	var order []string
	pos := map[string]int{}
	status := map[string]string{}
	prev := uint64(0)
	for i, e := range all {
		if e.Index < prev {
			t.Fatalf("event %d goes back in index: %s after %d", i, describe(e), prev)
		}
		prev = e.Index
		order = append(order, describe(e))
		mark := func(k string) {
			if _, ok := pos[k]; !ok {
				pos[k] = i
			}
		}
		switch {
		case e.Type == "JobRegistered":
			mark("registered")
		case e.Topic == state.TopicDeployment && e.Key == r.DeploymentID && e.Payload.Deployment.Status == structs.DeploymentRunning:
			mark("deployment running")
		case e.Topic == state.TopicDeployment && e.Key == r.DeploymentID && e.Payload.Deployment.Status == structs.DeploymentSuccessful:
			mark("deployment successful")
		case e.Type == "PlanResult" && e.Payload.Allocation.ClientStatus == sched.ClientPending:
			mark("placed")
			status[e.Key] = sched.ClientPending
		case e.Topic == state.TopicAllocation && e.Payload.Allocation.ClientStatus == sched.ClientRunning:
			if status[e.Key] == "" {
				t.Fatalf("allocation %s running before it was placed:\n%s", e.Key, strings.Join(order, "\n"))
			}
			status[e.Key] = sched.ClientRunning
			mark("running")
		case e.Type == "JobDeregistered":
			mark("stopped")
		}
	}
	want := []string{"registered", "deployment running", "placed", "running", "deployment successful", "stopped"}
	for i, k := range want {
		p, ok := pos[k]
		if !ok {
			t.Fatalf("no %q event in:\n%s", k, strings.Join(order, "\n"))
		}
		if i > 0 && p < pos[want[i-1]] {
			t.Fatalf("%q (event %d) before %q (event %d):\n%s", k, p, want[i-1], pos[want[i-1]], strings.Join(order, "\n"))
		}
	}
	if len(status) != 2 {
		t.Fatalf("%d allocations placed, want 2:\n%s", len(status), strings.Join(order, "\n"))
	}

	// The first subscription and its resumption are the witness's events,
	// each exactly once.
	var joined []string
	for _, e := range append(flatten(seen), after...) {
		joined = append(joined, describe(e))
	}
	if strings.Join(joined, "\n") != strings.Join(order, "\n") {
		t.Fatalf("seen then resumed:\n%s\n\nthe witness:\n%s", strings.Join(joined, "\n"), strings.Join(order, "\n"))
	}
}

// A token sees the topics its policies let it read: node read alone sees
// nodes, not jobs; namespace read alone jobs, not nodes; a resume from
// before what the server keeps is refused, naming why; a bad topic too.
func TestEventStreamFiltersByACLAndRefusesGaps(t *testing.T) {
	f := startACLServer(t)
	for name, rules := range map[string]string{"nodes": `node { policy = "read" }`, "jobs": `namespace "default" { policy = "read" }`} {
		if code, body := f.call(t, f.management.SecretID, "PUT", "/v1/acl/policy/"+name, structs.ACLPolicy{Rules: rules}, nil); code != 200 {
			t.Fatalf("policy %s: %d %s", name, code, body)
		}
	}
	nodeTok, jobTok := new(structs.ACLToken), new(structs.ACLToken)
	for tok, policy := range map[*structs.ACLToken]string{nodeTok: "nodes", jobTok: "jobs"} {
		if code, body := f.call(t, f.management.SecretID, "PUT", "/v1/acl/token", structs.ACLTokenRequest{Name: policy, Policies: []string{policy}}, tok); code != 200 {
			t.Fatalf("token %s: %d %s", policy, code, body)
		}
	}
	if code, _ := f.call(t, "", "GET", "/v1/event/stream", nil, nil); code != http.StatusForbidden {
		t.Fatalf("anonymous subscription: %d, want 403", code)
	}
	nodes := subscribe(t, f.url, "", nodeTok.SecretID)
	jobs := subscribe(t, f.url, "", jobTok.SecretID)
	connectFakeAgent(t, f.s, "n1", "127.0.0.1")
	register(t, f.s, dockerJob("web", nil))
	// Each sees its own topic; a second register and node event after
	// them show the other topic never came before.
	got := flatten(nodes.until(t, "the node's registration", func(e state.Event) bool { return e.Topic == state.TopicNode }))
	gotJobs := flatten(jobs.until(t, "the job's registration", func(e state.Event) bool { return e.Topic == state.TopicJob }))
	connectFakeAgent(t, f.s, "n2", "127.0.0.1")
	register(t, f.s, dockerJob("other", nil))
	got = append(got, flatten(nodes.until(t, "n2", func(e state.Event) bool { return e.Key == "n2" }))...)
	gotJobs = append(gotJobs, flatten(jobs.until(t, "other", func(e state.Event) bool { return e.Key == "other" }))...)
	for _, e := range got {
		if e.Topic != state.TopicNode {
			t.Fatalf("a node-read token saw %s", describe(e))
		}
	}
	for _, e := range gotJobs {
		if e.Topic == state.TopicNode {
			t.Fatalf("a namespace-read token saw %s", describe(e))
		}
	}

	code, body := f.call(t, jobTok.SecretID, "GET", "/v1/event/stream?topic=Jobs", nil, nil)
	if code != http.StatusBadRequest || !strings.Contains(body, `topic "Jobs": not a topic`) {
		t.Fatalf("bad topic: %d %s", code, body)
	}
	// The server started at some index: what came before is not here.
	f.s.http.events.buf.reset(f.s.store.Index())
	code, body = f.call(t, jobTok.SecretID, "GET", "/v1/event/stream?index=1", nil, nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "no longer kept on this server") {
		t.Fatalf("resume from before the buffer: %d %s", code, body)
	}
}

// The buffer keeps its latest events, drops the oldest whole indexes past
// its bound, and a reader behind what it keeps gets a gap error.
func TestEventBufferDropsOldestAndReportsGaps(t *testing.T) {
	b := newEventBuffer(3, 10)
	ev := func(i uint64, keys ...string) []state.Event {
		var out []state.Event
		for _, k := range keys {
			out = append(out, state.Event{Topic: state.TopicJob, Key: k, Index: i})
		}
		return out
	}
	b.publish(12, append(ev(11, "a", "b"), ev(12, "c")...))
	got, to, _, err := b.after(10, 100)
	if err != nil || len(got) != 2 || got[0].Index != 11 || len(got[0].Events) != 2 || to != 12 {
		t.Fatalf("after 10: %+v to %d, %v", got, to, err)
	}
	b.publish(13, ev(13, "d")) // 4 events: index 11's two go
	if _, _, _, err := b.after(10, 100); !errors.As(err, new(*errEventGap)) {
		t.Fatalf("after 10 once index 11 was dropped: %v", err)
	}
	got, to, _, err = b.after(11, 100)
	if err != nil || len(got) != 2 || got[0].Index != 12 || to != 13 {
		t.Fatalf("after 11: %+v to %d, %v", got, to, err)
	}
	got, to, _, _ = b.after(11, 1) // a limited read goes as far as it read
	if len(got) != 1 || to != 12 {
		t.Fatalf("after 11, one entry: %+v to %d", got, to)
	}
	_, _, wake, _ := b.after(13, 100)
	b.publish(14, nil) // an index with no events still moves the position
	select {
	case <-wake:
	default:
		t.Fatal("a publish did not wake the reader")
	}
	if got, to, _, _ := b.after(13, 100); len(got) != 0 || to != 14 {
		t.Fatalf("after 13: %+v to %d", got, to)
	}
}
