package spec

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// converter turns raw structs into the typed Job, recording in ix where
// each block and attribute is written, and in diags what it could not
// convert (durations, templates, a map written twice).
type converter struct {
	ix    index
	diags hcl.Diagnostics
	scope *scope
	src   []byte // the job file, for the text of runtime references
}

// block records a block and, through its body, the attributes written in it.
func (c *converter) block(at loc, def hcl.Range, body hcl.Body) {
	sb, _ := body.(*hclsyntax.Body)
	c.ix.blocks[at.key()] = indexedBlock{def: def, body: sb}
}

func (c *converter) errorAt(key, summary, detail string) {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail}
	if r, ok := c.ix.lookup(key); ok {
		d.Subject = &r
	}
	c.diags = append(c.diags, d)
}

// duration parses the duration attribute name of the block at in; an
// absent one is zero.
func (c *converter) duration(in loc, name, s string) Duration {
	if s == "" {
		if c.ix.writtenIn(in, name) {
			c.errorAt(in.attr(name).key(), "Invalid duration", `invalid duration "": use a number and a unit, like "30s", "5m" or "1h"`)
		}
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.errorAt(in.attr(name).key(), "Invalid duration", strings.TrimPrefix(err.Error(), "time: ")+`; use a number and a unit, like "30s", "5m" or "1h"`)
		return 0
	}
	return Duration(d)
}

// strMap merges the attribute form (meta = {...}) and the block form
// (meta {...}) of the string map name in the block at in; writing both is
// an error.
func (c *converter) strMap(in loc, name string, attr map[string]string, blk *rawMap) map[string]string {
	if blk == nil {
		return attr
	}
	at := in.attr(name)
	if attr != nil {
		c.duplicateMap(at, blk)
	}
	c.ix.ranges[at.key()] = blk.DefRange
	m := make(map[string]string, len(blk.Attrs))
	for k, a := range blk.Attrs {
		c.ix.ranges[at.entry(k).key()] = a.Expr.Range()
		var v string
		if ds := c.scope.decode(a.Expr, &v); ds.HasErrors() {
			c.diags = append(c.diags, ds...)
			continue
		}
		m[k] = v
	}
	return m
}

func (c *converter) duplicateMap(at loc, blk *rawMap) {
	name := at.n.name // an attribute
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate " + name,
		Detail:   fmt.Sprintf("%s is written both as an attribute (%s = {...}) and as a block (%s {...}); keep one", name, name, name),
		Subject:  blk.DefRange.Ptr(),
	})
}

// env reads the environment of the task at in, whose values are
// templates, in either form.
func (c *converter) env(in loc, attr hcl.Expression, blk *rawMap) map[string]string {
	if attr == nil && blk == nil {
		return nil
	}
	at := in.attr("env")
	var m map[string]string
	if attr != nil {
		pairs, ds := hcl.ExprMap(attr)
		if ds.HasErrors() { // not written as { ... }: a var, say; its values are literal
			c.diags = append(c.diags, c.scope.decode(attr, &m)...)
			for k, v := range m {
				m[k] = escaped(v)
			}
		} else {
			m = make(map[string]string, len(pairs))
			seen := make(map[string]hcl.Range, len(pairs))
			for _, p := range pairs {
				key, ok := c.stringValue(p.Key)
				if !ok {
					continue
				}
				if prev, dup := seen[key]; dup {
					c.diags = append(c.diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Duplicate environment variable",
						Detail:   fmt.Sprintf("%s is set twice; the first is at %s", key, prev),
						Subject:  p.Key.Range().Ptr(),
					})
					continue
				}
				seen[key] = p.Key.Range()
				c.ix.ranges[at.entry(key).key()] = p.Value.Range()
				if v, ok := c.template(p.Value); ok {
					m[key] = v
				}
			}
		}
	}
	if blk == nil {
		return m
	}
	if attr != nil {
		c.duplicateMap(at, blk)
	}
	c.ix.ranges[at.key()] = blk.DefRange
	m = make(map[string]string, len(blk.Attrs))
	for name, a := range blk.Attrs {
		c.ix.ranges[at.entry(name).key()] = a.Expr.Range()
		if v, ok := c.template(a.Expr); ok {
			m[name] = v
		}
	}
	return m
}

