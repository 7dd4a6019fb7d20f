package spec

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Limits of the job language.
const (
	maxNameLen         = 128 // job IDs, group, task and port names
	maxDNSLabel        = 63
	minMemoryMB        = 10
	minCheckEvery      = time.Second
	maxPort            = 65535
	minRestartInterval = 5 * time.Second
	minRescheduleDelay = 5 * time.Second
	supportedModes     = ModeCommand + ", " + ModeHTTP + ", " + ModeListener
	supportedTypes     = JobTypeService + ", " + JobTypeBatch + ", " + JobTypeSystem
	supportedDriver    = DriverWasm + ", " + DriverDocker
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
	if j.ParentID == "" { // a child's ID is checked by v.periodic
		v.name(root, "job ID", j.ID)
	}

	switch j.Type {
	case JobTypeService, JobTypeBatch, JobTypeSystem:
	case "sysbatch":
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
	v.placement(root, j.Type, j.Constraints, j.Affinities, j.Spreads)
	if j.Update != nil {
		if j.Type == JobTypeBatch {
			v.add(root.single("update"), "Update not allowed", "batch jobs have no rolling updates: remove the update block (service and system jobs take one)")
		} else {
			v.update(root.single("update"), j.Update)
		}
	}

	v.periodic(j)
	v.parameterized(j)
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
		v.group(at, j, g)
	}
	return v.ps
}

// NetworkModeHost is the one network mode: tasks bind the node's ports.
const NetworkModeHost = "host"

// portSet is the ports a group declares: label -> where ("the group", or "task \"x\"").
type portSet map[string]string

func (ps portSet) labels() string {
	if len(ps) == 0 {
		return "none"
	}
	set := make(map[string]bool, len(ps))
	for l := range ps {
		set[l] = true
	}
	return joinSorted(set)
}

func (v *validator) group(at loc, j *Job, g *Group) {
	switch {
	case g.Count < 0:
		v.add(at.attr("count"), "Invalid count", "count must be 0 or more, got %d", g.Count)
	case g.Count > MaxCount:
		v.add(at.attr("count"), "Invalid count", "count %d is over the limit of %d copies per group", g.Count, MaxCount)
	}
	if j.Type == JobTypeSystem && g.Count > 1 {
		v.add(at.attr("count"), "Invalid count", "a system job runs one copy on every node: count may be 0 or 1, got %d", g.Count)
	}
	v.meta(at.attr("meta"), g.Meta)
	v.placement(at, j.Type, g.Constraints, g.Affinities, g.Spreads)
	if g.Restart != nil {
		v.restart(at.single("restart"), g.Restart)
	}
	if g.Reschedule != nil {
		if j.Type == JobTypeSystem {
			v.add(at.single("reschedule"), "Reschedule not allowed", "a system job runs on every node, so its allocations are never rescheduled elsewhere: remove the reschedule block")
		} else {
			v.reschedule(at.single("reschedule"), g.Reschedule)
		}
	}
	// An update or restart inherited whole from the level above was
	// checked there; checking the copy would report its problems twice.
	if g.Update != nil && (j.Update == nil || *g.Update != *j.Update) {
		if j.Type == JobTypeBatch {
			v.add(at.single("update"), "Update not allowed", "batch jobs have no rolling updates: remove the update block (service and system jobs take one)")
		} else {
			v.update(at.single("update"), g.Update)
		}
	}
	if g.Disconnect != nil {
		v.disconnect(at.single("disconnect"), g.Disconnect, j.Type)
	}
	if g.ShutdownDelay < 0 {
		v.add(at.attr("shutdown_delay"), "Invalid shutdown_delay", "shutdown_delay must not be negative, got %s", g.ShutdownDelay)
	}

	// Port labels and static ports are unique in the group: all its tasks
	// run on one node and share its ports.
	groupPorts := portSet{}
	static := map[int]string{}
	v.networks(at, g.Networks, "the group", groupPorts, static)
	taskPorts := make([]portSet, len(g.Tasks))
	all := portSet{}
	for l, w := range groupPorts {
		all[l] = w
	}
	for ti, t := range g.Tasks {
		if t == nil {
			continue
		}
		rl := at.block("task", ti, t.Name).single("resources")
		owner := fmt.Sprintf("task %q", t.Name)
		own := portSet{}
		v.networks(rl, t.Resources.Networks, owner, own, static)
		for ni, n := range t.Resources.Networks {
			if n == nil {
				continue
			}
			for pi, p := range n.Ports {
				if p == nil {
					continue
				}
				if prev, dup := all[p.Label]; dup && prev != owner {
					v.add(rl.nth("network", ni).block("port", pi, p.Label), "Duplicate port", "port %q is also declared by %s; port labels are unique in a group", p.Label, prev)
					continue
				}
				all[p.Label] = owner
			}
		}
		taskPorts[ti] = own
	}

	vols := v.volumes(at, g.Volumes)

	for si, s := range g.Services {
		sl := at.nth("service", si)
		if s == nil {
			v.add(sl, "Missing service", "service %d is null", si)
			continue
		}
		v.service(sl, s, serviceScope{derived: j.ID + "-" + g.Name, how: "<job>-<group>", ports: all,
			where: "this group's or its tasks'", add: "network { port %q {} } to the group"})
	}

	if len(g.Tasks) == 0 {
		v.add(at, "Missing task", "group %q needs at least one task", g.Name)
	}
	tasks := map[string]bool{}
	main := 0
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
		if t.Lifecycle == nil {
			main++
		}
		usable := portSet{}
		for l, w := range groupPorts {
			usable[l] = w
		}
		for l, w := range taskPorts[ti] {
			usable[l] = w
		}
		meta := map[string]string{}
		if p := j.Parameterized; p != nil { // set by each dispatch
			for _, k := range append(slices.Clone(p.MetaRequired), p.MetaOptional...) {
				meta[k] = ""
			}
		}
		maps.Copy(meta, j.Meta)
		maps.Copy(meta, g.Meta)
		maps.Copy(meta, t.Meta)
		v.task(tl, t, g.Restart, j.ID+"-"+g.Name+"-"+t.Name, taskPorts[ti], usable, all, groupPorts, meta)
		v.volumeMounts(tl, t.VolumeMounts, vols)
	}
	if main == 0 && len(g.Tasks) > 0 {
		v.add(at, "Missing main task", "every task of group %q has a lifecycle hook; a group needs at least one main task (without lifecycle)", g.Name)
	}
}

