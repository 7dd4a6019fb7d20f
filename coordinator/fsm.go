package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
	"github.com/strata-run/strata/spec"
)

// A Raft log entry is one command-type byte followed by a JSON payload
// (a plan: the binary form of codec.go). Values are persisted in the
// log: never renumber.
type cmdType byte

const (
	cmdJobRegister    cmdType = 1
	cmdJobStop        cmdType = 2
	cmdModuleRegister cmdType = 3
	cmdNodeRegister   cmdType = 4
	cmdPlanApplyJSON  cmdType = 5 // retired: plans are binary (cmdPlanApply)
	cmdAllocUpdate    cmdType = 6
	cmdEvalUpsert     cmdType = 7
	cmdNodeStatus     cmdType = 8
	cmdNodeDrain      cmdType = 9
	cmdCASet          cmdType = 10
	cmdTokenCreate    cmdType = 11
	cmdTokenUse       cmdType = 12
	cmdTokenRevoke    cmdType = 13
	cmdPlanApply      cmdType = 14
)

// Commands. Apply must be deterministic, so the proposer stamps every ID
// and timestamp into the command; Apply reads nothing but the command and
// the state.

type jobRegisterCmd struct {
	Job        *spec.Job `json:"Job"`
	SubmitTime int64     `json:"SubmitTime"`
	EvalID     string    `json:"EvalID"` // eval created if the job changed
}

type jobRegisterResult struct {
	Version uint64
	Changed bool
	EvalID  string
}

type jobStopCmd struct {
	JobID  string `json:"JobID"`
	EvalID string `json:"EvalID"`
}

type moduleRegisterCmd struct {
	Module Module `json:"Module"`
}

type nodeRegisterCmd struct {
	Node sched.Node `json:"Node"`
	Time int64      `json:"Time"`
}

type planApplyCmd struct {
	Place []*sched.Allocation `json:"Place"`
	Stop  []allocStop         `json:"Stop,omitempty"`
	Eval  *Eval               `json:"Eval"`
}

type allocStop struct {
	ID   string `json:"ID"`
	Desc string `json:"Desc"`
}

type allocUpdateCmd struct {
	NodeID  string        `json:"NodeID"`
	Time    int64         `json:"Time,omitempty"` // stamped by the proposer
	Updates []allocUpdate `json:"Updates"`
}

type allocUpdate struct {
	AllocID      string              `json:"AllocID"`
	ClientStatus string              `json:"ClientStatus"`
	Description  string              `json:"Description,omitempty"`
	Endpoints    []registry.Endpoint `json:"Endpoints,omitempty"`
	// TaskStates replaces the allocation's task states when set; an
	// update without them (a node marked down) keeps the last reported.
	TaskStates map[string]*TaskState `json:"TaskStates,omitempty"`
}

// nodeStatusCmd marks a node down (or up) with what happens to its
// allocations and the evaluations that follow.
type nodeStatusCmd struct {
	NodeID string        `json:"NodeID"`
	Status string        `json:"Status"`
	Time   int64         `json:"Time"`
	Allocs []allocUpdate `json:"Allocs,omitempty"`
	Evals  []*Eval       `json:"Evals,omitempty"`
}

// nodeDrainCmd starts or ends a drain. Eligible is the node's
// scheduling eligibility afterwards (a finished drain leaves it
// ineligible, as Nomad does, until the operator says otherwise).
type nodeDrainCmd struct {
	NodeID   string `json:"NodeID"`
	Drain    *Drain `json:"Drain,omitempty"`
	Eligible bool   `json:"Eligible"`
}

// caSetCmd stores the cluster CA; the first one wins.
type caSetCmd struct {
	CA ClusterCA `json:"CA"`
}

type evalUpsertCmd struct {
	Evals []*Eval `json:"Evals"`
}

// ErrModuleExists is returned when a module version is pushed again with
// different bytes: versions are immutable.
var ErrModuleExists = errors.New("coordinator: module version exists with a different digest")