// templateList reads a list of templates (args).
func (c *converter) templateList(expr hcl.Expression) []string {
	if expr == nil {
		return nil
	}
	elems, ds := hcl.ExprList(expr)
	if ds.HasErrors() { // not written as [ ... ]: a var, say; its values are literal
		var l []string
		c.diags = append(c.diags, c.scope.decode(expr, &l)...)
		for i, v := range l {
			l[i] = escaped(v)
		}
		return l
	}
	l := make([]string, 0, len(elems))
	for _, e := range elems {
		v, _ := c.template(e)
		l = append(l, v)
	}
	return l
}

func (c *converter) templateAttr(expr hcl.Expression) string {
	if expr == nil {
		return ""
	}
	v, _ := c.template(expr)
	return v
}

func (c *converter) job(r *rawJob) *Job {
	at := rootLoc()
	c.block(at, r.DefRange, r.Body)
	j := &Job{
		ID:          r.ID,
		Type:        r.Type,
		Region:      r.Region,
		Datacenters: r.Datacenters,
		Priority:    r.Priority,
		Meta:        c.strMap(at, "meta", r.Meta, r.MetaBlock),
		Constraints: c.constraints(at, r.Constraints),
		Affinities:  c.affinities(at, r.Affinities),
		Spreads:     c.spreads(at, r.Spreads),
		Update:      c.update(at, r.Update),
	}
	if rp := r.Periodic; rp != nil {
		pl := at.single("periodic")
		c.block(pl, rp.DefRange, rp.Body)
		j.Periodic = &Periodic{Cron: rp.Cron, Crons: rp.Crons, ProhibitOverlap: rp.ProhibitOverlap, TimeZone: rp.TimeZone, Enabled: rp.Enabled}
	}
	if rp := r.Param; rp != nil {
		c.block(at.single("parameterized"), rp.DefRange, rp.Body)
		j.Parameterized = &Parameterized{Payload: rp.Payload, MetaRequired: rp.MetaRequired, MetaOptional: rp.MetaOptional}
	}
	for gi, rg := range r.Groups {
		j.Groups = append(j.Groups, c.group(at.block("group", gi, rg.Name), rg))
	}
	return j
}

func (c *converter) group(at loc, r *rawGroup) *Group {
	c.block(at, r.DefRange, r.Body)
	g := &Group{
		Name:          r.Name,
		Count:         r.Count,
		Meta:          c.strMap(at, "meta", r.Meta, r.MetaBlock),
		Constraints:   c.constraints(at, r.Constraints),
		Affinities:    c.affinities(at, r.Affinities),
		Spreads:       c.spreads(at, r.Spreads),
		Restart:       c.restart(at, r.Restart),
		Reschedule:    c.reschedule(at, r.Reschedule),
		Update:        c.update(at, r.Update),
		Disconnect:    c.disconnect(at, r.Disconnect),
		ShutdownDelay: c.duration(at, "shutdown_delay", r.ShutdownDelay),
		Networks:      c.networks(at, r.Networks),
		Services:      c.services(at, r.Services),
	}
	for vi, rv := range r.Volumes {
		c.block(at.block("volume", vi, rv.Name), rv.DefRange, rv.Body)
		g.Volumes = append(g.Volumes, &Volume{Name: rv.Name, Type: rv.Type, Source: rv.Source, ReadOnly: rv.ReadOnly})
	}
	for ti, rt := range r.Tasks {
		g.Tasks = append(g.Tasks, c.task(at.block("task", ti, rt.Name), rt))
	}
	return g
}