// task checks t. groupRestart is the policy it may have inherited; own
// are its own ports, usable its own and its group's (what its services,
// docker ports and wasm modes may name), all every port of the group (what
// runtime variables may name), group the group's own.
func (v *validator) task(at loc, t *Task, groupRestart *RestartPolicy, derived string, own, usable, all, group portSet, meta map[string]string) {
	cl := at.single("config")
	switch t.Driver {
	case DriverWasm:
		v.wasmConfig(cl, &t.Config, own, usable, group)
	case DriverDocker:
		v.dockerConfig(cl, &t.Config, usable)
	case "":
		v.add(at.attr("driver"), "Missing driver", "task %q needs a driver; supported: %s", t.Name, supportedDriver)
	default:
		v.add(at.attr("driver"), "Unsupported driver", "driver %q is not supported; supported: %s", t.Driver, supportedDriver)
	}
	rs := &runtimeScope{ports: all, meta: meta}
	for i, a := range t.Config.Args {
		v.template(cl.attr("args").elem(i), a, refRuntime, rs)
	}
	v.template(cl.attr("command"), t.Config.Command, refRuntime, rs)
	for _, k := range slices.Sorted(maps.Keys(t.Env)) {
		el := at.attr("env").entry(k)
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.add(el, "Invalid environment variable", "environment variable name %q must be non-empty, without '=' or NUL", k)
		}
		v.template(el, t.Env[k], refRuntime, rs)
	}
	v.meta(at.attr("meta"), t.Meta)
	if t.Restart != nil && (groupRestart == nil || *t.Restart != *groupRestart) {
		v.restart(at.single("restart"), t.Restart)
	}
	v.resources(at.single("resources"), &t.Resources)
	if t.KillTimeout < 0 {
		v.add(at.attr("kill_timeout"), "Invalid kill_timeout", "kill_timeout must not be negative, got %s", t.KillTimeout)
	}
	if t.ShutdownDelay < 0 {
		v.add(at.attr("shutdown_delay"), "Invalid shutdown_delay", "shutdown_delay must not be negative, got %s", t.ShutdownDelay)
	}
	if lc := t.Lifecycle; lc != nil {
		ll := at.single("lifecycle")
		switch lc.Hook {
		case HookPrestart, HookPoststart:
		case HookPoststop:
			v.add(ll.attr("hook"), "Unsupported lifecycle hook", "hook %q is not supported: agents run prestart tasks before the main tasks and poststart tasks once they run, but nothing after they stop; use %s or %s", lc.Hook, HookPrestart, HookPoststart)
		case "":
			v.add(ll.attr("hook"), "Missing lifecycle hook", "lifecycle needs a hook: %s, %s or %s", HookPrestart, HookPoststart, HookPoststop)
		default:
			v.add(ll.attr("hook"), "Invalid lifecycle hook", "unknown hook %q; supported: %s, %s, %s", lc.Hook, HookPrestart, HookPoststart, HookPoststop)
		}
	}
	commandMode := t.Driver == DriverWasm && t.Config.Mode == ModeCommand
	for si, s := range t.Services {
		sl := at.nth("service", si)
		if s == nil {
			v.add(sl, "Missing service", "service %d is null", si)
			continue
		}
		v.service(sl, s, serviceScope{derived: derived, how: "<job>-<group>-<task>", ports: usable,
			where: "this task's or its group's", add: "resources { network { port %q {} } }"})
		if commandMode {
			for ci, c := range s.Checks {
				if c != nil {
					v.add(sl.nth("check", ci), "Check of a command task", "a wasm task in mode \"command\" cannot accept connections (WASI preview 1 has no sockets unless the agent opens one, which modes \"http\" and \"listener\" do), so its services cannot be checked")
				}
			}
		}
	}
}

