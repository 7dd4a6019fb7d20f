package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Change kinds of a FieldDiff.
const (
	DiffAdded   = "+"
	DiffDeleted = "-"
	DiffEdited  = "~"
)

// FieldDiff is one field that differs between two versions of a job. Path
// names it in the job language's words: `group "web" > task "api" >
// config > module`; Old and New are its values as JSON (empty when the
// field is absent on that side).
type FieldDiff struct {
	Kind string `json:"Kind"` // DiffAdded, DiffDeleted or DiffEdited
	Path string `json:"Path"`
	Old  string `json:"Old,omitempty"`
	New  string `json:"New,omitempty"`
}

func (d FieldDiff) String() string {
	switch d.Kind {
	case DiffAdded:
		return fmt.Sprintf("+ %s: %s", d.Path, d.New)
	case DiffDeleted:
		return fmt.Sprintf("- %s: %s", d.Path, d.Old)
	}
	return fmt.Sprintf("~ %s: %s => %s", d.Path, d.Old, d.New)
}

// Diff lists the fields that differ between two canonical jobs, in the
// order the job language writes them. Groups and tasks are matched by
// name, so reordering them is no change; a group or task present on one
// side only is one added or deleted entry. old may be nil (every field is
// added).
func Diff(old, new *Job) []FieldDiff {
	var a, b []leaf
	if old != nil {
		a = flatten(old)
	}
	if new != nil {
		b = flatten(new)
	}
	return diffLeaves(a, b)
}

// GroupNeedsReplace reports whether the allocations of group old must be
// replaced to run group new: anything but the count, the update and
// reschedule strategies and the job's priority changes what the
// allocation runs (tasks, their config, module digest, env, resources,
// ports, services, checks, restart policy, lifecycle, meta, placement),
// so it is a destructive update. A count-only change scales in place.
func GroupNeedsReplace(old, new *Group) bool {
	if old == nil || new == nil {
		return old != new
	}
	return !bytes.Equal(placementForm(old), placementForm(new))
}

// placementForm is g's JSON without the fields an in-place update may change.
func placementForm(g *Group) []byte {
	c := *g
	c.Count, c.Update, c.Reschedule = 0, nil, nil
	b, err := json.Marshal(&c)
	if err != nil {
		// A canonical group always encodes; make an unencodable one
		// differ from everything rather than equal.
		return []byte(err.Error())
	}
	return b
}

// leaf is one scalar (or empty container) of a job, by path.
type leaf struct {
	path string
	key  string // the path with list elements keyed by name, for matching
	val  string // JSON
	elem []elem // the named list elements (group, task, ...) it is inside, outermost first
}

// elem is a named list element on a leaf's way: its key and path.
type elem struct{ key, path string }

// flatten walks j's JSON form. Lists of named objects (groups, tasks,
// services, ports) are keyed by their name; other lists by position.
func flatten(j *Job) []leaf {
	raw, err := json.Marshal(j)
	if err != nil {
		return []leaf{{path: "job", key: "job", val: strconv.Quote(err.Error())}}
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return []leaf{{path: "job", key: "job", val: strconv.Quote(err.Error())}}
	}
	var out []leaf
	walk(v, "", "", "", nil, &out)
	return out
}

// hclNames maps JSON field names to the job language's, where they differ
// by more than case (MaxParallel -> max_parallel is derived).
var hclNames = map[string]string{
	"Groups": "group", "Tasks": "task", "Services": "service", "Checks": "check",
	"Networks": "network", "Ports": "port", "Constraints": "constraint",
	"Affinities": "affinity", "Spreads": "spread", "Targets": "target",
	"Mounts": "mount", "Volumes": "volume", "VolumeMounts": "volume_mount", "MemoryMB": "memory", "MBits": "mbits", "CPU": "cpu",
	"StopOnClientAfter": "stop_after", "ModuleDigest": "module digest",
	"ID": "id",
}

