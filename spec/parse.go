package spec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// MaxFileSize is the largest job file Parse reads (1 MiB).
const MaxFileSize = 1 << 20

// Parse decodes one job file into a canonical, valid job. filename is used
// in positions only; Parse reads nothing but src.
//
// On any problem it returns nil and Diagnostics holding every problem found
// (syntax, unknown blocks and attributes, wrong types, bad durations,
// duplicate labels and everything Validate checks), each with its source
// range. A syntax error stops there: what follows it is not decoded, since
// the parser's recovery would only add noise.
func Parse(filename string, src []byte) (*Job, error) {
	if len(src) > MaxFileSize {
		start := hcl.Pos{Line: 1, Column: 1}
		return nil, Diagnostics{{
			Summary: "File too large",
			Detail:  fmt.Sprintf("a job file may be at most %d bytes (1 MiB); this one is %d", MaxFileSize, len(src)),
			Range:   &hcl.Range{Filename: filename, Start: start, End: start},
		}}
	}
	file, hds := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if hds.HasErrors() {
		ds := fromHCL(hds)
		ds.sortByPosition()
		return nil, ds
	}

	var root rawFile
	hds = decodeBody(file.Body, &root)
	if len(root.Jobs) == 0 {
		r := file.Body.MissingItemRange()
		hds = append(hds, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing job block",
			Detail:   `a job file holds one job block, like: job "example" { ... }`,
			Subject:  &r,
		})
		ds := fromHCL(hds)
		ds.sortByPosition()
		return nil, ds
	}
	for _, extra := range root.Jobs[1:] {
		hds = append(hds, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Duplicate job block",
			Detail:   fmt.Sprintf("a job file holds exactly one job block; the first is at %s", root.Jobs[0].DefRange),
			Subject:  extra.DefRange.Ptr(),
		})
	}

	c := &converter{ix: make(index, len(src)/20)} // about one entry per 20 bytes of a typical file
	job := c.job(root.Jobs[0])
	hds = append(hds, c.diags...)
	canonicalize(job, c.ix.has)

	ds := fromHCL(hds)
	decoded := newRangeSet(ds)
	for _, p := range validate(job) {
		d := &Diagnostic{Path: p.at.String(), Summary: p.summary, Detail: p.detail}
		if r, ok := c.ix.lookup(p.at.key); ok {
			if decoded.overlaps(r) {
				continue // already reported while decoding: a value that did not decode is zero here
			}
			d.Range = &r
		}
		ds = append(ds, d)
	}
	if len(ds) > 0 {
		ds.sortByPosition()
		return nil, ds
	}
	return job, nil
}

// rangeSet answers "does r overlap a range of the set" in O(log n). All
// ranges are in the one file being parsed.
type rangeSet struct{ starts, ends []int } // sorted by start; ends[i] is the max end of ranges[0..i]

func newRangeSet(ds Diagnostics) rangeSet {
	var rs []hcl.Range
	for _, d := range ds {
		if d.Range != nil {
			rs = append(rs, *d.Range)
		}
	}
	slices.SortFunc(rs, func(a, b hcl.Range) int { return a.Start.Byte - b.Start.Byte })
	var s rangeSet
	maxEnd := -1
	for _, r := range rs {
		maxEnd = max(maxEnd, r.End.Byte, r.Start.Byte+1) // an empty range covers one byte, as hcl.Range.Overlaps has it
		s.starts = append(s.starts, r.Start.Byte)
		s.ends = append(s.ends, maxEnd)
	}
	return s
}

func (s rangeSet) overlaps(r hcl.Range) bool {
	end := max(r.End.Byte, r.Start.Byte+1)
	// The last range starting before r ends; the running max end tells
	// whether any range starting at or before it reaches into r.
	i, _ := slices.BinarySearch(s.starts, end)
	return i > 0 && s.ends[i-1] > r.Start.Byte
}

// The raw structs mirror the HCL: gohcl decodes into them, then converter
// turns them into the typed Job. Every attribute is optional here; what is
// required is Validate's business, so that JSON jobs get the same checks.
// Each block keeps its body and range, from which converter builds the
// index that gives Validate's problems their source positions.

type rawFile struct {
	Jobs []*rawJob `hcl:"job,block"`
}