func (c *converter) task(at loc, r *rawTask) *Task {
	c.block(at, r.DefRange, r.Body)
	t := &Task{
		Name:          r.Name,
		Driver:        r.Driver,
		Env:           c.env(at, r.Env, r.EnvBlock),
		Meta:          c.strMap(at, "meta", r.Meta, r.MetaBlock),
		Restart:       c.restart(at, r.Restart),
		Services:      c.services(at, r.Services),
		KillTimeout:   c.duration(at, "kill_timeout", r.KillTimeout),
		ShutdownDelay: c.duration(at, "shutdown_delay", r.ShutdownDelay),
	}
	if rc := r.Config; rc != nil {
		cl := at.single("config")
		c.block(cl, rc.DefRange, rc.Body)
		t.Config = TaskConfig{
			Module:         rc.Module,
			Mode:           rc.Mode,
			Port:           rc.Port,
			Args:           c.templateList(rc.Args),
			MaxRequestTime: c.duration(cl, "max_request_time", rc.MaxRequestTime),
			MaxConcurrency: rc.MaxConcurrency,
			MaxRuntime:     c.duration(cl, "max_runtime", rc.MaxRuntime),
			Image:          rc.Image,
			Command:        c.templateAttr(rc.Command),
			Ports:          rc.Ports,
		}
		for mi, rm := range rc.Mounts {
			c.block(cl.nth("mount", mi), rm.DefRange, rm.Body)
			t.Config.Mounts = append(t.Config.Mounts, &Mount{Source: rm.Source, Target: rm.Target, Readonly: rm.Readonly})
		}
		if rc.Volumes != nil {
			c.errorAt(cl.attr("volumes").key(), "Host path not allowed", "volumes = [...] mounts host paths the job chooses, which Strata refuses: "+hostVolumeHint)
		}
	}
	for mi, rm := range r.VolumeMounts {
		c.block(at.nth("volume_mount", mi), rm.DefRange, rm.Body)
		t.VolumeMounts = append(t.VolumeMounts, &VolumeMount{Volume: rm.Volume, Destination: rm.Destination, ReadOnly: rm.ReadOnly})
	}
	if rr := r.Resources; rr != nil {
		rl := at.single("resources")
		c.block(rl, rr.DefRange, rr.Body)
		t.Resources = Resources{CPU: rr.CPU, MemoryMB: rr.Memory, Networks: c.networks(rl, rr.Networks)}
	}
	if rd := r.Payload; rd != nil {
		c.block(at.single("dispatch_payload"), rd.DefRange, rd.Body)
		t.DispatchPayload = &DispatchPayload{File: rd.File}
	}
	if rl := r.Lifecycle; rl != nil {
		c.block(at.single("lifecycle"), rl.DefRange, rl.Body)
		t.Lifecycle = &Lifecycle{Hook: rl.Hook, Sidecar: rl.Sidecar}
	}
	return t
}

func (c *converter) networks(at loc, rs []*rawNetwork) []*Network {
	var ns []*Network
	for ni, rn := range rs {
		nl := at.nth("network", ni)
		c.block(nl, rn.DefRange, rn.Body)
		n := &Network{Mode: rn.Mode, MBits: rn.MBits}
		for pi, rp := range rn.Ports {
			c.block(nl.block("port", pi, rp.Label), rp.DefRange, rp.Body)
			n.Ports = append(n.Ports, &Port{Label: rp.Label, Static: rp.Static, To: rp.To})
		}
		ns = append(ns, n)
	}
	return ns
}

func (c *converter) services(at loc, rs []*rawService) []*Service {
	var ss []*Service
	for si, rs := range rs {
		sl := at.nth("service", si)
		c.block(sl, rs.DefRange, rs.Body)
		s := &Service{Name: rs.Name, Tags: rs.Tags, CanaryTags: rs.CanaryTags, Port: rs.Port}
		for ci, rc := range rs.Checks {
			cl := sl.nth("check", ci)
			c.block(cl, rc.DefRange, rc.Body)
			k := &Check{
				Type:     rc.Type,
				Path:     rc.Path,
				Interval: c.duration(cl, "interval", rc.Interval),
				Timeout:  c.duration(cl, "timeout", rc.Timeout),
			}
			if cr := rc.CheckRestart; cr != nil {
				crl := cl.single("check_restart")
				c.block(crl, cr.DefRange, cr.Body)
				k.CheckRestart = &CheckRestart{Limit: cr.Limit, Grace: c.duration(crl, "grace", cr.Grace)}
			}
			s.Checks = append(s.Checks, k)
		}
		ss = append(ss, s)
	}
	return ss
}

