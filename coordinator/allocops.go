package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/sched"
)

// ErrAllocNotRunning: an allocation that is stopped or finished cannot be
// stopped again.
var ErrAllocNotRunning = errors.New("allocation not running")

// allocOps are the operator's actions on one allocation (Nomad's alloc
// stop, restart, signal and stats). A stop is a write through Raft (the
// allocation stops with the evaluation that replaces it); the others are
// requests to the agent that runs it, on a new QUIC stream of its
// connection (agentCalls), or through the server it is connected to
// (server RPC "agent-call"), as log reads are routed.
type allocOps struct {
	store  *state.Store
	apply  applyFunc
	agents agentCalls
	rpc    *rpcClient
	others func() ([]string, error) // the other servers' Raft addresses
}

// agentCalls sends one request to a node's agent connected to this
// server (agentEndpoint).
type agentCalls interface {
	connected(nodeID string) bool
	// call returns errNodeNotConnected when the node's agent is not (or
	// no longer) connected here.
	call(ctx context.Context, nodeID string, req agentRequest, answer any) error
}

// agentRequest is one request frame to an agent and the frame type that
// answers it.
type agentRequest struct {
	Type    wire.Type       `json:"Type"`
	Payload json.RawMessage `json:"Payload"`
	Answer  wire.Type       `json:"Answer"`
}

func newAgentRequest(t wire.Type, v any, answer wire.Type) (agentRequest, error) {
	b, err := json.Marshal(v)
	return agentRequest{Type: t, Payload: b, Answer: answer}, err
}

// agentCallTimeout bounds one request to an agent (a container's stats
// take a second; a stop signal's delivery less).
const agentCallTimeout = 30 * time.Second

// stop stops an allocation and commits the evaluation that places its
// replacement (the scheduler sees a stopped allocation as a missing
// copy), as one write.
func (o *allocOps) stop(id string) (*structs.AllocStopResponse, error) {
	al, err := o.alloc(id)
	if err != nil {
		return nil, err
	}
	if al.Terminal() {
		return nil, fmt.Errorf("%w: allocation %s is already %s", ErrAllocNotRunning, short8(al.ID), terminalWord(al))
	}
	e := &structs.Eval{ID: newEvalID(), JobID: al.JobID, TriggeredBy: "alloc-stop", Status: structs.EvalPending}
	_, idx, err := o.apply(&state.PlanApply{Stop: []state.AllocStop{{ID: al.ID, Desc: "alloc stopped by an operator"}}, Eval: e})
	if err != nil {
		return nil, err
	}
	return &structs.AllocStopResponse{EvalID: e.ID, Index: idx}, nil
}

func terminalWord(a *structs.Alloc) string {
	if a.DesiredStatus == sched.DesiredStop && a.ClientStatus != sched.ClientComplete && a.ClientStatus != sched.ClientFailed && a.ClientStatus != sched.ClientLost {
		return "stopping"
	}
	return a.ClientStatus
}

// signal sends sig to a task of the allocation, or to each of its tasks
// for "", and returns the tasks it reached.
func (o *allocOps) signal(ctx context.Context, id, task, sig string) ([]string, error) {
	if strings.TrimSpace(sig) == "" {
		return nil, badRequest{errors.New("name the signal, e.g. SIGHUP")}
	}
	al, tasks, err := o.target(id, task)
	if err != nil {
		return nil, err
	}
	if len(tasks) == 0 {
		return nil, fmt.Errorf("%w: allocation %s has no task to signal (its job version is gone)", ErrAllocNotRunning, short8(al.ID))
	}
	var reached []string
	var errs []error
	for _, t := range tasks {
		req, err := newAgentRequest(wire.TypeSignalTask, wire.SignalTask{AllocID: al.ID, Task: t, Signal: sig}, wire.TypeTaskSignalled)
		if err != nil {
			return nil, err
		}
		var ans wire.TaskSignalled
		if err := o.callAgent(ctx, al, req, &ans); err != nil {
			return nil, err
		}
		if ans.Error != "" {
			errs = append(errs, fmt.Errorf("task %q: %s", t, ans.Error))
			continue
		}
		reached = append(reached, t)
	}
	if len(reached) == 0 {
		return nil, &agentRefusal{msg: errors.Join(errs...).Error()}
	}
	return reached, nil
}

