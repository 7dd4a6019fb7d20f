package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Limits of the job language.
const (
	maxNameLen      = 128 // job IDs, group, task and port names
	maxDNSLabel     = 63
	minMemoryMB     = 10
	minCheckEvery   = time.Second
	maxPort         = 65535
	supportedModes  = ModeHTTP
	supportedTypes  = JobTypeService
	supportedDriver = DriverWasm + ", " + DriverDocker
)

// Validate checks a typed, canonical job (run Canonicalize first on one
// received as JSON). It returns nil or Diagnostics holding every problem,
// each with a Path such as `group "web" > task "hello" > config > module`
// and no Range. Validate is pure: it reads only j.
func Validate(j *Job) error {
	ps := validate(j)
	if len(ps) == 0 {
		return nil
	}
	ds := make(Diagnostics, len(ps))
	for i, p := range ps {
		ds[i] = &Diagnostic{Path: p.at.String(), Summary: p.summary, Detail: p.detail}
	}
	return ds
}

// problem is a Validate finding before it becomes a Diagnostic: Parse turns
// its loc key into a source range.
type problem struct {
	at      loc
	summary string
	detail  string
}

type validator struct{ ps []problem }

func (v *validator) add(at loc, summary, format string, args ...any) {
	v.ps = append(v.ps, problem{at: at, summary: summary, detail: fmt.Sprintf(format, args...)})
}

func validate(j *Job) []problem {
	v := &validator{}
	root := rootLoc()
	if j == nil {
		v.add(root, "Missing job", "the job is null")
		return v.ps
	}
	v.name(root, "job ID", j.ID)

	switch j.Type {
	case JobTypeService:
	case "batch", "system", "sysbatch":
		v.add(root.attr("type"), "Unsupported job type", "job type %q is not supported yet; supported: %s", j.Type, supportedTypes)
	default:
		v.add(root.attr("type"), "Invalid job type", "unknown job type %q; supported: %s", j.Type, supportedTypes)
	}
	if j.Region == "" {
		v.add(root.attr("region"), "Invalid region", "region must not be empty")
	} else {
		v.name(root.attr("region"), "region", j.Region)
	}
	seen := map[string]bool{}
	for i, dc := range j.Datacenters {
		at := root.attr("datacenters").elem(i)
		v.name(at, "datacenter", dc)
		if seen[dc] {
			v.add(at, "Duplicate datacenter", "datacenter %q is listed twice", dc)
		}
		seen[dc] = true
	}
	if j.Priority < 1 || j.Priority > 100 {
		v.add(root.attr("priority"), "Invalid priority", "priority must be between 1 and 100, got %d", j.Priority)
	}
	v.meta(root.attr("meta"), j.Meta)

	if len(j.Groups) == 0 {
		v.add(root, "Missing group", "a job needs at least one group")
	}
	groups := map[string]bool{}
	for gi, g := range j.Groups {
		if g == nil {
			v.add(root.nth("group", gi), "Missing group", "group %d is null", gi)
			continue
		}
		at := root.block("group", gi, g.Name)
		if v.name(at, "group name", g.Name) && groups[g.Name] {
			v.add(at, "Duplicate group", "group %q is defined more than once in job %q", g.Name, j.ID)
		}
		groups[g.Name] = true
		v.group(at, j.ID, g)
	}
	return v.ps
}

func (v *validator) group(at loc, jobID string, g *Group) {
	if g.Count < 0 {
		v.add(at.attr("count"), "Invalid count", "count must be 0 or more, got %d", g.Count)
	}
	v.meta(at.attr("meta"), g.Meta)
	if len(g.Tasks) == 0 {
		v.add(at, "Missing task", "group %q needs at least one task", g.Name)
	}
	tasks := map[string]bool{}
	for ti, t := range g.Tasks {
		if t == nil {
			v.add(at.nth("task", ti), "Missing task", "task %d is null", ti)
			continue
		}
		tl := at.block("task", ti, t.Name)
		if v.name(tl, "task name", t.Name) && tasks[t.Name] {
			v.add(tl, "Duplicate task", "task %q is defined more than once in group %q", t.Name, g.Name)
		}
		tasks[t.Name] = true
		v.task(tl, t, jobID+"-"+g.Name+"-"+t.Name)
	}
}

func (v *validator) task(at loc, t *Task, derived string) {
	switch t.Driver {
	case DriverWasm:
		v.wasmConfig(at.single("config"), &t.Config)
	case DriverDocker:
		v.dockerConfig(at.single("config"), &t.Config)
	case "":
		v.add(at.attr("driver"), "Missing driver", "task %q needs a driver; supported: %s", t.Name, supportedDriver)
	default:
		v.add(at.attr("driver"), "Unsupported driver", "driver %q is not supported; supported: %s", t.Driver, supportedDriver)
	}
	for _, k := range slices.Sorted(maps.Keys(t.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.add(at.attr("env").entry(k), "Invalid environment variable", "environment variable name %q must be non-empty, without '=' or NUL", k)
		}
	}
	v.meta(at.attr("meta"), t.Meta)
	if t.Restart != nil {
		v.restart(at.single("restart"), t.Restart)
	}
	ports := v.resources(at.single("resources"), &t.Resources)
	for si, s := range t.Services {
		sl := at.nth("service", si)
		if s == nil {
			v.add(sl, "Missing service", "service %d is null", si)
			continue
		}
		v.service(sl, s, derived, ports)
	}
}