// encodePayload is a command's payload: binary for a plan, JSON otherwise.
func encodePayload(v any) ([]byte, error) {
	if c, ok := v.(*planApplyCmd); ok {
		return encodePlanCmd(c)
	}
	return json.Marshal(v)
}

func encodeCmd(t cmdType, v any) ([]byte, error) {
	payload, err := encodePayload(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(t)}, payload...), nil
}

// fsm is Strata's raft.FSM. It applies batches in one bbolt transaction
// with the applied index, so a restart skips entries already applied.
type fsm struct {
	store *Store
	// onApply, if set, receives each committed batch's effects. It runs on
	// every server; the leader uses it to queue evaluations.
	onApply func(*effects)
}

// effects is what a batch did that the leader's scheduler must react to.
type effects struct {
	index    uint64  // the batch's last Raft index
	evals    []*Eval // evaluations written as pending or blocked
	capacity bool    // node capacity may have grown: blocked evals retry

	cache   *allocCache
	pending map[string]*Alloc // allocations written by this batch, not yet committed
	usage   map[string]*usageDelta

	arena        arena  // keys and values written to bbolt by this batch
	scratch, key []byte // encoding buffers, copied into the arena
}

// alloc returns an allocation for the FSM to change: a copy, from this
// batch's writes, the committed cache, or bbolt.
func (fx *effects) alloc(tx *bolt.Tx, id string) (*Alloc, error) {
	if a := fx.pending[id]; a != nil {
		return a, nil
	}
	if fx.cache != nil {
		if a := fx.cache.get(id); a != nil {
			c := *a
			c.Ports = slices.Clone(a.Ports)
			c.Endpoints = slices.Clone(a.Endpoints)
			c.TaskStates = maps.Clone(a.TaskStates) // the states themselves are replaced, never changed
			return &c, nil
		}
	}
	return getAlloc(tx, []byte(id))
}

// wrote records an allocation this batch wrote.
func (fx *effects) wrote(a *Alloc) {
	if fx.pending == nil {
		fx.pending = map[string]*Alloc{}
	}
	fx.pending[a.ID] = a
	fx.delta(a.NodeID).allocWritten = true
}

func (fx *effects) eval(e *Eval) {
	if e.Status == EvalPending || e.Status == EvalBlocked {
		fx.evals = append(fx.evals, e)
	}
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies logs in one transaction. Results are per log: a
// command that is refused (an error result) changes nothing.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	fx := &effects{cache: &f.store.allocs}
	err := f.store.update(func(tx *bolt.Tx) error {
		// Allocation IDs are time-ordered, so these buckets grow at their
		// end: fill pages instead of splitting them in half (bbolt's
		// default), which left the state file twice its size.
		tx.Bucket(bucketAllocs).FillPercent = allocFillPercent
		tx.Bucket(bucketAllocsByJob).FillPercent = allocFillPercent
		applied := appliedIndex(tx)
		last := applied
		for i, l := range logs {
			if l.Index <= applied {
				results[i] = nil // replayed after restart: already in the state
				continue
			}
			last = l.Index
			if l.Type != raft.LogCommand {
				continue
			}
			res, err := applyCmd(tx, l.Index, l.Data, fx)
			var refused refusal
			if errors.As(err, &refused) {
				results[i] = refused.err
				continue
			}
			if err != nil {
				return fmt.Errorf("apply index %d: %w", l.Index, err)
			}
			results[i] = res
		}
		fx.index = last
		if last > applied {
			return setAppliedIndex(tx, last)
		}
		return nil
	})
	if err != nil {
		// A storage failure must not be silently skipped: the FSM would
		// diverge from the log. Raft has no way to retry an Apply, so stop.
		panic(fmt.Sprintf("coordinator: state store failed, refusing to diverge from the Raft log: %v", err))
	}
	f.store.allocs.publish(fx.pending)
	f.store.usage.publish(fx.usage)
	f.store.notify() // after the in-memory views: a woken watcher reads them current
	if f.onApply != nil && (len(fx.evals) > 0 || fx.capacity) {
		f.onApply(fx)
	}
	return results
}