func (v *validator) wasmConfig(at loc, c *TaskConfig, own, usable, group portSet) {
	switch {
	case c.Module == "":
		v.add(at.attr("module"), "Missing module", `a wasm task needs config { module = "name@version" } (or "sha256:<digest>")`)
	default:
		if _, _, _, err := ParseModuleRef(c.Module); err != nil {
			v.add(at.attr("module"), "Invalid module reference", "%v", err)
		}
	}
	switch c.Mode {
	case ModeHTTP, ModeListener:
		v.servedPort(at, c, own, usable, group)
	case ModeCommand:
	case "":
		v.add(at.attr("mode"), "Missing mode", "a wasm task needs config { mode = ... }; supported: %s", supportedModes)
	default:
		v.add(at.attr("mode"), "Invalid mode", "unknown mode %q; supported: %s", c.Mode, supportedModes)
	}
	modeOnly := func(name, mode string, set bool) {
		if set && c.Mode != mode && c.Mode != "" {
			v.add(at.attr(name), "Option of another mode", "%s applies to mode %q only; this task's mode is %q", name, mode, c.Mode)
		}
	}
	modeOnly("max_request_time", ModeHTTP, c.MaxRequestTime != 0)
	modeOnly("max_concurrency", ModeHTTP, c.MaxConcurrency != 0)
	modeOnly("max_runtime", ModeCommand, c.MaxRuntime != 0)
	if c.Port != "" && c.Mode == ModeCommand {
		v.add(at.attr("port"), "Option of another mode", "port applies to modes %q and %q, which serve on it; this task's mode is %q", ModeHTTP, ModeListener, c.Mode)
	}
	if c.MaxRequestTime < 0 {
		v.add(at.attr("max_request_time"), "Invalid max_request_time", "max_request_time must not be negative, got %s", c.MaxRequestTime)
	}
	if c.MaxConcurrency < 0 {
		v.add(at.attr("max_concurrency"), "Invalid max_concurrency", "max_concurrency must be 0 (no bound) or more, got %d", c.MaxConcurrency)
	}
	if c.MaxRuntime < 0 {
		v.add(at.attr("max_runtime"), "Invalid max_runtime", "max_runtime must not be negative, got %s", c.MaxRuntime)
	}
	v.hostPaths(at, c.Mounts)
	if c.ModuleDigest != "" {
		if err := ValidDigest(c.ModuleDigest); err != nil {
			v.add(at.attr("module_digest"), "Invalid module digest", "%v", err)
		}
	}
	for _, o := range []struct {
		name string
		set  bool
	}{{"image", c.Image != ""}, {"command", c.Command != ""}, {"ports", len(c.Ports) > 0}} {
		if o.set {
			v.add(at.attr(o.name), "Option of another driver", "%s is a docker option; a wasm task takes module, mode, port, args, max_request_time, max_concurrency and max_runtime", o.name)
		}
	}
}

