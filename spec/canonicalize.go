package spec

import (
	"slices"
	"time"
)

// Names the job language knows. They are plain strings in the typed job;
// these constants save other packages from spelling them.
const (
	JobTypeService = "service"
	JobTypeBatch   = "batch"
	JobTypeSystem  = "system"

	DriverWasm   = "wasm"
	DriverDocker = "docker"

	ModeHTTP     = "http"
	ModeCommand  = "command"
	ModeListener = "listener"

	CheckHTTP = "http"
	CheckTCP  = "tcp"

	RestartFail  = "fail"
	RestartDelay = "delay"

	DelayConstant    = "constant"
	DelayExponential = "exponential"
	DelayFibonacci   = "fibonacci"

	// Reconcile strategies. Strata implements keep_original (its default)
	// and keep_replacement; Nomad's best_score and longest_running are
	// named here only to be refused with a message saying so.
	ReconcileBestScore       = "best_score"
	ReconcileKeepOriginal    = "keep_original"
	ReconcileKeepReplacement = "keep_replacement"
	ReconcileLongestRunning  = "longest_running"

	HookPrestart  = "prestart"
	HookPoststart = "poststart"
	HookPoststop  = "poststop"
)

// Constraint and affinity operators (Nomad's). Canonicalize turns
// "set_contains_all", Nomad's affinity spelling, into OpSetContains.
const (
	OpEqual          = "="
	OpNotEqual       = "!="
	OpGreater        = ">"
	OpGreaterEqual   = ">="
	OpLess           = "<"
	OpLessEqual      = "<="
	OpRegexp         = "regexp"
	OpSetContains    = "set_contains"
	OpSetContainsAny = "set_contains_any"
	OpVersion        = "version"
	OpSemver         = "semver"
	OpIsSet          = "is_set"
	OpIsNotSet       = "is_not_set"
	OpDistinctHosts  = "distinct_hosts"

	opSetContainsAll = "set_contains_all"
)

// The defaults table. doc.go repeats it for people; this is the only place
// the values live, and canonicalize the only code that applies them.
const (
	defaultType          = JobTypeService
	defaultRegion        = "global"
	defaultPriority      = 50
	defaultCount         = 1
	defaultCPU           = 100 // MHz
	defaultMemoryMB      = 300
	defaultCheckInterval = 10 * time.Second
	defaultCheckTimeout  = 2 * time.Second // or the interval, if shorter

	defaultCheckRestartGrace = time.Second // Nomad's
	defaultKillTimeout       = 5 * time.Second
	defaultOperator          = OpEqual
	defaultWeight            = 50 // affinity and spread
	defaultReconcile         = ReconcileKeepOriginal
	defaultReplace           = true
)

// defaultUpdate is the rolling update of service and system groups.
var defaultUpdate = Update{
	MaxParallel:      1,
	Stagger:          Duration(30 * time.Second),
	MinHealthyTime:   Duration(10 * time.Second),
	HealthyDeadline:  Duration(5 * time.Minute),
	ProgressDeadline: Duration(10 * time.Minute),
	HealthCheck:      HealthChecks,
}

// defaultCanaryTags are a canary's service tags unless the service names its own.
var defaultCanaryTags = []string{"canary"}

// defaultRestart is Nomad's restart policy by job type.
func defaultRestart(jobType string) RestartPolicy {
	if jobType == JobTypeBatch {
		return RestartPolicy{Attempts: 3, Interval: Duration(24 * time.Hour), Delay: Duration(15 * time.Second), Mode: RestartFail}
	}
	return RestartPolicy{Attempts: 2, Interval: Duration(30 * time.Minute), Delay: Duration(15 * time.Second), Mode: RestartFail}
}

// defaultReschedule is Nomad's reschedule policy by job type; system jobs
// have none (they run on every node).
func defaultReschedule(jobType string) *Reschedule {
	switch jobType {
	case JobTypeSystem:
		return nil
	case JobTypeBatch:
		return &Reschedule{Attempts: 1, Interval: Duration(24 * time.Hour), Delay: Duration(5 * time.Second), DelayFunction: DelayConstant}
	}
	return &Reschedule{Delay: Duration(30 * time.Second), DelayFunction: DelayExponential, MaxDelay: Duration(time.Hour), Unlimited: true}
}