// allocFillPercent is how full bbolt packs a page of allocations before
// it starts the next one.
const allocFillPercent = 0.9

// refusal wraps an error that refuses one command without failing the batch.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }

func refuse(format string, args ...any) error {
	return refusal{fmt.Errorf(format, args...)}
}

func applyCmd(tx *bolt.Tx, index uint64, data []byte, fx *effects) (any, error) {
	if len(data) == 0 {
		return nil, refuse("coordinator: empty command")
	}
	t, payload := cmdType(data[0]), data[1:]
	switch t {
	case cmdJobRegister:
		return decodeThen(t, payload, func(c *jobRegisterCmd) (any, error) { return applyJobRegister(tx, index, c, fx) })
	case cmdJobStop:
		return decodeThen(t, payload, func(c *jobStopCmd) (any, error) { return nil, applyJobStop(tx, index, c, fx) })
	case cmdModuleRegister:
		return decodeThen(t, payload, func(c *moduleRegisterCmd) (any, error) { return nil, applyModuleRegister(tx, index, c) })
	case cmdNodeRegister:
		return decodeThen(t, payload, func(c *nodeRegisterCmd) (any, error) {
			fx.capacity = true
			return nil, applyNodeRegister(tx, index, c, fx)
		})
	case cmdPlanApply:
		c, err := decodePlanCmd(payload)
		if err != nil {
			return nil, refuse("coordinator: malformed command %d: %v", t, err)
		}
		return nil, applyPlan(tx, index, c, fx)
	case cmdPlanApplyJSON:
		return nil, refuse("coordinator: command %d is a plan in the retired JSON encoding", t)
	case cmdAllocUpdate:
		return decodeThen(t, payload, func(c *allocUpdateCmd) (any, error) { return nil, applyAllocUpdate(tx, index, c, fx) })
	case cmdNodeStatus:
		return decodeThen(t, payload, func(c *nodeStatusCmd) (any, error) { return nil, applyNodeStatus(tx, index, c, fx) })
	case cmdNodeDrain:
		return decodeThen(t, payload, func(c *nodeDrainCmd) (any, error) {
			fx.capacity = fx.capacity || c.Eligible
			return nil, applyNodeDrain(tx, index, c, fx)
		})
	case cmdCASet:
		return decodeThen(t, payload, func(c *caSetCmd) (any, error) {
			meta := tx.Bucket(bucketMeta)
			if meta.Get(keyCA) != nil {
				return nil, nil // a CA exists: keep it
			}
			return nil, putJSON(meta, keyCA, &c.CA)
		})
	case cmdTokenCreate:
		return decodeThen(t, payload, func(c *tokenCreateCmd) (any, error) { return nil, applyTokenCreate(tx, c) })
	case cmdTokenUse:
		return decodeThen(t, payload, func(c *tokenUseCmd) (any, error) { return nil, applyTokenUse(tx, c) })
	case cmdTokenRevoke:
		return decodeThen(t, payload, func(c *tokenRevokeCmd) (any, error) { return nil, applyTokenRevoke(tx, c) })
	case cmdEvalUpsert:
		return decodeThen(t, payload, func(c *evalUpsertCmd) (any, error) {
			for _, e := range c.Evals {
				if err := upsertEval(tx, index, e); err != nil {
					return nil, err
				}
				fx.eval(e)
			}
			return nil, nil
		})
	}
	return nil, refuse("coordinator: unknown command type %d", t)
}

// decodeThen decodes a command's payload and applies it; a payload that
// does not decode is refused, naming the command type.
func decodeThen[C any](t cmdType, payload []byte, apply func(*C) (any, error)) (any, error) {
	var c C
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, refuse("coordinator: malformed command %d: %v", t, err)
	}
	return apply(&c)
}

