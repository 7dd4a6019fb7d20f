package coordinator

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// A log read on a server the agent is not connected to is forwarded to
// the one it is; closing the reader resets the agent's stream there.
func TestAllocLogsForwardedToTheAgentsServer(t *testing.T) {
	servers := startInProcessCluster(t, 2)
	held, asked := servers[0], servers[1]
	events := clusterEvents(t, held, asked)
	waitFor(t, events, "the cluster CA on both servers", 30*time.Second, func() bool { return held.CAPin() != "" && asked.CAPin() != "" })

	// A fake agent on held: it answers one log read with a line, then
	// waits for the server to reset the stream.
	conn := dialAgent(t, held)
	ctrl, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wire.Write(ctrl, wire.TypeRegister, wire.Register{Versions: wire.Versions(), NodeID: "n1", Name: "edge-1", Address: "127.0.0.1"})
	if typ, _, err := wire.Read(ctrl); err != nil || typ != wire.TypeRegistered {
		t.Fatalf("register: %v %v", typ, err)
	}
	gotReq := make(chan wire.LogRequest, 1)
	reset := make(chan error, 1)
	go func() {
		st, err := conn.AcceptStream(context.Background())
		if err != nil {
			reset <- err
			return
		}
		typ, payload, err := wire.Read(st)
		var req wire.LogRequest
		if err == nil && typ == wire.TypeLogRequest {
			wire.Decode(typ, payload, &req)
		}
		gotReq <- req
		wire.Write(st, wire.TypeLogHeader, wire.LogHeader{})
		st.Write([]byte("hello from edge-1\n"))
		_, err = io.Copy(io.Discard, st) // until the server ends its side
		reset <- err
	}()

	// A job of one task and its allocation on n1, through Raft.
	job := &spec.Job{ID: "web", Type: "service", Groups: []*spec.Group{{Name: "g", Count: 0, Tasks: []*spec.Task{{Name: "t", Driver: "wasm"}}}}}
	res, _, err := held.node.apply(&state.JobRegister{Job: job, EvalID: newEvalID()})
	if err != nil {
		t.Fatal(err)
	}
	alloc := &sched.Allocation{ID: "a1b2c3", JobID: "web", JobVersion: res.(*state.JobRegisterResult).Version, Group: "g",
		NodeID: "n1", NodeName: "edge-1", DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientRunning}
	if _, _, err := held.node.apply(&state.PlanApply{Place: []*sched.Allocation{alloc}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, "the allocation replicated", 30*time.Second, func() bool {
		a, _ := asked.store.Alloc("a1b2c3")
		return a != nil
	})

	rc, err := asked.AllocLogs(context.Background(), structs.LogRequest{AllocID: "a1b2c3", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if req := <-gotReq; req.Task != "t" || req.Type != "stdout" || !req.Follow {
		t.Fatalf("the agent was asked %+v; want task t (the only one), stdout, follow", req)
	}
	line := make([]byte, len("hello from edge-1\n"))
	if _, err := io.ReadFull(rc, line); err != nil || string(line) != "hello from edge-1\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	rc.Close()
	select {
	case err := <-reset:
		if err == nil {
			t.Log("stream ended cleanly")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent's stream was not ended after the reader closed")
	}

	// Unknown task, unknown allocation, a node no server holds.
	if _, err := asked.AllocLogs(context.Background(), structs.LogRequest{AllocID: "a1b2c3", Task: "x"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown task: %v", err)
	}
	if _, err := asked.AllocLogs(context.Background(), structs.LogRequest{AllocID: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown allocation: %v", err)
	}
	conn.CloseWithError(0, "")
	dropped := time.NewTimer(30 * time.Second)
	defer dropped.Stop()
	for {
		changed := held.agents.connsChanged() // before the check: a drop from here on closes it
		if held.agents.conn("n1") == nil {
			break
		}
		select {
		case <-changed:
		case <-dropped.C:
			t.Fatal("the server kept the closed connection")
		}
	}
	_, err = asked.AllocLogs(context.Background(), structs.LogRequest{AllocID: "a1b2c3"})
	if !errors.Is(err, ErrNodeUnavailable) || !strings.Contains(err.Error(), "node edge-1 (n1) is not connected to any server") {
		t.Fatalf("disconnected node: %v", err)
	}
}