// Canonicalize fills defaults in place and turns empty lists and maps into
// nil, so that a job survives a JSON round trip unchanged. It is
// idempotent, and it leaves nil entries (a JSON null in a list) for
// Validate to report.
//
// A typed job cannot tell "absent" from zero, so Canonicalize fills only
// fields whose zero value is never valid (see the defaults table in the
// package documentation: "absent / 0"). Fields that mean something at zero
// (Group.Count, Restart.Attempts, Update.MaxParallel, ...) are filled by
// Parse only, when the file leaves them out.
//
// Inheritance is resolved here too, so that consumers read one place: a
// task's restart policy is its own over its group's over the job type's
// default; a service or system group's update strategy is its own over the
// job's over the default.
func Canonicalize(j *Job) {
	if j != nil {
		canonicalize(j, nil)
	}
}

// present reports whether the attribute name of the block at in was
// written in the source file. It is nil for a job that did not come from
// HCL.
type present func(in loc, name string) bool

// canon applies defaults. With written == nil a field is unset when it is
// zero and zero is invalid for it; with a written func (Parse), a field is
// unset when the file does not write it, so an explicit "priority = 0"
// stays 0 and Validate reports it.
type canon struct{ written present }

func (c canon) unset(in loc, name string, zero, zeroValid bool) bool {
	if c.written != nil {
		return !c.written(in, name)
	}
	return zero && !zeroValid
}

// canonicalize is the one place defaults are applied.
func canonicalize(j *Job, written present) {
	c := canon{written}
	root := rootLoc()

	if c.unset(root, "type", j.Type == "", false) {
		j.Type = defaultType
	}
	if c.unset(root, "region", j.Region == "", false) {
		j.Region = defaultRegion
	}
	if c.unset(root, "priority", j.Priority == 0, false) {
		j.Priority = defaultPriority
	}
	j.Datacenters = nilIfEmpty(j.Datacenters)
	j.Meta = nilIfEmptyMap(j.Meta)
	j.Constraints = c.constraints(root, j.Constraints)
	j.Affinities = c.affinities(root, j.Affinities)
	j.Spreads = c.spreads(root, j.Spreads)
	if j.Update != nil {
		c.update(j.Update, root.single("update"), &defaultUpdate)
	}
	j.Groups = nilIfEmpty(j.Groups)
	if p := j.Parameterized; p != nil {
		if c.unset(root.single("parameterized"), "payload", p.Payload == "", false) {
			p.Payload = PayloadOptional
		}
		p.MetaRequired = nilIfEmpty(p.MetaRequired)
		p.MetaOptional = nilIfEmpty(p.MetaOptional)
	}
	if len(j.Payload) == 0 {
		j.Payload = nil
	}

	restart := defaultRestart(j.Type)
	for gi, g := range j.Groups {
		if g == nil {
			continue
		}
		gl := root.block("group", gi, g.Name)
		if c.unset(gl, "count", g.Count == 0, true) {
			g.Count = defaultCount
		}
		g.Meta = nilIfEmptyMap(g.Meta)
		g.Constraints = c.constraints(gl, g.Constraints)
		g.Affinities = c.affinities(gl, g.Affinities)
		g.Spreads = c.spreads(gl, g.Spreads)

		groupRestart := &restart
		if g.Restart != nil {
			c.restart(g.Restart, gl.single("restart"), &restart)
			groupRestart = g.Restart
		}
		if def := defaultReschedule(j.Type); g.Reschedule == nil {
			g.Reschedule = def
		} else if def != nil {
			c.reschedule(g.Reschedule, gl.single("reschedule"), def)
		}
		parentUpdate := &defaultUpdate
		if j.Update != nil {
			parentUpdate = j.Update
		}
		switch {
		case g.Update != nil:
			c.update(g.Update, gl.single("update"), parentUpdate)
		case j.Type != JobTypeBatch:
			u := *parentUpdate
			g.Update = &u
		}
		if d := g.Disconnect; d != nil {
			if d.Replace == nil {
				r := defaultReplace
				d.Replace = &r
			}
			if c.unset(gl.single("disconnect"), "reconcile", d.Reconcile == "", false) {
				d.Reconcile = defaultReconcile
			}
		}
		g.Networks = networks(g.Networks)
		g.Services = c.services(gl, g.Services, j.ID+"-"+g.Name)
		g.Volumes = nilIfEmpty(g.Volumes)
		g.Tasks = nilIfEmpty(g.Tasks)

		for ti, t := range g.Tasks {
			if t == nil {
				continue
			}
			tl := gl.block("task", ti, t.Name)
			t.Config.Args = nilIfEmpty(t.Config.Args)
			t.Config.Mounts = nilIfEmpty(t.Config.Mounts)
			t.VolumeMounts = nilIfEmpty(t.VolumeMounts)
			t.Config.Ports = nilIfEmpty(t.Config.Ports)
			t.Env = nilIfEmptyMap(t.Env)
			t.Meta = nilIfEmptyMap(t.Meta)

			if t.Restart == nil {
				r := *groupRestart
				t.Restart = &r
			} else {
				c.restart(t.Restart, tl.single("restart"), groupRestart)
			}

			res, rl := &t.Resources, tl.single("resources")
			if c.unset(rl, "cpu", res.CPU == 0, false) {
				res.CPU = defaultCPU
			}
			if c.unset(rl, "memory", res.MemoryMB == 0, false) {
				res.MemoryMB = defaultMemoryMB
			}
			res.Networks = networks(res.Networks)
			t.Services = c.services(tl, t.Services, j.ID+"-"+g.Name+"-"+t.Name)
			if c.unset(tl, "kill_timeout", t.KillTimeout == 0, false) {
				t.KillTimeout = Duration(defaultKillTimeout)
			}
		}
	}
}