// restart restarts a running task of the allocation in place, or every
// running one for "", through its agent's restart loop.
func (o *allocOps) restart(ctx context.Context, id, task string) ([]string, error) {
	al, err := o.alloc(id)
	if err != nil {
		return nil, err
	}
	if task != "" {
		if _, _, err := o.target(id, task); err != nil {
			return nil, err
		}
	}
	req, err := newAgentRequest(wire.TypeRestartTask, wire.RestartTask{AllocID: al.ID, Task: task}, wire.TypeTaskRestarted)
	if err != nil {
		return nil, err
	}
	var ans wire.TaskRestarted
	if err := o.callAgent(ctx, al, req, &ans); err != nil {
		return nil, err
	}
	if ans.Error != "" {
		return nil, &agentRefusal{msg: ans.Error}
	}
	return ans.Tasks, nil
}

// stats measures a task of the allocation, or each of its tasks for "".
func (o *allocOps) stats(ctx context.Context, id, task string) (*structs.AllocStats, error) {
	al, tasks, err := o.target(id, task)
	if err != nil {
		return nil, err
	}
	out := &structs.AllocStats{AllocID: al.ID, Tasks: []structs.TaskStats{}}
	for _, t := range tasks {
		req, err := newAgentRequest(wire.TypeStatsRequest, wire.StatsRequest{AllocID: al.ID, Task: t}, wire.TypeTaskStats)
		if err != nil {
			return nil, err
		}
		var ans wire.TaskStats
		if err := o.callAgent(ctx, al, req, &ans); err != nil {
			return nil, err
		}
		ans.AllocID, ans.Task = al.ID, t
		out.Tasks = append(out.Tasks, ans)
	}
	return out, nil
}

// alloc reads an allocation by its full ID.
func (o *allocOps) alloc(id string) (*structs.Alloc, error) {
	al, err := o.store.Alloc(id)
	if err != nil {
		return nil, err
	}
	if al == nil {
		return nil, fmt.Errorf("allocation %q: %w", id, ErrNotFound)
	}
	return al, nil
}