// servedPort checks that a task in mode http or listener has a port to
// serve on (Group.ServedPort): the one its config names, which must be its
// own or its group's, else its first own port, else its group's only one.
func (v *validator) servedPort(at loc, c *TaskConfig, own, usable, group portSet) {
	switch {
	case c.Port != "":
		if usable[c.Port] == "" {
			v.add(at.attr("port"), "Undeclared port", "port %q is not declared in this task's or its group's network blocks (declared: %s); add network { port %q {} } to the group", c.Port, usable.labels(), c.Port)
		}
	case len(own) > 0 || len(group) == 1:
	case len(group) > 1:
		v.add(at.attr("mode"), "Missing port", "mode %q serves on one port and the group declares %d (%s): name it with config { port = \"...\" }", c.Mode, len(group), group.labels())
	default:
		v.add(at.attr("mode"), "Missing port", "mode %q serves on a port: declare one in the group's network { port \"http\" {} } (or the task's resources { network { ... } }), and name it with config { port = \"http\" } if there are several", c.Mode)
	}
}

// hostVolumeHint is what a job writes instead of a host path.
const hostVolumeHint = `ask the agent's operator to declare the directory as a host volume (strata agent -host-volume NAME=PATH[:ro]), ` +
	`then request it in the group with volume "data" { type = "host"  source = "NAME"  read_only = true } ` +
	`and mount it in the task with volume_mount { volume = "data"  destination = "/data" }`

// hostPaths refuses config mount blocks: a job may not choose host paths.
func (v *validator) hostPaths(at loc, ms []*Mount) {
	for mi, m := range ms {
		src := ""
		if m != nil && m.Source != "" {
			src = fmt.Sprintf(" (source = %q)", m.Source)
		}
		v.add(at.nth("mount", mi), "Host path not allowed", "config { mount { ... } } mounts a host path the job chooses%s, which Strata refuses: %s", src, hostVolumeHint)
	}
}

// volumes checks a group's volume requests.
func (v *validator) volumes(at loc, vs []*Volume) map[string]*Volume {
	byName := map[string]*Volume{}
	for vi, vol := range vs {
		if vol == nil {
			v.add(at.nth("volume", vi), "Missing volume", "volume %d is null", vi)
			continue
		}
		vl := at.block("volume", vi, vol.Name)
		if v.name(vl, "volume name", vol.Name) {
			if byName[vol.Name] != nil {
				v.add(vl, "Duplicate volume", "volume %q is declared more than once in the group", vol.Name)
			}
			byName[vol.Name] = vol
		}
		switch vol.Type {
		case VolumeTypeHost:
		case "csi":
			v.add(vl.attr("type"), "Unsupported volume type", "CSI volumes are not supported; type = %q mounts a host volume an agent declares", VolumeTypeHost)
		case "":
			v.add(vl.attr("type"), "Missing volume type", "a volume needs type = %q (a host volume an agent declares with -host-volume)", VolumeTypeHost)
		default:
			v.add(vl.attr("type"), "Invalid volume type", "unknown volume type %q; supported: %s", vol.Type, VolumeTypeHost)
		}
		if vol.Source == "" {
			v.add(vl.attr("source"), "Missing volume source", "source names the host volume, as an agent declares it with -host-volume NAME=PATH")
		} else {
			v.name(vl.attr("source"), "host volume name", vol.Source)
		}
	}
	return byName
}