func (v *validator) wasmConfig(at loc, c *TaskConfig) {
	switch {
	case c.Module == "":
		v.add(at.attr("module"), "Missing module", `a wasm task needs config { module = "name@version" } (or "sha256:<digest>")`)
	default:
		if _, _, _, err := ParseModuleRef(c.Module); err != nil {
			v.add(at.attr("module"), "Invalid module reference", "%v", err)
		}
	}
	switch c.Mode {
	case ModeHTTP:
	case "":
		v.add(at.attr("mode"), "Missing mode", "a wasm task needs config { mode = ... }; supported: %s", supportedModes)
	case ModeCommand, ModeListener:
		v.add(at.attr("mode"), "Unsupported mode", "mode %q is not supported yet; supported: %s", c.Mode, supportedModes)
	default:
		v.add(at.attr("mode"), "Invalid mode", "unknown mode %q; supported: %s", c.Mode, supportedModes)
	}
	if c.ModuleDigest != "" {
		if err := ValidDigest(c.ModuleDigest); err != nil {
			v.add(at.attr("module_digest"), "Invalid module digest", "%v", err)
		}
	}
	if c.Image != "" {
		v.add(at.attr("image"), "Option of another driver", "image is a docker option; a wasm task takes module, mode and args")
	}
}

func (v *validator) dockerConfig(at loc, c *TaskConfig) {
	switch {
	case c.Image == "":
		v.add(at.attr("image"), "Missing image", `a docker task needs config { image = "..." }`)
	case strings.IndexFunc(c.Image, unicode.IsSpace) >= 0:
		v.add(at.attr("image"), "Invalid image", "image %q contains white space", c.Image)
	}
	for _, o := range []struct {
		name string
		set  bool
	}{{"module", c.Module != ""}, {"mode", c.Mode != ""}, {"args", len(c.Args) > 0}, {"module_digest", c.ModuleDigest != ""}} {
		if o.set {
			v.add(at.attr(o.name), "Option of another driver", "%s is a wasm option; a docker task takes image", o.name)
		}
	}
}

func (v *validator) restart(at loc, r *RestartPolicy) {
	ok := true
	if r.Attempts < 0 {
		v.add(at.attr("attempts"), "Invalid restart attempts", "attempts must be 0 or more, got %d", r.Attempts)
		ok = false
	}
	if r.Interval <= 0 {
		v.add(at.attr("interval"), "Invalid restart interval", "interval must be greater than 0, got %s", r.Interval)
		ok = false
	}
	if r.Delay < 0 {
		v.add(at.attr("delay"), "Invalid restart delay", "delay must not be negative, got %s", r.Delay)
		ok = false
	}
	switch r.Mode {
	case RestartFail, RestartDelay:
	default:
		v.add(at.attr("mode"), "Invalid restart mode", "unknown restart mode %q; supported: %s, %s", r.Mode, RestartFail, RestartDelay)
	}
	// As in Nomad: the attempts and their delays must fit in the interval.
	if ok && r.Attempts > 0 && r.Delay.D() > r.Interval.D()/time.Duration(r.Attempts) {
		v.add(at, "Invalid restart policy", "%d attempts with a delay of %s do not fit in an interval of %s", r.Attempts, r.Delay, r.Interval)
	}
}

// resources checks t's resources and returns its port labels.
func (v *validator) resources(at loc, r *Resources) map[string]bool {
	if r.CPU < 1 {
		v.add(at.attr("cpu"), "Invalid cpu", "cpu must be at least 1 MHz, got %d", r.CPU)
	}
	if r.MemoryMB < minMemoryMB {
		v.add(at.attr("memory"), "Invalid memory", "memory must be at least %d MB, got %d", minMemoryMB, r.MemoryMB)
	}
	labels := map[string]bool{}
	static := map[int]string{}
	for ni, n := range r.Networks {
		nl := at.nth("network", ni)
		if n == nil {
			v.add(nl, "Missing network", "network %d is null", ni)
			continue
		}
		if n.MBits < 0 {
			v.add(nl.attr("mbits"), "Invalid mbits", "mbits must be 0 or more, got %d", n.MBits)
		}
		for pi, p := range n.Ports {
			if p == nil {
				v.add(nl.nth("port", pi), "Missing port", "port %d is null", pi)
				continue
			}
			pl := nl.block("port", pi, p.Label)
			if v.name(pl, "port label", p.Label) && labels[p.Label] {
				v.add(pl, "Duplicate port", "port %q is declared more than once in this task", p.Label)
			}
			labels[p.Label] = true
			if p.Static < 0 || p.Static > maxPort {
				v.add(pl.attr("static"), "Invalid port", "static must be between 1 and %d, got %d", maxPort, p.Static)
			} else if other, dup := static[p.Static]; dup && p.Static != 0 {
				v.add(pl.attr("static"), "Duplicate static port", "static port %d is also used by port %q", p.Static, other)
			} else if p.Static != 0 {
				static[p.Static] = p.Label
			}
			if p.To < 0 || p.To > maxPort {
				v.add(pl.attr("to"), "Invalid port", "to must be between 1 and %d, got %d", maxPort, p.To)
			}
		}
	}
	return labels
}