// target reads an allocation and the tasks an operation names: task, or
// every task of its group for "".
func (o *allocOps) target(id, task string) (*structs.Alloc, []string, error) {
	al, err := o.alloc(id)
	if err != nil {
		return nil, nil, err
	}
	job, err := o.store.JobVersion(al.JobID, al.JobVersion)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	if job != nil {
		if g := job.Lookup(al.Group); g != nil {
			for _, t := range g.Tasks {
				names = append(names, t.Name)
			}
		}
	}
	switch {
	case task == "":
		return al, names, nil
	case !containsString(names, task):
		return nil, nil, fmt.Errorf("allocation %s has no task %q (its tasks: %s): %w", short8(al.ID), task, strings.Join(names, ", "), ErrNotFound)
	}
	return al, []string{task}, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// agentRefusal is the agent's own answer refusing a request (the task is
// not running, a signal it cannot take): a conflict with the task's state.
type agentRefusal struct{ msg string }

func (e *agentRefusal) Error() string        { return e.msg }
func (e *agentRefusal) Is(target error) bool { return target == ErrAllocNotRunning }

// callAgent sends req to the agent running al: here if it is connected
// here, else through the server it is connected to.
func (o *allocOps) callAgent(ctx context.Context, al *structs.Alloc, req agentRequest, answer any) error {
	if clientDone(al.ClientStatus) {
		return fmt.Errorf("%w: allocation %s is %s: nothing of it runs on node %s", ErrAllocNotRunning, short8(al.ID), al.ClientStatus, al.NodeName)
	}
	node, err := o.store.Node(al.NodeID)
	if err != nil {
		return err
	}
	if node != nil && node.Status == sched.NodeDown {
		return fmt.Errorf("%w: node %s (%s) is down", ErrNodeUnavailable, al.NodeName, short8(al.NodeID))
	}
	ctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	err = o.agents.call(ctx, al.NodeID, req, answer)
	if !errors.Is(err, errNodeNotConnected) {
		return err
	}
	peers, err := o.others()
	if err != nil {
		return err
	}
	var unreachable []string
	for _, addr := range peers {
		var raw json.RawMessage
		err := o.rpc.call(ctx, addr, "agent-call", agentCallRPC{NodeID: al.NodeID, Request: req}, &raw)
		switch {
		case err == nil:
			return json.Unmarshal(raw, answer)
		case errors.Is(err, errNodeNotConnected):
		case errors.As(err, new(*remoteError)):
			return err // the agent's link failed on that server: its answer
		default:
			unreachable = append(unreachable, addr)
		}
	}
	where := ""
	if len(unreachable) > 0 {
		where = fmt.Sprintf(" that answered (unreachable: %s)", strings.Join(unreachable, ", "))
	}
	return fmt.Errorf("%w: node %s (%s) is not connected to any server%s", ErrNodeUnavailable, al.NodeName, short8(al.NodeID), where)
}

func clientDone(status string) bool {
	return status == sched.ClientComplete || status == sched.ClientFailed || status == sched.ClientLost
}

// agentCallRPC is the body of the server RPC "agent-call".
type agentCallRPC struct {
	NodeID  string       `json:"NodeID"`
	Request agentRequest `json:"Request"`
}

// serveRPC is the server RPC "agent-call": a request for an agent
// connected to this server; the answer is the agent's frame payload.
func (o *allocOps) serveRPC(body json.RawMessage) (any, error) {
	var c agentCallRPC
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, badRequest{err}
	}
	if !o.agents.connected(c.NodeID) {
		return nil, errNodeNotConnected
	}
	ctx, cancel := context.WithTimeout(context.Background(), agentCallTimeout)
	defer cancel()
	var raw json.RawMessage
	if err := o.agents.call(ctx, c.NodeID, c.Request, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// call sends one request on a new stream of a node's agent connection
// and decodes its answer.
func (a *agentEndpoint) call(ctx context.Context, nodeID string, req agentRequest, answer any) error {
	conn := a.conn(nodeID)
	if conn == nil {
		return errNodeNotConnected
	}
	err := callOnStream(ctx, conn, req, answer)
	if err != nil && ctx.Err() == nil && conn.Context().Err() != nil {
		return errNodeNotConnected // the connection ended just now
	}
	return err
}

func callOnStream(ctx context.Context, conn *quic.Conn, req agentRequest, answer any) error {
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("%w: opening a stream to the agent: %v", ErrNodeUnavailable, err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(0); st.CancelWrite(0) })
	defer stop()
	defer st.Close()
	if err := wire.Write(st, req.Type, req.Payload); err != nil {
		st.CancelRead(0)
		return fmt.Errorf("%w: sending %s: %v", ErrNodeUnavailable, req.Type, err)
	}
	if d, ok := ctx.Deadline(); ok {
		st.SetReadDeadline(d)
	}
	t, payload, err := wire.Read(st)
	st.CancelRead(0)
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		// An agent built before the request's frame type resets the
		// stream without an answer.
		return fmt.Errorf("%w: the agent did not answer %s (an agent older than this server does not know it): %v", ErrNodeUnavailable, req.Type, err)
	case t == wire.TypeError:
		var e wire.Error
		wire.Decode(t, payload, &e)
		return fmt.Errorf("%w: the agent refused %s: %s", ErrNodeUnavailable, req.Type, e.Message)
	case t != req.Answer:
		return fmt.Errorf("%w: the agent answered %s with %s", ErrNodeUnavailable, req.Type, t)
	}
	return wire.Decode(t, payload, answer)
}