// volumeMounts checks a task's volume mounts against its group's volumes.
func (v *validator) volumeMounts(at loc, ms []*VolumeMount, vols map[string]*Volume) {
	dests := map[string]bool{}
	for mi, m := range ms {
		ml := at.nth("volume_mount", mi)
		if m == nil {
			v.add(ml, "Missing volume_mount", "volume_mount %d is null", mi)
			continue
		}
		switch {
		case m.Volume == "":
			v.add(ml.attr("volume"), "Missing volume", "volume_mount needs volume = the name of one of the group's volume blocks")
		case vols[m.Volume] == nil:
			v.add(ml.attr("volume"), "Undeclared volume", "volume %q is not declared in the group (declared: %s); add volume %q { type = \"host\"  source = \"NAME\" } to the group", m.Volume, volumeNames(vols), m.Volume)
		}
		if err := absPath(m.Destination); err != nil {
			v.add(ml.attr("destination"), "Invalid destination", "destination (where the task sees the volume) %v", err)
		} else if d := path.Clean(m.Destination); d == "/alloc" || d == "/local" || strings.HasPrefix(d, "/alloc/") || strings.HasPrefix(d, "/local/") {
			v.add(ml.attr("destination"), "Reserved destination", "destination %q is inside /alloc or /local, where the agent mounts the allocation's directories (NOMAD_ALLOC_DIR, NOMAD_TASK_DIR)", m.Destination)
		} else if dests[m.Destination] {
			v.add(ml.attr("destination"), "Duplicate destination", "destination %q is mounted twice", m.Destination)
		}
		dests[m.Destination] = true
	}
}

func volumeNames(vols map[string]*Volume) string {
	if len(vols) == 0 {
		return "none"
	}
	set := make(map[string]bool, len(vols))
	for n := range vols {
		set[n] = true
	}
	return joinSorted(set)
}

func absPath(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q must be an absolute path", p)
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Errorf("%q must not contain \"..\"", p)
	}
	return nil
}

func (v *validator) dockerConfig(at loc, c *TaskConfig, usable portSet) {
	switch {
	case c.Image == "":
		v.add(at.attr("image"), "Missing image", `a docker task needs config { image = "..." }`)
	case strings.IndexFunc(c.Image, unicode.IsSpace) >= 0:
		v.add(at.attr("image"), "Invalid image", "image %q contains white space", c.Image)
	}
	seen := map[string]bool{}
	for i, p := range c.Ports {
		pl := at.attr("ports").elem(i)
		switch {
		case usable[p] == "":
			v.add(pl, "Undeclared port", "port %q is not declared in this task's or its group's network blocks (declared: %s); add network { port %q {} } to the group", p, usable.labels(), p)
		case seen[p]:
			v.add(pl, "Duplicate port", "port %q is listed twice", p)
		}
		seen[p] = true
	}
	v.hostPaths(at, c.Mounts)
	for _, o := range []struct {
		name string
		set  bool
	}{
		{"module", c.Module != ""}, {"mode", c.Mode != ""}, {"module_digest", c.ModuleDigest != ""},
		{"max_request_time", c.MaxRequestTime != 0}, {"max_concurrency", c.MaxConcurrency != 0},
		{"max_runtime", c.MaxRuntime != 0}, {"port", c.Port != ""},
	} {
		if o.set {
			v.add(at.attr(o.name), "Option of another driver", "%s is a wasm option; a docker task takes image, args, command and ports", o.name)
		}
	}
}

