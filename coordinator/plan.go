package coordinator

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/sched"
)

// planApplier is the leader's plan applier: it re-checks every placement
// against the current state of its node (another worker, or a node
// change, may have used the capacity since the snapshot), stamps the IDs
// of what still fits, and proposes it with the stops and the
// evaluation's new status.
type planApplier struct {
	store   *state.Store
	propose func(data []byte) (wait func() (any, uint64, error)) // raftNode.propose: a plan is never forwarded
	log     *slog.Logger

	mu       sync.Mutex    // one plan checked at a time
	inflight inflightPlans // plans proposed, not yet applied
	ids      *idGen        // stamps placements' IDs, in commit order
	metrics  *serverMetrics
}

// apply checks a plan, commits what still fits, and returns how many
// placements it rejected.
func (s *planApplier) apply(plan *sched.Plan, e *structs.Eval) (int, error) {
	wait, rejected, err := s.proposePlan(plan, e)
	if err != nil {
		return 0, err
	}
	if _, _, err := wait(); err != nil {
		return 0, fmt.Errorf("coordinator: commit plan: %w", err)
	}
	return rejected, nil
}

// proposePlan checks a plan and proposes what still fits, through the
// same proposal path as every write. Plans are checked one at a time,
// each against the committed state plus the placements of plans proposed
// but not yet applied; the lock is released once the plan is proposed,
// so the next plan is checked while this one commits (Nomad's pipelined
// plan applier). wait waits for the commit, then stops counting the
// plan's placements as in flight.
func (s *planApplier) proposePlan(plan *sched.Plan, e *structs.Eval) (wait func() (any, uint64, error), rejected int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd, why, err := s.store.CheckPlan(plan, e, s.inflight.addTo)
	if err != nil {
		return nil, 0, err
	}
	s.metrics.planChecked(len(why))
	for _, err := range why {
		s.log.Debug("plan applier rejected a placement", "eval", e.ID, "job", e.JobID, "reason", err)
	}
	// IDs are stamped here, under the lock, so they increase in proposal
	// order (ids.go); so is the time a deployment's batch starts.
	for _, p := range cmd.Place {
		p.ID = s.ids.next()
	}
	cmd.Time = time.Now().UnixNano()
	data, err := state.Encode(cmd)
	if err != nil {
		return nil, 0, err
	}
	token := s.inflight.add(cmd.Place)
	committed := s.propose(data)
	return func() (any, uint64, error) {
		defer s.inflight.remove(token)
		res, index, err := committed()
		if err == nil {
			s.metrics.planCommitted(len(cmd.Place))
		}
		return res, index, err
	}, len(why), nil
}

// inflightPlans holds the placements of plans proposed to Raft but not yet
// applied, so the plan applier counts them when checking the next plan.
// Between the FSM publishing a plan and its removal here, its placements
// count twice: that can only make the check reject (the evaluation then
// retries), never overcommit.
type inflightPlans struct {
	mu    sync.Mutex
	next  int
	plans map[int][]*sched.Allocation
	nodes map[string][]*sched.Allocation // the same placements by node
}

func (p *inflightPlans) add(place []*sched.Allocation) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.plans == nil {
		p.plans, p.nodes = map[int][]*sched.Allocation{}, map[string][]*sched.Allocation{}
	}
	p.next++
	p.plans[p.next] = place
	for _, a := range place {
		p.nodes[a.NodeID] = append(p.nodes[a.NodeID], a)
	}
	return p.next
}

func (p *inflightPlans) remove(token int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.plans[token] {
		list := p.nodes[a.NodeID]
		if i := slices.Index(list, a); i >= 0 {
			list = slices.Delete(list, i, i+1)
		}
		if len(list) == 0 {
			delete(p.nodes, a.NodeID)
		} else {
			p.nodes[a.NodeID] = list
		}
	}
	delete(p.plans, token)
}

// addTo adds the in-flight placements on ns's node to ns (a private copy).
func (p *inflightPlans) addTo(ns *sched.NodeState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.nodes[ns.Node.ID] {
		ns.Used = ns.Used.Add(a.Resources)
		for _, port := range a.Ports {
			ns.UsedPorts[port.Value] = true
		}
	}
}