type rawJob struct {
	ID          string            `hcl:"id,label"`
	Type        string            `hcl:"type,optional"`
	Region      string            `hcl:"region,optional"`
	Datacenters []string          `hcl:"datacenters,optional"`
	Priority    int               `hcl:"priority,optional"`
	Meta        map[string]string `hcl:"meta,optional"`
	MetaBlock   *rawMap           `hcl:"meta,block"`
	Update      *rawUpdate        `hcl:"update,block"`
	Groups      []*rawGroup       `hcl:"group,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

// rawUpdate is accepted so that Nomad-style files parse; it is dropped
// until the scheduler knows rolling updates. Its stagger is still checked.
type rawUpdate struct {
	MaxParallel int    `hcl:"max_parallel,optional"`
	Stagger     string `hcl:"stagger,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawGroup struct {
	Name      string            `hcl:"name,label"`
	Count     int               `hcl:"count,optional"`
	Meta      map[string]string `hcl:"meta,optional"`
	MetaBlock *rawMap           `hcl:"meta,block"`
	Tasks     []*rawTask        `hcl:"task,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawTask struct {
	Name      string            `hcl:"name,label"`
	Driver    string            `hcl:"driver,optional"`
	Config    *rawConfig        `hcl:"config,block"`
	Env       map[string]string `hcl:"env,optional"`
	EnvBlock  *rawMap           `hcl:"env,block"`
	Restart   *rawRestart       `hcl:"restart,block"`
	Resources *rawResources     `hcl:"resources,block"`
	Services  []*rawService     `hcl:"service,block"`
	Meta      map[string]string `hcl:"meta,optional"`
	MetaBlock *rawMap           `hcl:"meta,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawConfig struct {
	Module string   `hcl:"module,optional"`
	Mode   string   `hcl:"mode,optional"`
	Args   []string `hcl:"args,optional"`
	Image  string   `hcl:"image,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawRestart struct {
	Attempts int    `hcl:"attempts,optional"`
	Interval string `hcl:"interval,optional"`
	Delay    string `hcl:"delay,optional"`
	Mode     string `hcl:"mode,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawResources struct {
	CPU      int           `hcl:"cpu,optional"`
	Memory   int           `hcl:"memory,optional"`
	Networks []*rawNetwork `hcl:"network,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawNetwork struct {
	MBits int        `hcl:"mbits,optional"`
	Ports []*rawPort `hcl:"port,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawPort struct {
	Label  string `hcl:"label,label"`
	Static int    `hcl:"static,optional"`
	To     int    `hcl:"to,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawService struct {
	Name   string      `hcl:"name,optional"`
	Tags   []string    `hcl:"tags,optional"`
	Port   string      `hcl:"port,optional"`
	Checks []*rawCheck `hcl:"check,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawCheck struct {
	Type     string `hcl:"type,optional"`
	Path     string `hcl:"path,optional"`
	Interval string `hcl:"interval,optional"`
	Timeout  string `hcl:"timeout,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

// rawMap is the block form of a string map: meta { k = "v" }, env { K = "v" }.
type rawMap struct {
	Attrs    hcl.Attributes `hcl:",remain"`
	DefRange hcl.Range      `hcl:",def_range"`
}

// converter turns raw structs into the typed Job, recording in ix where
// each block and attribute is written, and in diags what it could not
// convert (durations, a map written twice).
type converter struct {
	ix    index
	diags hcl.Diagnostics
}

// block records a block and the attributes written in its body.
func (c *converter) block(at loc, def hcl.Range, body hcl.Body) {
	c.ix[at.key] = def
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return
	}
	for name, a := range sb.Attributes {
		k := at.key + " > " + name
		c.ix[k] = a.Expr.Range()
		if t, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok {
			for i, e := range t.Exprs {
				c.ix[k+"["+strconv.Itoa(i)+"]"] = e.Range() // as loc.elem
			}
		}
	}
}

func (c *converter) errorAt(key, summary, detail string) {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail}
	if r, ok := c.ix.lookup(key); ok {
		d.Subject = &r
	}
	c.diags = append(c.diags, d)
}

// duration parses a duration attribute; an absent one is zero.
func (c *converter) duration(at loc, s string) Duration {
	if s == "" {
		if c.ix.has(at.key) {
			c.errorAt(at.key, "Invalid duration", `invalid duration "": use a number and a unit, like "30s", "5m" or "1h"`)
		}
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.errorAt(at.key, "Invalid duration", fmt.Sprintf("invalid duration %q: %s", s, strings.TrimPrefix(err.Error(), "time: ")))
		return 0
	}
	return Duration(d)
}

// strMap merges the attribute form (meta = {...}) and the block form
// (meta {...}) of a string map; writing both is an error.
func (c *converter) strMap(at loc, attr map[string]string, blk *rawMap) map[string]string {
	if blk == nil {
		return attr
	}
	if attr != nil {
		name := at.key[strings.LastIndex(at.key, " > ")+3:]
		c.diags = append(c.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Duplicate " + name,
			Detail:   fmt.Sprintf("%s is written both as an attribute (%s = {...}) and as a block (%s {...}); keep one", name, name, name),
			Subject:  blk.DefRange.Ptr(),
		})
	}
	c.ix[at.key] = blk.DefRange
	m := make(map[string]string, len(blk.Attrs))
	for name, a := range blk.Attrs {
		c.ix[at.entry(name).key] = a.Expr.Range()
		var v string
		if ds := decodeExpr(a.Expr, &v); ds.HasErrors() {
			c.diags = append(c.diags, ds...)
			continue
		}
		m[name] = v
	}
	return m
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
		Meta:        c.strMap(at.attr("meta"), r.Meta, r.MetaBlock),
	}
	if u := r.Update; u != nil {
		ul := at.single("update")
		c.block(ul, u.DefRange, u.Body)
		c.duration(ul.attr("stagger"), u.Stagger)
	}
	for gi, rg := range r.Groups {
		j.Groups = append(j.Groups, c.group(at.block("group", gi, rg.Name), rg))
	}
	return j
}

func (c *converter) group(at loc, r *rawGroup) *Group {
	c.block(at, r.DefRange, r.Body)
	g := &Group{
		Name:  r.Name,
		Count: r.Count,
		Meta:  c.strMap(at.attr("meta"), r.Meta, r.MetaBlock),
	}
	for ti, rt := range r.Tasks {
		g.Tasks = append(g.Tasks, c.task(at.block("task", ti, rt.Name), rt))
	}
	return g
}

func (c *converter) task(at loc, r *rawTask) *Task {
	c.block(at, r.DefRange, r.Body)
	t := &Task{
		Name:   r.Name,
		Driver: r.Driver,
		Env:    c.strMap(at.attr("env"), r.Env, r.EnvBlock),
		Meta:   c.strMap(at.attr("meta"), r.Meta, r.MetaBlock),
	}
	if rc := r.Config; rc != nil {
		c.block(at.single("config"), rc.DefRange, rc.Body)
		t.Config = TaskConfig{Module: rc.Module, Mode: rc.Mode, Args: rc.Args, Image: rc.Image}
	}
	if rr := r.Restart; rr != nil {
		rl := at.single("restart")
		c.block(rl, rr.DefRange, rr.Body)
		t.Restart = &RestartPolicy{
			Attempts: rr.Attempts,
			Interval: c.duration(rl.attr("interval"), rr.Interval),
			Delay:    c.duration(rl.attr("delay"), rr.Delay),
			Mode:     rr.Mode,
		}
	}
	if rr := r.Resources; rr != nil {
		rl := at.single("resources")
		c.block(rl, rr.DefRange, rr.Body)
		t.Resources = Resources{CPU: rr.CPU, MemoryMB: rr.Memory}
		for ni, rn := range rr.Networks {
			nl := rl.nth("network", ni)
			c.block(nl, rn.DefRange, rn.Body)
			n := &Network{MBits: rn.MBits}
			for pi, rp := range rn.Ports {
				c.block(nl.block("port", pi, rp.Label), rp.DefRange, rp.Body)
				n.Ports = append(n.Ports, &Port{Label: rp.Label, Static: rp.Static, To: rp.To})
			}
			t.Resources.Networks = append(t.Resources.Networks, n)
		}
	}
	for si, rs := range r.Services {
		sl := at.nth("service", si)
		c.block(sl, rs.DefRange, rs.Body)
		s := &Service{Name: rs.Name, Tags: rs.Tags, Port: rs.Port}
		for ci, rc := range rs.Checks {
			cl := sl.nth("check", ci)
			c.block(cl, rc.DefRange, rc.Body)
			s.Checks = append(s.Checks, &Check{
				Type:     rc.Type,
				Path:     rc.Path,
				Interval: c.duration(cl.attr("interval"), rc.Interval),
				Timeout:  c.duration(cl.attr("timeout"), rc.Timeout),
			})
		}
		t.Services = append(t.Services, s)
	}
	return t
}