func (v *validator) restart(at loc, r *RestartPolicy) {
	ok := true
	if r.Attempts < 0 {
		v.add(at.attr("attempts"), "Invalid restart attempts", "attempts must be 0 or more, got %d", r.Attempts)
		ok = false
	}
	if r.Interval.D() < minRestartInterval {
		v.add(at.attr("interval"), "Invalid restart interval", "interval must be at least %s, got %s", minRestartInterval, r.Interval)
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

func (v *validator) reschedule(at loc, r *Reschedule) {
	if r.Attempts < 0 {
		v.add(at.attr("attempts"), "Invalid reschedule attempts", "attempts must be 0 or more, got %d", r.Attempts)
	}
	if r.Interval < 0 {
		v.add(at.attr("interval"), "Invalid reschedule interval", "interval must not be negative, got %s", r.Interval)
	}
	switch r.DelayFunction {
	case DelayConstant, DelayExponential, DelayFibonacci:
	default:
		v.add(at.attr("delay_function"), "Invalid delay function", "unknown delay_function %q; supported: %s, %s, %s", r.DelayFunction, DelayConstant, DelayExponential, DelayFibonacci)
	}
	if r.Attempts <= 0 && !r.Unlimited {
		return // rescheduling is off: the timings are not used
	}
	if r.Attempts > 0 {
		if r.Interval <= 0 {
			v.add(at.attr("interval"), "Invalid reschedule interval", "attempts = %d counts reschedules within an interval: set interval, like \"1h\"", r.Attempts)
		}
		if r.Unlimited {
			v.add(at.attr("unlimited"), "Ambiguous reschedule policy", "attempts = %d and unlimited = true contradict each other: set unlimited = false, or remove attempts", r.Attempts)
		}
	}
	if r.Delay.D() < minRescheduleDelay {
		v.add(at.attr("delay"), "Invalid reschedule delay", "delay must be at least %s, got %s", minRescheduleDelay, r.Delay)
	} else if r.DelayFunction != DelayConstant && r.MaxDelay < r.Delay {
		v.add(at.attr("max_delay"), "Invalid reschedule max_delay", "with delay_function %q the delay grows up to max_delay, which must be at least the delay %s, got %s", r.DelayFunction, r.Delay, r.MaxDelay)
	}
}

func (v *validator) update(at loc, u *Update) {
	if u.MaxParallel < 0 {
		v.add(at.attr("max_parallel"), "Invalid max_parallel", "max_parallel must be 0 (replace all at once) or more, got %d", u.MaxParallel)
	}
	if u.Stagger <= 0 {
		v.add(at.attr("stagger"), "Invalid stagger", "stagger must be greater than 0, got %s", u.Stagger)
	}
	if u.MinHealthyTime < 0 {
		v.add(at.attr("min_healthy_time"), "Invalid min_healthy_time", "min_healthy_time must not be negative, got %s", u.MinHealthyTime)
	}
	switch {
	case u.HealthyDeadline <= 0:
		v.add(at.attr("healthy_deadline"), "Invalid healthy_deadline", "healthy_deadline must be greater than 0, got %s", u.HealthyDeadline)
	case u.MinHealthyTime >= u.HealthyDeadline:
		v.add(at.attr("min_healthy_time"), "Invalid min_healthy_time", "min_healthy_time %s must be shorter than healthy_deadline %s", u.MinHealthyTime, u.HealthyDeadline)
	}
	switch {
	case u.ProgressDeadline <= 0:
		v.add(at.attr("progress_deadline"), "Invalid progress_deadline", "progress_deadline must be greater than 0, got %s", u.ProgressDeadline)
	case u.HealthyDeadline > 0 && u.ProgressDeadline < u.HealthyDeadline:
		v.add(at.attr("progress_deadline"), "Invalid progress_deadline", "progress_deadline %s must be at least healthy_deadline %s: a deployment makes progress when an allocation becomes healthy", u.ProgressDeadline, u.HealthyDeadline)
	}
	switch u.HealthCheck {
	case HealthChecks, HealthTaskStates:
	case "manual":
		v.add(at.attr("health_check"), "Unsupported health_check", "health_check = \"manual\" is not supported: Strata has no API to set an allocation's health by hand; use \"checks\" or \"task_states\"")
	default:
		v.add(at.attr("health_check"), "Invalid health_check", "unknown health_check %q; supported: %s, %s", u.HealthCheck, HealthChecks, HealthTaskStates)
	}
	if u.Canary < 0 {
		v.add(at.attr("canary"), "Invalid canary", "canary must be 0 or more, got %d", u.Canary)
	}
	if u.AutoPromote && u.Canary <= 0 {
		v.add(at.attr("auto_promote"), "Invalid auto_promote", "auto_promote promotes canaries: set canary to 1 or more")
	}
}

func (v *validator) disconnect(at loc, d *Disconnect, jobType string) {
	if d.LostAfter < 0 {
		v.add(at.attr("lost_after"), "Invalid lost_after", "lost_after must not be negative, got %s", d.LostAfter)
	}
	if d.StopOnClientAfter < 0 {
		v.add(at.attr("stop_after"), "Invalid stop_after", "stop_after must not be negative, got %s", d.StopOnClientAfter)
	}
	if d.LostAfter > 0 && d.StopOnClientAfter > 0 {
		v.add(at.attr("stop_after"), "Conflicting disconnect settings", "lost_after keeps tasks running while the node is away and stop_after stops them: set one of the two")
	}
	if d.StopOnClientAfter > 0 && jobType == JobTypeSystem {
		v.add(at.attr("stop_after"), "Invalid stop_after", "stop_after applies to service and batch jobs, not system jobs")
	}
	switch d.Reconcile {
	case ReconcileKeepOriginal, ReconcileKeepReplacement:
	case ReconcileBestScore, ReconcileLongestRunning:
		v.add(at.attr("reconcile"), "Unsupported reconcile", "reconcile %q is not implemented: when a disconnected allocation comes back beside its replacement, Strata keeps the original (%s, the default) or the replacement (%s)",
			d.Reconcile, ReconcileKeepOriginal, ReconcileKeepReplacement)
	default:
		v.add(at.attr("reconcile"), "Invalid reconcile", "unknown reconcile %q; supported: %s (the default), %s", d.Reconcile,
			ReconcileKeepOriginal, ReconcileKeepReplacement)
	}
}

// networks checks ns and adds their ports to labels (label -> owner) and
// static (port -> label), reporting a label or a static port already there.
func (v *validator) networks(at loc, ns []*Network, owner string, labels portSet, static map[int]string) {
	for ni, n := range ns {
		nl := at.nth("network", ni)
		if n == nil {
			v.add(nl, "Missing network", "network %d is null", ni)
			continue
		}
		if n.MBits != 0 {
			v.add(nl.attr("mbits"), "Unsupported mbits", "mbits = %d is not honoured: Strata does not reserve network bandwidth (Nomad deprecated it too); remove it", n.MBits)
		}
		switch n.Mode {
		case "", NetworkModeHost:
		case "bridge", "none":
			v.add(nl.attr("mode"), "Unsupported network mode", "network mode %q is not supported: agents bind each port on the node itself; use mode = %q (the default)", n.Mode, NetworkModeHost)
		default:
			v.add(nl.attr("mode"), "Unsupported network mode", "network mode %q is not supported (CNI networks are not); use mode = %q (the default)", n.Mode, NetworkModeHost)
		}
		for pi, p := range n.Ports {
			if p == nil {
				v.add(nl.nth("port", pi), "Missing port", "port %d is null", pi)
				continue
			}
			pl := nl.block("port", pi, p.Label)
			if v.name(pl, "port label", p.Label) {
				if _, dup := labels[p.Label]; dup {
					v.add(pl, "Duplicate port", "port %q is declared more than once in %s", p.Label, owner)
				}
				labels[p.Label] = owner
			}
			if p.Static < 0 || p.Static > maxPort {
				v.add(pl.attr("static"), "Invalid port", "static must be between 1 and %d, got %d", maxPort, p.Static)
			} else if other, dup := static[p.Static]; dup && p.Static != 0 {
				v.add(pl.attr("static"), "Duplicate static port", "static port %d is also used by port %q; the tasks of a group share one node's ports", p.Static, other)
			} else if p.Static != 0 {
				static[p.Static] = p.Label
			}
			if p.To < 0 || p.To > maxPort {
				v.add(pl.attr("to"), "Invalid port", "to must be between 1 and %d, got %d", maxPort, p.To)
			}
		}
	}
}

// resources checks a task's cpu and memory.
func (v *validator) resources(at loc, r *Resources) {
	if r.CPU < 1 {
		v.add(at.attr("cpu"), "Invalid cpu", "cpu must be at least 1 MHz, got %d", r.CPU)
	}
	if r.MemoryMB < minMemoryMB {
		v.add(at.attr("memory"), "Invalid memory", "memory must be at least %d MB, got %d", minMemoryMB, r.MemoryMB)
	}
}

// serviceScope is what a service's checks depend on: derived is the name
// Canonicalize gives a service without one (how: its pattern), ports what
// its port may name (where: those ports, for the message; add: the block
// to suggest).
type serviceScope struct {
	derived, how string
	ports        portSet
	where, add   string
}

func (v *validator) service(at loc, s *Service, sc serviceScope) {
	if err := validDNSLabel(s.Name); err != nil {
		hint := ""
		if s.Name == sc.derived {
			hint = fmt.Sprintf(" (the name is derived as %s; set service { name = %q } or rename)", sc.how, strings.Trim(strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(sc.derived)), "-"))
		}
		v.add(at.attr("name"), "Invalid service name", "%v%s", err, hint)
	}
	v.tags(at, "tags", s.Tags)
	if len(s.CanaryTags) == 0 {
		v.add(at.attr("canary_tags"), "Invalid canary_tags", "canary_tags must name at least one tag, so a canary is told apart from the version it replaces (default [\"canary\"])")
	}
	v.tags(at, "canary_tags", s.CanaryTags)
	switch {
	case s.Port == "" && len(s.Checks) > 0:
		v.add(at.attr("port"), "Missing port", "service %q has checks, so it needs a port to check", s.Name)
	case s.Port != "" && sc.ports[s.Port] == "":
		v.add(at.attr("port"), "Undeclared port", "port %q is not declared in %s network blocks (declared: %s); add "+sc.add, s.Port, sc.where, sc.ports.labels(), s.Port)
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
func (v *validator) tags(at loc, attr string, tags []string) {
	for i, tag := range tags {
		if tag == "" || strings.IndexFunc(tag, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			v.add(at.attr(attr).elem(i), "Invalid tag", "tag %q must be non-empty, without white space", tag)
		}
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
	if cr := c.CheckRestart; cr != nil {
		crl := at.single("check_restart")
		if cr.Limit < 0 {
			v.add(crl.attr("limit"), "Invalid check_restart limit", "limit is a number of consecutive failures (0 never restarts), got %d", cr.Limit)
		}
		if cr.Grace < 0 {
			v.add(crl.attr("grace"), "Invalid check_restart grace", "grace must not be negative, got %s", cr.Grace)
		}
	}
}

// runtimeScope is what a task's runtime variables may name: the ports of
// its group (STRATA_PORT_<label> and the like) and the keys of its job's,
// group's and its own meta (NOMAD_META_<key>).
type runtimeScope struct {
	ports portSet
	meta  map[string]string
}

// template checks a string that may hold runtime references (see
// template.go); rs is what runtime variables may name (nil for node
// references only).
func (v *validator) template(at loc, s string, kind refKind, rs *runtimeScope) {
	if !strings.Contains(s, "${") {
		return
	}
	refs, err := templateRefs(s)
	if err != nil {
		v.add(at, "Invalid template", "%q: %v", s, err)
		return
	}
	for _, ref := range refs {
		if msg := checkRef(ref, kind); msg != "" {
			v.add(at, "Invalid reference", "%s", msg)
			continue
		}
		if kind != refRuntime || rs == nil {
			continue
		}
		if label, ok := portOfRef(ref); ok && rs.ports[label] == "" {
			v.add(at, "Undeclared port", "${%s} names port %q, which this group does not declare (declared: %s)", ref, label, rs.ports.labels())
		}
		if key, ok := metaOfRef(ref); ok {
			if _, set := MetaVars(rs.meta)["NOMAD_META_"+key]; !set {
				v.add(at, "Unknown meta key", "${%s} names meta key %q, which neither the job, its group nor the task sets (set: %s)", ref, key, metaKeys(rs.meta))
			}
		}
	}
}

// metaKeys lists m's keys for a message.
func metaKeys(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	set := map[string]bool{}
	for k := range m {
		set[k] = true
	}
	return joinSorted(set)
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

// MaxCount bounds a group's count: a larger job is a mistake (and one
// evaluation's plan), not a deployment.
const MaxCount = 100_000

func validName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s must not be empty", what)
	case len(s) > maxNameLen:
		return fmt.Errorf("%s %.20q... is %d characters long; the limit is %d", what, s, len(s), maxNameLen)
	case s[0] == '-':
		return fmt.Errorf("%s %q must not start with '-': a command line would read it as a flag", what, s)
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