// restart fills r's unset fields from parent.
func (c canon) restart(r *RestartPolicy, at loc, parent *RestartPolicy) {
	if c.unset(at, "attempts", r.Attempts == 0, true) {
		r.Attempts = parent.Attempts
	}
	if c.unset(at, "interval", r.Interval == 0, false) {
		r.Interval = parent.Interval
	}
	if c.unset(at, "delay", r.Delay == 0, true) {
		r.Delay = parent.Delay
	}
	if c.unset(at, "mode", r.Mode == "", false) {
		r.Mode = parent.Mode
	}
}

// update fills u's unset fields from parent.
func (c canon) update(u *Update, at loc, parent *Update) {
	if c.unset(at, "max_parallel", u.MaxParallel == 0, true) {
		u.MaxParallel = parent.MaxParallel
	}
	if c.unset(at, "stagger", u.Stagger == 0, false) {
		u.Stagger = parent.Stagger
	}
	if c.unset(at, "min_healthy_time", u.MinHealthyTime == 0, true) {
		u.MinHealthyTime = parent.MinHealthyTime
	}
	if c.unset(at, "healthy_deadline", u.HealthyDeadline == 0, false) {
		u.HealthyDeadline = parent.HealthyDeadline
	}
	if c.unset(at, "progress_deadline", u.ProgressDeadline == 0, false) {
		u.ProgressDeadline = parent.ProgressDeadline
	}
	if c.unset(at, "health_check", u.HealthCheck == "", false) {
		u.HealthCheck = parent.HealthCheck
	}
	if c.unset(at, "canary", u.Canary == 0, true) {
		u.Canary = parent.Canary
	}
	if c.unset(at, "auto_revert", !u.AutoRevert, true) {
		u.AutoRevert = parent.AutoRevert
	}
	if c.unset(at, "auto_promote", !u.AutoPromote, true) {
		u.AutoPromote = parent.AutoPromote
	}
}

