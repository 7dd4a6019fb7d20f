package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/strata-run/strata/coordinator/deploy"
	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/coordinator/structs"
)

// deploymentWatcher is the leader's part that drives deployments. It
// hears of every committed batch (the Raft adapter's hook) and steps the
// deployments the batch changed with the pure rules of package deploy:
// it commits their promotions, their end (successful, failed, with the
// revert of a failure in the same entry), and the evaluations that let
// the scheduler stop what healthy replacements replaced and start the
// next batch. Timers wake it for progress deadlines and the end of a
// stagger. Everything it decides is a Raft command, and a new leader
// starts by stepping every running deployment, so none is lost in a
// failover. Its cost per health report is one deployment record, never
// the job's allocations.
type deploymentWatcher struct {
	store *state.Store
	apply applyFunc
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	leading bool
	dirty   map[string]bool  // deployments to step
	wakeAt  map[string]int64 // when to step a deployment again, unix nanoseconds
	healthy map[string]int   // healthy allocations last seen, by deployment: a change asks for an evaluation
	wake    chan struct{}    // something is dirty
}

func newDeploymentWatcher(store *state.Store, apply applyFunc, now func() time.Time, log *slog.Logger) *deploymentWatcher {
	return &deploymentWatcher{store: store, apply: apply, now: now, log: log, wake: make(chan struct{}, 1)}
}

// applied hears of a committed batch (on every server, on the FSM
// goroutine: it must not block); the leader steps what it changed.
func (w *deploymentWatcher) applied(fx *state.Effects) {
	if len(fx.Deployments) == 0 {
		return
	}
	w.mu.Lock()
	if w.leading {
		for _, id := range fx.Deployments {
			w.dirty[id] = true
		}
	}
	w.mu.Unlock()
	w.kick()
}

func (w *deploymentWatcher) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run is a leader duty: it steps every running deployment, then each one
// a batch changes or a timer wakes, until ctx ends.
func (w *deploymentWatcher) Run(ctx context.Context) {
	running, err := w.store.RunningDeployments()
	if err != nil {
		w.log.Error("reading running deployments", "err", err)
	}
	w.mu.Lock()
	w.leading = true
	w.dirty, w.wakeAt, w.healthy = map[string]bool{}, map[string]int64{}, map[string]int{}
	for _, d := range running {
		w.dirty[d.ID] = true
		w.healthy[d.ID] = -1 // a new leader evaluates each once
	}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.leading = false
		w.mu.Unlock()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		for _, id := range w.takeDue() {
			w.step(id)
		}
		timer.Reset(w.nextWake())
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// takeDue returns the dirty deployments and those whose time came.
func (w *deploymentWatcher) takeDue() []string {
	now := w.now().UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, at := range w.wakeAt {
		if at <= now {
			w.dirty[id] = true
			w.healthy[id] = -1 // woken by time: evaluate (a stagger ended)
			delete(w.wakeAt, id)
		}
	}
	out := make([]string, 0, len(w.dirty))
	for id := range w.dirty {
		out = append(out, id)
	}
	clear(w.dirty)
	return out
}

// nextWake is how long until the earliest timer, at most an hour.
func (w *deploymentWatcher) nextWake() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	next := time.Hour
	now := w.now()
	for _, at := range w.wakeAt {
		if d := time.Unix(0, at).Sub(now); d < next {
			next = max(d, 0)
		}
	}
	return next
}

// step applies deploy.Step's decision for one deployment.
func (w *deploymentWatcher) step(id string) {
	d, err := w.store.Deployment(id)
	if err != nil || d == nil || !d.Active() {
		if err != nil {
			w.log.Error("reading deployment", "deployment", id, "err", err)
		}
		w.forget(id)
		return
	}
	now := w.now()
	dec := deploy.Step(d, now.UnixNano())
	evaluate := dec.Evaluate && w.progressed(d)
	log := w.log.With("deployment", d.ID, "job", d.JobID, "version", d.JobVersion)
	switch {
	case len(dec.Promote) > 0:
		log.Info("promoting canaries", "groups", dec.Promote)
		w.propose(log, &state.DeploymentPromote{ID: d.ID, Groups: dec.Promote, Time: now.UnixNano(),
			Eval: newEval(d.JobID, "deployment-promotion")})
		return // the promotion's write steps it again
	case dec.Status != "" || dec.Description != "":
		cmd := &state.DeploymentUpdate{ID: d.ID, Status: dec.Status, Description: dec.Description, Time: now.UnixNano()}
		if cmd.Status == "" {
			cmd.Status = structs.DeploymentRunning
		}
		if dec.Evaluate {
			cmd.Eval = newEval(d.JobID, "deployment-watcher")
		}
		if dec.Revert {
			if _, err := revertCommand(w.store, cmd, d, now); err != nil {
				log.Error("preparing the revert", "err", err)
			}
		}
		log.Info("deployment "+cmd.Status, "description", cmd.Description)
		w.propose(log, cmd)
	case evaluate:
		w.propose(log, &state.EvalUpsert{Evals: []*structs.Eval{newEval(d.JobID, "deployment-watcher")}})
	}
	if dec.WakeAt > 0 {
		w.mu.Lock()
		w.wakeAt[d.ID] = dec.WakeAt
		w.mu.Unlock()
	}
}

// progressed reports whether d has more healthy allocations than when it
// was last stepped (or a timer or a new leader asked for an evaluation):
// only then does a step ask the scheduler to move on, so a step caused by
// a placement or by the watcher's own write adds no evaluation.
func (w *deploymentWatcher) progressed(d *structs.Deployment) bool {
	n := 0
	for _, g := range d.Groups {
		n += g.HealthyAllocs
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.healthy[d.ID]
	w.healthy[d.ID] = n
	if !ok {
		// First heard of: the registration that created it committed its
		// evaluation already.
		return n > 0
	}
	return last != n
}

func (w *deploymentWatcher) propose(log *slog.Logger, cmd state.Command) {
	if _, _, err := w.apply(cmd); err != nil {
		log.Error("deployment watcher write", "command", fmt.Sprintf("%T", cmd), "err", err)
	}
}

func (w *deploymentWatcher) forget(id string) {
	w.mu.Lock()
	delete(w.wakeAt, id)
	delete(w.healthy, id)
	w.mu.Unlock()
}

// leaderHooks are the leader-side parts that hear of every committed
// batch through the Raft adapter: the scheduling side and the deployment
// watcher.
type leaderHooks struct {
	sched    *scheduler
	deploys  *deploymentWatcher
	periodic *periodicLauncher
}

func (h leaderHooks) watching() bool { return h.sched.watching() }

func (h leaderHooks) applied(fx *state.Effects, changes []statusChange) {
	h.sched.applied(fx, changes)
	h.deploys.applied(fx)
	if periodicJobChanged(fx.Events) {
		h.periodic.kick()
	}
}

// periodicJobChanged reports whether a batch registered, changed or
// stopped a periodic job: only then may the launcher's next wake-up move
// (at a tick it reads the state as it is then). Waking it on every batch
// would decode every job per batch: O(jobs) for each registration.
func periodicJobChanged(evs []state.Event) bool {
	for i := range evs {
		if j := evs[i].Payload.Job; j != nil && j.Job != nil && j.Job.Periodic.On() {
			return true
		}
	}
	return false
}

// newEval is a pending evaluation of a job, for a reason.
func newEval(jobID, why string) *structs.Eval {
	return &structs.Eval{ID: newEvalID(), JobID: jobID, TriggeredBy: why, Status: structs.EvalPending}
}