func (c *converter) restart(in loc, r *rawRestart) *RestartPolicy {
	if r == nil {
		return nil
	}
	at := in.single("restart")
	c.block(at, r.DefRange, r.Body)
	return &RestartPolicy{
		Attempts: r.Attempts,
		Interval: c.duration(at, "interval", r.Interval),
		Delay:    c.duration(at, "delay", r.Delay),
		Mode:     r.Mode,
	}
}

func (c *converter) reschedule(in loc, r *rawReschedule) *Reschedule {
	if r == nil {
		return nil
	}
	at := in.single("reschedule")
	c.block(at, r.DefRange, r.Body)
	return &Reschedule{
		Attempts:      r.Attempts,
		Interval:      c.duration(at, "interval", r.Interval),
		Delay:         c.duration(at, "delay", r.Delay),
		DelayFunction: r.DelayFunction,
		MaxDelay:      c.duration(at, "max_delay", r.MaxDelay),
		Unlimited:     r.Unlimited,
	}
}

func (c *converter) update(in loc, r *rawUpdate) *Update {
	if r == nil {
		return nil
	}
	at := in.single("update")
	c.block(at, r.DefRange, r.Body)
	return &Update{
		MaxParallel:      r.MaxParallel,
		Stagger:          c.duration(at, "stagger", r.Stagger),
		MinHealthyTime:   c.duration(at, "min_healthy_time", r.MinHealthyTime),
		HealthyDeadline:  c.duration(at, "healthy_deadline", r.HealthyDeadline),
		ProgressDeadline: c.duration(at, "progress_deadline", r.ProgressDeadline),
		HealthCheck:      r.HealthCheck,
		Canary:           r.Canary,
		AutoRevert:       r.AutoRevert,
		AutoPromote:      r.AutoPromote,
	}
}

func (c *converter) disconnect(in loc, r *rawDisconnect) *Disconnect {
	if r == nil {
		return nil
	}
	at := in.single("disconnect")
	c.block(at, r.DefRange, r.Body)
	return &Disconnect{
		LostAfter:         c.duration(at, "lost_after", r.LostAfter),
		Replace:           r.Replace,
		Reconcile:         r.Reconcile,
		StopOnClientAfter: c.duration(at, "stop_after", r.StopAfter),
	}
}

func (c *converter) constraints(at loc, rs []*rawConstraint) []*Constraint {
	var out []*Constraint
	for i, r := range rs {
		c.block(at.nth("constraint", i), r.DefRange, r.Body)
		out = append(out, &Constraint{
			Attribute: c.templateAttr(r.Attribute),
			Operator:  r.Operator,
			Value:     c.templateAttr(r.Value),
		})
	}
	return out
}

func (c *converter) affinities(at loc, rs []*rawAffinity) []*Affinity {
	var out []*Affinity
	for i, r := range rs {
		c.block(at.nth("affinity", i), r.DefRange, r.Body)
		out = append(out, &Affinity{
			Attribute: c.templateAttr(r.Attribute),
			Operator:  r.Operator,
			Value:     c.templateAttr(r.Value),
			Weight:    r.Weight,
		})
	}
	return out
}

func (c *converter) spreads(at loc, rs []*rawSpread) []*Spread {
	var out []*Spread
	for i, r := range rs {
		sl := at.nth("spread", i)
		c.block(sl, r.DefRange, r.Body)
		s := &Spread{Attribute: c.templateAttr(r.Attribute), Weight: r.Weight}
		for ti, rt := range r.Targets {
			c.block(sl.block("target", ti, rt.Value), rt.DefRange, rt.Body)
			s.Targets = append(s.Targets, &SpreadTarget{Value: rt.Value, Percent: rt.Percent})
		}
		out = append(out, s)
	}
	return out
}