func applyJobRegister(tx *bolt.Tx, index uint64, c *jobRegisterCmd, fx *effects) (any, error) {
	if c.Job == nil || c.Job.ID == "" {
		return nil, refuse("coordinator: job register without a job")
	}
	jobs := tx.Bucket(bucketJobs)
	var rec JobRecord
	exists, err := getJSON(jobs, []byte(c.Job.ID), &rec)
	if err != nil {
		return nil, err
	}
	res := &jobRegisterResult{}
	switch {
	case !exists:
		rec = JobRecord{Job: c.Job, Version: 0, CreateIndex: index}
		res.Changed = true
	case rec.Stopped || !reflect.DeepEqual(rec.Job, c.Job):
		if !reflect.DeepEqual(rec.Job, c.Job) {
			rec.Version++
		}
		rec.Job, rec.Stopped = c.Job, false
		res.Changed = true
	}
	res.Version = rec.Version
	if !res.Changed {
		return res, nil
	}
	rec.SubmitTime, rec.ModifyIndex = c.SubmitTime, index
	if c.EvalID != "" {
		rec.LatestEvalID = c.EvalID
		res.EvalID = c.EvalID
		e := &Eval{ID: c.EvalID, JobID: c.Job.ID, TriggeredBy: "job-register", Status: EvalPending}
		if err := upsertEval(tx, index, e); err != nil {
			return nil, err
		}
		fx.eval(e)
	}
	if err := putJSON(tx.Bucket(bucketJobVersions), jobVersionKey(c.Job.ID, rec.Version), c.Job); err != nil {
		return nil, err
	}
	return res, putJSON(jobs, []byte(c.Job.ID), &rec)
}

func applyJobStop(tx *bolt.Tx, index uint64, c *jobStopCmd, fx *effects) error {
	jobs := tx.Bucket(bucketJobs)
	var rec JobRecord
	ok, err := getJSON(jobs, []byte(c.JobID), &rec)
	if err != nil {
		return err
	}
	if !ok {
		return refusal{fmt.Errorf("job %q: %w", c.JobID, ErrNotFound)}
	}
	rec.Stopped, rec.ModifyIndex = true, index
	if c.EvalID != "" {
		rec.LatestEvalID = c.EvalID
		e := &Eval{ID: c.EvalID, JobID: c.JobID, TriggeredBy: "job-deregister", Status: EvalPending}
		if err := upsertEval(tx, index, e); err != nil {
			return err
		}
		fx.eval(e)
	}
	return putJSON(jobs, []byte(c.JobID), &rec)
}

func applyModuleRegister(tx *bolt.Tx, index uint64, c *moduleRegisterCmd) error {
	mods := tx.Bucket(bucketModules)
	key := []byte(c.Module.Name + "@" + c.Module.Version)
	var old Module
	ok, err := getJSON(mods, key, &old)
	if err != nil {
		return err
	}
	if ok {
		if old.Digest != c.Module.Digest {
			return refusal{fmt.Errorf("%w: %s@%s is %s; push a new version instead", ErrModuleExists, old.Name, old.Version, old.Digest)}
		}
		return nil // same bytes again: idempotent
	}
	m := c.Module
	m.CreateIndex = index
	return putJSON(mods, key, &m)
}

func applyNodeRegister(tx *bolt.Tx, index uint64, c *nodeRegisterCmd, fx *effects) error {
	nodes := tx.Bucket(bucketNodes)
	var rec NodeRecord
	ok, err := getJSON(nodes, []byte(c.Node.ID), &rec)
	if err != nil {
		return err
	}
	if !ok {
		rec.CreateIndex = index
	}
	eligible := rec.Eligible || !ok
	rec.Node, rec.LastRegister, rec.ModifyIndex = c.Node, c.Time, index
	if ok {
		// Re-registering does not end a drain or undo ineligibility.
		rec.Eligible = eligible && rec.Drain == nil
	}
	fx.nodeChanged(&rec)
	return putJSON(nodes, []byte(c.Node.ID), &rec)
}

