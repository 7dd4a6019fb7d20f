package spec

import (
	"time"
)

// Names the job language knows. They are plain strings in the typed job;
// these constants save other packages from spelling them.
const (
	JobTypeService = "service"

	DriverWasm   = "wasm"
	DriverDocker = "docker"

	ModeHTTP     = "http"
	ModeCommand  = "command"  // not supported yet
	ModeListener = "listener" // not supported yet

	CheckHTTP = "http"
	CheckTCP  = "tcp"

	RestartFail  = "fail"
	RestartDelay = "delay"
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
	defaultAttempts      = 2
	defaultInterval      = 30 * time.Minute
	defaultDelay         = 15 * time.Second
	defaultRestartMode   = RestartFail
	defaultCheckInterval = 10 * time.Second
	defaultCheckTimeout  = 2 * time.Second // or the interval, if shorter
)

// Canonicalize fills defaults in place and turns empty lists and maps into
// nil, so that a job survives a JSON round trip unchanged. It is
// idempotent, and it leaves nil entries (a JSON null in a list) for
// Validate to report.
//
// A typed job cannot tell "absent" from zero, so Canonicalize fills only
// fields whose zero value is never valid (Type, Region, Priority, CPU,
// MemoryMB, a nil Restart, Restart.Interval and Mode, Service.Name,
// Check.Interval and Timeout). Group.Count, Restart.Attempts and
// Restart.Delay mean something at zero: JSON clients send them, and Parse
// fills them only when the file leaves them out.
func Canonicalize(j *Job) {
	if j != nil {
		canonicalize(j, nil)
	}
}

// present reports whether the attribute at key was written in the source
// file. It is nil for a job that did not come from HCL.
type present func(key string) bool

// canonicalize is the one place defaults are applied. With present == nil
// a field is unset when it is zero and zero is invalid for it; with a
// present func (Parse), a field is unset when the file does not write it,
// so an explicit "priority = 0" stays 0 and Validate reports it.
func canonicalize(j *Job, written present) {
	unset := func(at loc, zero, zeroValid bool) bool {
		if written != nil {
			return !written(at.key)
		}
		return zero && !zeroValid
	}
	root := rootLoc()

	if unset(root.attr("type"), j.Type == "", false) {
		j.Type = defaultType
	}
	if unset(root.attr("region"), j.Region == "", false) {
		j.Region = defaultRegion
	}
	if unset(root.attr("priority"), j.Priority == 0, false) {
		j.Priority = defaultPriority
	}
	j.Datacenters = nilIfEmpty(j.Datacenters)
	j.Meta = nilIfEmptyMap(j.Meta)
	j.Groups = nilIfEmpty(j.Groups)

	for gi, g := range j.Groups {
		if g == nil {
			continue
		}
		gl := root.block("group", gi, g.Name)
		if unset(gl.attr("count"), g.Count == 0, true) {
			g.Count = defaultCount
		}
		g.Meta = nilIfEmptyMap(g.Meta)
		g.Tasks = nilIfEmpty(g.Tasks)

		for ti, t := range g.Tasks {
			if t == nil {
				continue
			}
			tl := gl.block("task", ti, t.Name)
			t.Config.Args = nilIfEmpty(t.Config.Args)
			t.Env = nilIfEmptyMap(t.Env)
			t.Meta = nilIfEmptyMap(t.Meta)

			if t.Restart == nil {
				t.Restart = &RestartPolicy{
					Attempts: defaultAttempts,
					Interval: Duration(defaultInterval),
					Delay:    Duration(defaultDelay),
					Mode:     defaultRestartMode,
				}
			} else {
				r, rl := t.Restart, tl.single("restart")
				if unset(rl.attr("attempts"), r.Attempts == 0, true) {
					r.Attempts = defaultAttempts
				}
				if unset(rl.attr("interval"), r.Interval == 0, false) {
					r.Interval = Duration(defaultInterval)
				}
				if unset(rl.attr("delay"), r.Delay == 0, true) {
					r.Delay = Duration(defaultDelay)
				}
				if unset(rl.attr("mode"), r.Mode == "", false) {
					r.Mode = defaultRestartMode
				}
			}

			res, rl := &t.Resources, tl.single("resources")
			if unset(rl.attr("cpu"), res.CPU == 0, false) {
				res.CPU = defaultCPU
			}
			if unset(rl.attr("memory"), res.MemoryMB == 0, false) {
				res.MemoryMB = defaultMemoryMB
			}
			res.Networks = nilIfEmpty(res.Networks)
			for _, n := range res.Networks {
				if n != nil {
					n.Ports = nilIfEmpty(n.Ports)
				}
			}

			t.Services = nilIfEmpty(t.Services)
			for si, s := range t.Services {
				if s == nil {
					continue
				}
				sl := tl.nth("service", si)
				if unset(sl.attr("name"), s.Name == "", false) {
					s.Name = j.ID + "-" + g.Name + "-" + t.Name
				}
				s.Tags = nilIfEmpty(s.Tags)
				s.Checks = nilIfEmpty(s.Checks)
				for ci, c := range s.Checks {
					if c == nil {
						continue
					}
					cl := sl.nth("check", ci)
					if unset(cl.attr("interval"), c.Interval == 0, false) {
						c.Interval = Duration(defaultCheckInterval)
					}
					if unset(cl.attr("timeout"), c.Timeout == 0, false) {
						c.Timeout = Duration(defaultCheckTimeout)
						if c.Interval > 0 && c.Interval < c.Timeout {
							c.Timeout = c.Interval
						}
					}
				}
			}
		}
	}
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
