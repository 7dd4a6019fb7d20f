package coordinator

import (
	"maps"
	"slices"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

// wireTasks converts a group's tasks from the job language into the agent
// protocol's own types. It is the one place where a job's task becomes
// what an agent runs: a change of spec reaches the wire only through
// here, and wiretask_test.go fails for a spec.Task field this neither
// carries nor lists as deliberately left out.
//
// The group's own services are registered by its first main task (the
// first without a lifecycle hook): the agent registers and checks
// services per task, and that task lives as long as the allocation.
func wireTasks(g *spec.Group) []wire.Task {
	out := make([]wire.Task, 0, len(g.Tasks))
	groupServices := false
	for _, t := range g.Tasks {
		if t != nil {
			w := wireTask(t)
			w.ShutdownDelay = g.TaskShutdownDelay(t)
			resolveVolumes(g, w.VolumeMounts)
			servedFirst(g, t, &w)
			if t.Lifecycle == nil && !groupServices {
				groupServices = true
				w.Services = append(wireServices(g.Services), w.Services...)
			}
			out = append(out, w)
		}
	}
	return out
}

// mergeMeta gives each of a group's wire tasks its meta merged over its
// group's and its job's (the task's wins), what the agent turns into
// NOMAD_META_<key>.
func mergeMeta(job *spec.Job, g *spec.Group, tasks []wire.Task) {
	for i := range tasks {
		m := map[string]string{}
		maps.Copy(m, job.Meta)
		maps.Copy(m, g.Meta)
		if t := taskNamed(g, tasks[i].Name); t != nil {
			maps.Copy(m, t.Meta)
		}
		if len(m) > 0 {
			tasks[i].Meta = m
		}
	}
}

// addPayload gives each of a dispatched job's tasks with a
// dispatch_payload block the job's payload.
func addPayload(job *spec.Job, tasks []wire.Task) {
	for i := range tasks {
		if p := tasks[i].DispatchPayload; p != nil {
			p.Data = slices.Clone(job.Payload)
		}
	}
}

func taskNamed(g *spec.Group, name string) *spec.Task {
	for _, t := range g.Tasks {
		if t != nil && t.Name == name {
			return t
		}
	}
	return nil
}

// servedFirst puts the port a served wasm task serves on (its config's
// port, which may be its group's, or its group's only port) first in its
// ports, where the agent looks for it.
func servedFirst(g *spec.Group, t *spec.Task, w *wire.Task) {
	if t.Driver != spec.DriverWasm || (t.Config.Mode != spec.ModeHTTP && t.Config.Mode != spec.ModeListener) {
		return
	}
	label := g.ServedPort(t)
	if label == "" {
		return
	}
	ports := []string{label}
	for _, l := range w.Resources.Ports {
		if l != label {
			ports = append(ports, l)
		}
	}
	w.Resources.Ports = ports
}

// resolveVolumes names, in each mount, the host volume its group volume
// asks for, and makes it read-only when the volume is.
func resolveVolumes(g *spec.Group, ms []wire.VolumeMount) {
	for i := range ms {
		for _, v := range g.Volumes {
			if v != nil && v.Name == ms[i].Volume {
				ms[i].HostVolume = v.Source
				ms[i].ReadOnly = ms[i].ReadOnly || v.ReadOnly
			}
		}
	}
}

// wireTask converts one task; its ShutdownDelay is the task's own, which
// wireTasks replaces with the group's when the task sets none, and its
// volume mounts name the job's volumes, which wireTasks resolves to the
// host volumes of the group's volume blocks.
func wireTask(t *spec.Task) wire.Task {
	c := t.Config
	w := wire.Task{
		Name:   t.Name,
		Driver: t.Driver,
		Config: wire.TaskConfig{
			Module: c.Module, ModuleDigest: c.ModuleDigest, Mode: c.Mode,
			Args:           cloneStrings(c.Args),
			MaxRequestTime: c.MaxRequestTime.D(), MaxConcurrency: c.MaxConcurrency, MaxRuntime: c.MaxRuntime.D(),
			Image: c.Image, Command: c.Command, Ports: cloneStrings(c.Ports),
		},
		Resources:     wire.Resources{CPU: t.Resources.CPU, MemoryMB: t.Resources.MemoryMB},
		KillTimeout:   t.KillTimeout.D(),
		ShutdownDelay: t.ShutdownDelay.D(),
	}
	if t.DispatchPayload != nil {
		w.DispatchPayload = &wire.DispatchPayload{File: t.DispatchPayload.File}
	}
	for _, m := range t.VolumeMounts {
		if m != nil {
			w.VolumeMounts = append(w.VolumeMounts, wire.VolumeMount{Volume: m.Volume, Destination: m.Destination, ReadOnly: m.ReadOnly})
		}
	}
	if len(t.Env) > 0 {
		w.Env = make(map[string]string, len(t.Env))
		for k, v := range t.Env {
			w.Env[k] = v
		}
	}
	for _, p := range t.Ports() {
		if p != nil {
			w.Resources.Ports = append(w.Resources.Ports, p.Label)
		}
	}
	w.Services = wireServices(t.Services)
	if r := t.Restart; r != nil {
		w.Restart = &wire.RestartPolicy{Attempts: r.Attempts, Interval: r.Interval.D(), Delay: r.Delay.D(), Mode: r.Mode}
	}
	if lc := t.Lifecycle; lc != nil {
		w.Lifecycle = &wire.Lifecycle{Hook: lc.Hook, Sidecar: lc.Sidecar}
	}
	return w
}

// wireServices converts services, skipping nil entries.
func wireServices(ss []*spec.Service) []wire.Service {
	var out []wire.Service
	for _, s := range ss {
		if s == nil {
			continue
		}
		ws := wire.Service{Name: s.Name, Tags: cloneStrings(s.Tags), CanaryTags: cloneStrings(s.CanaryTags), Port: s.Port}
		for _, chk := range s.Checks {
			if chk == nil {
				continue
			}
			wc := wire.Check{Type: chk.Type, Path: chk.Path, Interval: chk.Interval.D(), Timeout: chk.Timeout.D()}
			if cr := chk.CheckRestart; cr != nil {
				wc.CheckRestart = &wire.CheckRestart{Limit: cr.Limit, Grace: cr.Grace.D()}
			}
			ws.Checks = append(ws.Checks, wc)
		}
		out = append(out, ws)
	}
	return out
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}