// service checks s; derived is the name Canonicalize gives a service without one.
func (v *validator) service(at loc, s *Service, derived string, ports map[string]bool) {
	if err := validDNSLabel(s.Name); err != nil {
		hint := ""
		if s.Name == derived {
			hint = fmt.Sprintf(" (the name is derived as <job>-<group>-<task>; set service { name = %q } or rename)", strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(derived)))
		}
		v.add(at.attr("name"), "Invalid service name", "%v%s", err, hint)
	}
	for i, tag := range s.Tags {
		if tag == "" || strings.IndexFunc(tag, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			v.add(at.attr("tags").elem(i), "Invalid tag", "tag %q must be non-empty, without white space", tag)
		}
	}
	switch {
	case s.Port == "" && len(s.Checks) > 0:
		v.add(at.attr("port"), "Missing port", "service %q has checks, so it needs a port to check", s.Name)
	case s.Port != "" && !ports[s.Port]:
		declared := "none"
		if len(ports) > 0 {
			declared = joinSorted(ports)
		}
		v.add(at.attr("port"), "Undeclared port", "port %q is not declared in this task's network blocks (declared: %s); add resources { network { port %q {} } }", s.Port, declared, s.Port)
	}
	for ci, c := range s.Checks {
		cl := at.nth("check", ci)
		if c == nil {
			v.add(cl, "Missing check", "check %d is null", ci)
			continue
		}
		v.check(cl, c)
	}
}

func (v *validator) check(at loc, c *Check) {
	switch c.Type {
	case CheckHTTP:
		switch {
		case c.Path == "":
			v.add(at.attr("path"), "Missing check path", `an http check needs a path, like path = "/health"`)
		case !strings.HasPrefix(c.Path, "/"):
			v.add(at.attr("path"), "Invalid check path", "path %q must start with \"/\"", c.Path)
		}
	case CheckTCP:
		if c.Path != "" {
			v.add(at.attr("path"), "Invalid check path", "path is only for http checks")
		}
	case "":
		v.add(at.attr("type"), "Missing check type", "a check needs a type; supported: %s, %s", CheckHTTP, CheckTCP)
	default:
		v.add(at.attr("type"), "Invalid check type", "unknown check type %q; supported: %s, %s", c.Type, CheckHTTP, CheckTCP)
	}
	if c.Interval.D() < minCheckEvery {
		v.add(at.attr("interval"), "Invalid check interval", "interval must be at least %s, got %s", minCheckEvery, c.Interval)
	}
	switch {
	case c.Timeout <= 0:
		v.add(at.attr("timeout"), "Invalid check timeout", "timeout must be greater than 0, got %s", c.Timeout)
	case c.Interval.D() >= minCheckEvery && c.Timeout > c.Interval:
		v.add(at.attr("timeout"), "Invalid check timeout", "timeout %s must not be longer than the interval %s", c.Timeout, c.Interval)
	}
}

// name checks a job ID, group, task or port name and reports whether it is valid.
func (v *validator) name(at loc, what, s string) bool {
	if err := validName(what, s); err != nil {
		v.add(at, "Invalid "+what, "%v", err)
		return false
	}
	return true
}

func (v *validator) meta(at loc, m map[string]string) {
	if _, empty := m[""]; empty {
		v.add(at, "Invalid meta", "meta keys must not be empty")
	}
}

func validName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s must not be empty", what)
	case len(s) > maxNameLen:
		return fmt.Errorf("%s %.20q... is %d characters long; the limit is %d", what, s, len(s), maxNameLen)
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%s %q contains %q: use letters, digits, '_', '.' and '-'", what, s, c)
		}
	}
	return nil
}

// validDNSLabel checks a service name: RFC 1123 label in lowercase.
func validDNSLabel(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("service name must not be empty")
	case len(s) > maxDNSLabel:
		return fmt.Errorf("service name %q is %d characters long; a DNS label holds at most %d", s, len(s), maxDNSLabel)
	case s[0] == '-' || s[len(s)-1] == '-':
		return fmt.Errorf("service name %q must not start or end with '-' (it is a DNS label)", s)
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("service name %q contains %q; it is a DNS label: use lowercase letters, digits and '-'", s, c)
		}
	}
	return nil
}

func joinSorted(set map[string]bool) string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, fmt.Sprintf("%q", k))
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}
