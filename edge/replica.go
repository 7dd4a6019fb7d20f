package edge

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
)

// replica is the agent's copy of the servers' service catalog, which its
// DNS server answers from (dns.go). It is fed by the catalog stream
// (replica_stream.go): a snapshot, then deltas, each kept in agent.db
// (catalog_state.go) before it is published, so that a restarted agent
// answers from disk at once and resumes the stream at its replica's index
// instead of being sent the whole catalog again.
//
// While no catalog stream is up (the link is down, or the server does not
// replicate the catalog) the servers cannot tell the agent that its own
// allocations' instances became healthy or unhealthy, since the agent's
// reports no longer reach them. The replica then overlays what the agent's
// own runners report (observe) on the servers' catalog: an instance of one
// of its allocations is passing exactly when the allocation runs and the
// runner reports that service's endpoint healthy. Instances of other
// nodes keep the health last received. The overlay is dropped as soon as
// a stream is up again: the servers' catalog is authoritative, and the
// statuses the agent resends on reconnecting update it.
type replica struct {
	nodeName string
	local    *localState
	log      *slog.Logger
	holder   *registry.Holder // what DNS reads: base, with the overlay while unlinked

	mu     sync.Mutex
	base   *registry.Snapshot  // the servers' catalog as last received or loaded
	linked bool                // a catalog stream is up and has sent its first frame
	own    map[string]ownAlloc // this agent's allocations' latest status, by ID

	// snapshots and deltas count the frames applied, for tests and logs.
	snapshots, deltas atomic.Int64
}

// ownAlloc is what the replica's overlay knows of one of the agent's
// allocations: whether it runs, and its endpoints' health.
type ownAlloc struct {
	running   bool
	endpoints []wire.Endpoint
}

// newReplica loads the replica kept in agent.db (an empty one if there is
// none, or if it cannot be read: the servers then send it whole).
func newReplica(local *localState, nodeName string, log *slog.Logger) *replica {
	base, err := local.loadCatalog()
	if err != nil {
		log.Warn("not using the stored catalog replica: the servers will send it again", "err", err)
	}
	if base == nil {
		base, _ = registry.NewSnapshot(0, nil)
	} else {
		log.Info("catalog replica loaded", "index", base.Index(), "instances", base.Len())
	}
	r := &replica{nodeName: nodeName, local: local, log: log, base: base, own: map[string]ownAlloc{}}
	r.holder = registry.NewHolder(base)
	return r
}

// index is the index of the servers' catalog the replica holds.
func (r *replica) index() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.base.Index()
}

// setSnapshot replaces the replica with a snapshot's encoding.
func (r *replica) setSnapshot(index uint64, b []byte) error {
	s, err := registry.DecodeSnapshot(b)
	if err != nil {
		return err
	}
	if s.Index() != index {
		return fmt.Errorf("snapshot frame says index %d, its catalog is at %d", index, s.Index())
	}
	if err := r.local.saveCatalog(b); err != nil {
		return fmt.Errorf("storing the catalog replica: %w", err)
	}
	r.snapshots.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.base, r.linked = s, true
	r.publishLocked()
	return nil
}

// applyDelta applies a delta's encoding to the replica. A delta at the
// replica's own index (the server's answer when nothing changed) only
// marks the stream as up.
func (r *replica) applyDelta(index uint64, b []byte) error {
	d, err := registry.DecodeDelta(b)
	if err != nil {
		return err
	}
	if d.Index != index {
		return fmt.Errorf("delta frame says index %d, its delta leads to %d", index, d.Index)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.Index != r.base.Index() {
		next, err := r.base.Apply(d)
		if err != nil {
			return err
		}
		n, err := r.local.appendCatalogDelta(d.Index, b)
		if err != nil {
			return fmt.Errorf("storing a catalog delta: %w", err)
		}
		if n > maxStoredDeltas {
			r.compactLocked(next)
		}
		r.base = next
		r.deltas.Add(1)
	}
	r.linked = true
	r.publishLocked()
	return nil
}

// compactLocked rewrites the stored replica as one snapshot.
func (r *replica) compactLocked(s *registry.Snapshot) {
	b, err := s.MarshalBinary()
	if err == nil {
		err = r.local.saveCatalog(b)
	}
	if err != nil {
		// The snapshot and the deltas stored still load: only disk grows.
		r.log.Warn("compacting the stored catalog replica", "err", err)
	}
}

// unlink marks the catalog stream down: the overlay applies from now on.
func (r *replica) unlink() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.linked {
		r.linked = false
		r.publishLocked()
	}
}

// observe records an allocation status the agent's runners reported.
func (r *replica) observe(st wire.AllocStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.own[st.AllocID] = ownAlloc{running: st.ClientStatus == "running", endpoints: st.Endpoints}
	if !r.linked {
		r.publishLocked()
	}
}

// retain forgets the allocations the servers no longer list for the node.
func (r *replica) retain(allocs []wire.Alloc) {
	keep := make(map[string]bool, len(allocs))
	for _, a := range allocs {
		keep[a.ID] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.own {
		if !keep[id] {
			delete(r.own, id)
		}
	}
}

// publishLocked publishes the base catalog, with the overlay of the
// agent's own allocations while no stream is up.
func (r *replica) publishLocked() {
	s := r.base
	if !r.linked {
		if d, ok := r.overlay(); ok {
			if o, err := s.Apply(d); err == nil {
				s = o
			} else {
				r.log.Warn("overlaying local health on the catalog replica", "err", err)
			}
		}
	}
	r.holder.Replace(s) // never nil: cannot fail
}

// overlay is the delta that sets the health of the agent's own instances
// from what its runners report; ok is false when it changes nothing.
func (r *replica) overlay() (registry.Delta, bool) {
	d := registry.Delta{Index: r.base.Index() + 1}
	for _, e := range r.base.NodeInstances(r.nodeName) {
		a, ok := r.own[e.AllocID]
		if !ok || e.AllocID == "" {
			continue
		}
		h := registry.HealthCritical
		if a.running {
			for _, ep := range a.endpoints {
				if ep.Port == e.Port && strings.EqualFold(ep.Service, e.Service) && ep.Healthy {
					h = registry.HealthPassing
					break
				}
			}
		}
		if h != e.Health {
			in := e.Instance
			in.Health = h
			d.Upserts = append(d.Upserts, in)
		}
	}
	return d, len(d.Upserts) > 0
}