// updateNode changes an existing node record.
func updateNode(tx *bolt.Tx, index uint64, id string, fx *effects, change func(*NodeRecord)) error {
	nodes := tx.Bucket(bucketNodes)
	var rec NodeRecord
	ok, err := getJSON(nodes, []byte(id), &rec)
	if err != nil {
		return err
	}
	if !ok {
		return refusal{fmt.Errorf("node %q: %w", id, ErrNotFound)}
	}
	change(&rec)
	rec.ModifyIndex = index
	fx.nodeChanged(&rec)
	return putJSON(nodes, []byte(id), &rec)
}

func applyNodeStatus(tx *bolt.Tx, index uint64, c *nodeStatusCmd, fx *effects) error {
	if err := updateNode(tx, index, c.NodeID, fx, func(rec *NodeRecord) { rec.Status = c.Status }); err != nil {
		return err
	}
	if err := applyAllocUpdate(tx, index, &allocUpdateCmd{NodeID: c.NodeID, Time: c.Time, Updates: c.Allocs}, fx); err != nil {
		return err
	}
	for _, e := range c.Evals {
		if err := upsertEval(tx, index, e); err != nil {
			return err
		}
		fx.eval(e)
	}
	return nil
}

func applyNodeDrain(tx *bolt.Tx, index uint64, c *nodeDrainCmd, fx *effects) error {
	return updateNode(tx, index, c.NodeID, fx, func(rec *NodeRecord) { rec.Drain, rec.Eligible = c.Drain, c.Eligible })
}

func upsertEval(tx *bolt.Tx, index uint64, e *Eval) error {
	evals := tx.Bucket(bucketEvals)
	var old Eval
	ok, err := getJSON(evals, []byte(e.ID), &old)
	if err != nil {
		return err
	}
	v := *e
	v.CreateIndex, v.ModifyIndex = index, index
	if ok {
		v.CreateIndex = old.CreateIndex
	}
	return putJSON(evals, []byte(e.ID), &v)
}

// putAlloc writes an allocation's record in its binary form.
func (fx *effects) putAlloc(tx *bolt.Tx, a *Alloc) error {
	fx.scratch = appendAllocRecord(fx.scratch[:0], a)
	return tx.Bucket(bucketAllocs).Put(fx.arena.add(append(fx.key[:0], a.ID...)), fx.arena.add(fx.scratch))
}

// putNewAlloc writes a new allocation and adds it to the by-job index
// (an allocation never changes job or node, so updates skip this). The
// by-node index is in memory (usageIndex), rebuilt at open.
func (fx *effects) putNewAlloc(tx *bolt.Tx, a *Alloc) error {
	if err := fx.putAlloc(tx, a); err != nil {
		return err
	}
	fx.key = append(append(append(fx.key[:0], a.JobID...), 0), a.ID...)
	return tx.Bucket(bucketAllocsByJob).Put(fx.arena.add(fx.key), nil)
}

// arenaChunk is the size of the arena's blocks.
const arenaChunk = 64 << 10

// arena holds the keys and values a batch hands to bbolt, which keeps
// references to them until the transaction commits: one allocation per
// 64 KiB instead of two or three per allocation written.
type arena struct{ buf []byte }

// add returns a copy of b that lives as long as the arena.
func (ar *arena) add(b []byte) []byte {
	if len(b) > arenaChunk/8 {
		return slices.Clone(b)
	}
	if cap(ar.buf)-len(ar.buf) < len(b) {
		ar.buf = make([]byte, 0, arenaChunk)
	}
	start := len(ar.buf)
	ar.buf = append(ar.buf, b...)
	return ar.buf[start:len(ar.buf):len(ar.buf)]
}