// reschedule fills r's unset fields from the job type's default.
//
// One departure from a plain merge: a file that writes attempts > 0 but
// not unlimited gets unlimited = false. Merged with the service default
// (unlimited = true) it would be the contradiction Validate rejects, which
// is Nomad's behaviour and a trap nobody means to set.
func (c canon) reschedule(r *Reschedule, at loc, def *Reschedule) {
	if c.unset(at, "attempts", r.Attempts == 0, true) {
		r.Attempts = def.Attempts
	}
	if c.unset(at, "interval", r.Interval == 0, true) {
		r.Interval = def.Interval
	}
	if c.unset(at, "delay", r.Delay == 0, false) {
		r.Delay = def.Delay
	}
	if c.unset(at, "delay_function", r.DelayFunction == "", false) {
		r.DelayFunction = def.DelayFunction
	}
	if c.unset(at, "max_delay", r.MaxDelay == 0, r.DelayFunction == DelayConstant) {
		r.MaxDelay = def.MaxDelay
	}
	if c.unset(at, "unlimited", !r.Unlimited, true) {
		r.Unlimited = def.Unlimited && !(c.written != nil && c.written(at, "attempts") && r.Attempts > 0)
	}
}

func (c canon) constraints(at loc, cs []*Constraint) []*Constraint {
	for i, k := range cs {
		if k == nil {
			continue
		}
		if c.unset(at.nth("constraint", i), "operator", k.Operator == "", false) {
			k.Operator = defaultOperator
		}
		if k.Operator == opSetContainsAll {
			k.Operator = OpSetContains
		}
	}
	return nilIfEmpty(cs)
}

func (c canon) affinities(at loc, as []*Affinity) []*Affinity {
	for i, a := range as {
		if a == nil {
			continue
		}
		al := at.nth("affinity", i)
		if c.unset(al, "operator", a.Operator == "", false) {
			a.Operator = defaultOperator
		}
		if a.Operator == opSetContainsAll {
			a.Operator = OpSetContains
		}
		if c.unset(al, "weight", a.Weight == 0, false) {
			a.Weight = defaultWeight
		}
	}
	return nilIfEmpty(as)
}

func (c canon) spreads(at loc, ss []*Spread) []*Spread {
	for i, s := range ss {
		if s == nil {
			continue
		}
		if c.unset(at.nth("spread", i), "weight", s.Weight == 0, false) {
			s.Weight = defaultWeight
		}
		s.Targets = nilIfEmpty(s.Targets)
	}
	return nilIfEmpty(ss)
}

func networks(ns []*Network) []*Network {
	for _, n := range ns {
		if n != nil {
			n.Ports = nilIfEmpty(n.Ports)
		}
	}
	return nilIfEmpty(ns)
}

// services fills names (derived: the default name) and check timings.
func (c canon) services(at loc, ss []*Service, derived string) []*Service {
	for si, s := range ss {
		if s == nil {
			continue
		}
		sl := at.nth("service", si)
		if c.unset(sl, "name", s.Name == "", false) {
			s.Name = derived
		}
		s.Tags = nilIfEmpty(s.Tags)
		if c.unset(sl, "canary_tags", len(s.CanaryTags) == 0, false) {
			s.CanaryTags = slices.Clone(defaultCanaryTags)
		}
		s.Checks = nilIfEmpty(s.Checks)
		for ci, k := range s.Checks {
			if k == nil {
				continue
			}
			cl := sl.nth("check", ci)
			if c.unset(cl, "interval", k.Interval == 0, false) {
				k.Interval = Duration(defaultCheckInterval)
			}
			if c.unset(cl, "timeout", k.Timeout == 0, false) {
				k.Timeout = Duration(defaultCheckTimeout)
				if k.Interval > 0 && k.Interval < k.Timeout {
					k.Timeout = k.Interval
				}
			}
			if cr := k.CheckRestart; cr != nil && c.unset(cl.single("check_restart"), "grace", cr.Grace == 0, false) {
				cr.Grace = Duration(defaultCheckRestartGrace)
			}
		}
	}
	return nilIfEmpty(ss)
}

func nilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

func nilIfEmptyMap[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return m
}