// mapFields are the JSON fields that hold maps, not structs.
var mapFields = map[string]bool{"Env": true, "Meta": true}

func hclName(field string) string {
	if n, ok := hclNames[field]; ok {
		return n
	}
	var b strings.Builder
	for i, r := range field {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + " > " + name
}

func walk(v any, path, key, field string, in []elem, out *[]leaf) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			*out = append(*out, leaf{path, key, "{}", in})
			return
		}
		// Fields in the order of the type, as encoding/json wrote them,
		// is lost in a map; sort for a stable order.
		names := make([]string, 0, len(x))
		for k := range x {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			name := hclName(k)
			if mapFields[field] {
				name = k // a map's keys are the user's: env names, meta keys
			}
			walk(x[k], join(path, name), key+"."+k, k, in, out)
		}
	case []any:
		if len(x) == 0 {
			*out = append(*out, leaf{path, key, "[]", in})
			return
		}
		block := hclName(field)
		for i, e := range x {
			name := elemName(e)
			p := fmt.Sprintf("%s[%d]", path, i)
			k := fmt.Sprintf("%s[%d]", key, i)
			inner := in
			if name != "" {
				parent := strings.TrimSuffix(path, block)
				parent = strings.TrimSuffix(parent, " > ")
				p = join(parent, fmt.Sprintf("%s %q", block, name))
				k = key + "[" + name + "]"
				inner = append(slices.Clip(in), elem{k, p})
			}
			walk(e, p, k, "", inner, out)
		}
	default:
		b, _ := json.Marshal(x)
		*out = append(*out, leaf{path, key, string(b), in})
	}
}

// elemName is the name that keys a list element: a group's, task's or
// service's Name, a port's Label.
func elemName(e any) string {
	m, ok := e.(map[string]any)
	if !ok {
		return ""
	}
	for _, f := range []string{"Name", "Label"} {
		if s, ok := m[f].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// diffLeaves compares two flattened jobs. A named element (a group, a
// task, ...) present on one side only is one entry, not one per field.
func diffLeaves(a, b []leaf) []FieldDiff {
	old := make(map[string]leaf, len(a))
	oldElems := map[string]bool{}
	for _, l := range a {
		old[l.key] = l
		for _, e := range l.elem {
			oldElems[e.key] = true
		}
	}
	newElems := map[string]bool{}
	for _, l := range b {
		for _, e := range l.elem {
			newElems[e.key] = true
		}
	}
	seen := make(map[string]bool, len(b))
	reported := map[string]bool{}
	var out []FieldDiff
	for _, l := range b {
		seen[l.key] = true
		if e, whole := firstMissing(l.elem, oldElems); whole {
			if !reported[e.key] {
				reported[e.key] = true
				out = append(out, FieldDiff{Kind: DiffAdded, Path: e.path, New: "(added)"})
			}
			continue
		}
		o, ok := old[l.key]
		switch {
		case !ok:
			out = append(out, FieldDiff{Kind: DiffAdded, Path: l.path, New: l.val})
		case o.val != l.val:
			out = append(out, FieldDiff{Kind: DiffEdited, Path: l.path, Old: o.val, New: l.val})
		}
	}
	for _, l := range a {
		if seen[l.key] {
			continue
		}
		if e, whole := firstMissing(l.elem, newElems); whole {
			if !reported[e.key] {
				reported[e.key] = true
				out = append(out, FieldDiff{Kind: DiffDeleted, Path: e.path, Old: "(removed)"})
			}
			continue
		}
		out = append(out, FieldDiff{Kind: DiffDeleted, Path: l.path, Old: l.val})
	}
	return out
}

// firstMissing returns the outermost of elems that other lacks.
func firstMissing(elems []elem, other map[string]bool) (elem, bool) {
	for _, e := range elems {
		if !other[e.key] {
			return e, true
		}
	}
	return elem{}, false
}