func applyPlan(tx *bolt.Tx, index uint64, c *planApplyCmd, fx *effects) error {
	if len(c.Stop) > 0 {
		fx.capacity = true // stopped allocations free capacity
	}
	for _, s := range c.Stop {
		a, err := fx.alloc(tx, s.ID)
		if err != nil {
			return err
		}
		if a == nil {
			continue
		}
		if err := setEndpoints(tx, a.ID, a.Endpoints, nil); err != nil {
			return err
		}
		before := *a
		a.DesiredStatus, a.DesiredDesc, a.ModifyIndex = sched.DesiredStop, s.Desc, index
		fx.allocChanged(&before, a)
		a.Endpoints = nil
		if err := fx.putAlloc(tx, a); err != nil {
			return err
		}
		fx.wrote(a)
	}
	allocs := tx.Bucket(bucketAllocs)
	for _, p := range c.Place {
		if fx.pending[p.ID] != nil || allocs.Get([]byte(p.ID)) != nil {
			continue // an allocation ID is placed once; never overwrite one
		}
		a := &Alloc{Allocation: *p}
		a.CreateIndex, a.ModifyIndex = index, index
		if err := fx.putNewAlloc(tx, a); err != nil {
			return err
		}
		fx.wrote(a)
		fx.allocChanged(nil, a)
		d := fx.delta(a.NodeID)
		d.newAllocs = append(d.newAllocs, a.ID)
	}
	if c.Eval != nil {
		fx.eval(c.Eval)
		return upsertEval(tx, index, c.Eval)
	}
	return nil
}

func applyAllocUpdate(tx *bolt.Tx, index uint64, c *allocUpdateCmd, fx *effects) error {
	for _, u := range c.Updates {
		a, err := fx.alloc(tx, u.AllocID)
		if err != nil {
			return err
		}
		if a == nil || a.NodeID != c.NodeID {
			continue // unknown here, or not this node's: ignore, never let a node write another's alloc
		}
		if clientTerminal(a.ClientStatus) && !clientTerminal(u.ClientStatus) {
			// Lost, failed or complete is final: a late or replayed
			// "running" from an agent that was away must not revive it.
			continue
		}
		if u.ClientStatus == sched.ClientUnknown && a.ClientStatus != sched.ClientUnknown {
			a.UnknownSince = c.Time
		} else if u.ClientStatus != sched.ClientUnknown {
			a.UnknownSince = 0
		}
		old := a.Endpoints
		before := *a
		wasTerminal := a.Terminal()
		a.ClientStatus, a.ClientDescription, a.ModifyIndex = u.ClientStatus, u.Description, index
		a.Endpoints = u.Endpoints
		if len(u.TaskStates) > 0 {
			a.TaskStates = u.TaskStates
		}
		if a.Terminal() {
			a.Endpoints = nil // a stopping or finished alloc is never discoverable
			if !wasTerminal {
				fx.capacity = true
			}
		}
		if err := setEndpoints(tx, a.ID, old, a.Endpoints); err != nil {
			return err
		}
		if err := fx.putAlloc(tx, a); err != nil {
			return err
		}
		fx.wrote(a)
		fx.allocChanged(&before, a)
	}
	return nil
}

// setEndpoints replaces an allocation's entries in the services bucket,
// keyed service \x00 allocID \x00 n; old is what the alloc had before.
func setEndpoints(tx *bolt.Tx, allocID string, old, eps []registry.Endpoint) error {
	b := tx.Bucket(bucketServices)
	for i, e := range old {
		if err := b.Delete(serviceKey(e.Service, allocID, i)); err != nil {
			return err
		}
	}
	for i, e := range eps {
		if err := putJSON(b, serviceKey(e.Service, allocID, i), e); err != nil {
			return err
		}
	}
	return nil
}

// serviceKey lowercases the service name: DNS names are case-insensitive
// and the registry asks for lowercased names.
func serviceKey(service, allocID string, n int) []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%04d", strings.ToLower(service), allocID, n)
}

// fsmSnapshot streams the state as of the moment Raft asked for it: its
// read transaction is opened in Snapshot (on the FSM goroutine) and written
// out in Persist, concurrently with later Applies.
type fsmSnapshot struct {
	tx      *bolt.Tx
	release func()
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	tx, release, err := f.store.beginRead()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{tx: tx, release: release}, nil
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.tx.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("coordinator: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.release() }

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	return f.store.Restore(r)
}

// clientTerminal reports whether a client status is final.
func clientTerminal(status string) bool {
	switch status {
	case sched.ClientComplete, sched.ClientFailed, sched.ClientLost:
		return true
	}
	return false
}
