package spec

import (
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// loc names one place in a job twice: key is structural and unique (blocks
// by position: "job > group[0] > task[1] > driver"), so it stays exact when
// two tasks share a label; path is for people and uses labels
// (`group "web" > task "hello" > driver`). Parse's index maps keys to
// source ranges; Diagnostic.Path shows paths.
//
// A loc is a chain of steps up to the job, and both strings are built only
// when asked for (the key once per step, then kept): converting,
// canonicalizing and validating a 1,000-task job name some 100,000 places,
// and building both strings for each was a third of Parse's own
// allocations. The zero loc is the job.
type loc struct{ n *locStep }

type locStep struct {
	up    loc
	kind  locKind
	name  string // attribute, block type or map key
	label string // of a labelled block
	i     int    // of a block or a list element
	key   string // built by loc.key
}

type locKind uint8

const (
	locAttr  locKind = iota // an attribute or a singleton block: "name"
	locBlock                // a labelled block: key "type[i]", path `type "label"`
	locNth                  // an unlabelled block: "type[i]"
	locElem                 // a list element: "[i]", without a separator
	locEntry                // a map entry: key "k", path `["k"]`, without a separator
)

func rootLoc() loc { return loc{} }

func (l loc) String() string {
	if p := l.path(); p != "" {
		return p
	}
	return "job"
}

func (l loc) step(kind locKind, name, label string, i int) loc {
	return loc{&locStep{up: l, kind: kind, name: name, label: label, i: i}}
}

// attr is an attribute, or a singleton block (config, restart, resources).
func (l loc) attr(name string) loc { return l.step(locAttr, name, "", 0) }

// single is a block that appears at most once.
func (l loc) single(typ string) loc { return l.attr(typ) }

// block is the i-th labelled block of its type.
func (l loc) block(typ string, i int, label string) loc { return l.step(locBlock, typ, label, i) }

// nth is the i-th unlabelled block of its type.
func (l loc) nth(typ string, i int) loc { return l.step(locNth, typ, "", i) }

// elem is the i-th element of a list attribute.
func (l loc) elem(i int) loc { return l.step(locElem, "", "", i) }

// entry is the entry k of a map (env, meta).
func (l loc) entry(k string) loc { return l.step(locEntry, k, "", 0) }

func (l loc) key() string {
	s := l.n
	if s == nil {
		return "job"
	}
	if s.key == "" {
		up := s.up.key()
		switch s.kind {
		case locAttr, locEntry:
			s.key = up + " > " + s.name
		case locBlock, locNth:
			s.key = up + " > " + s.name + "[" + strconv.Itoa(s.i) + "]"
		case locElem:
			s.key = up + "[" + strconv.Itoa(s.i) + "]"
		}
	}
	return s.key
}

// path is "" for the job itself.
func (l loc) path() string {
	s := l.n
	if s == nil {
		return ""
	}
	var own string
	switch s.kind {
	case locElem:
		return s.up.path() + "[" + strconv.Itoa(s.i) + "]"
	case locEntry:
		return s.up.path() + "[" + strconv.Quote(s.name) + "]"
	case locBlock:
		own = s.name + " " + strconv.Quote(s.label)
	case locNth:
		own = s.name + "[" + strconv.Itoa(s.i) + "]"
	default: // locAttr
		own = s.name
	}
	if up := s.up.path(); up != "" {
		return up + " > " + own
	}
	return own
}

// index maps loc keys to the source range of what is written there: an
// attribute's value, a list element, a block's definition (type and labels).
//
// Blocks are recorded with their body's attributes, which the parser has
// already gathered: an attribute's range is found through its block, so
// recording a block costs one map entry, not one per attribute. Ranges
// that are not attributes of a recorded block (map entries, env and meta
// blocks) go to ranges.
type index struct {
	blocks map[string]indexedBlock
	ranges map[string]hcl.Range
}

type indexedBlock struct {
	def  hcl.Range
	body *hclsyntax.Body // nil for a body that is not hclsyntax's
}

func newIndex(blocks int) index {
	return index{blocks: make(map[string]indexedBlock, blocks), ranges: map[string]hcl.Range{}}
}

// has reports whether key is written in the file.
func (ix index) has(key string) bool { _, ok := ix.exact(key); return ok }

// writtenIn is has(in.attr(name).key()), without building the key when
// the block at in is recorded.
func (ix index) writtenIn(in loc, name string) bool {
	if b, ok := ix.blocks[in.key()]; ok && b.body != nil {
		if _, ok := b.body.Attributes[name]; ok {
			return true
		}
		// Only a block of that type, recorded or with its range in ranges
		// (meta, env), could be written there under that key.
		if !slices.ContainsFunc(b.body.Blocks, func(blk *hclsyntax.Block) bool { return blk.Type == name }) {
			return false
		}
	}
	return ix.has(in.key() + " > " + name)
}

// exact returns the range of key if it is written in the file.
func (ix index) exact(key string) (hcl.Range, bool) {
	if r, ok := ix.ranges[key]; ok {
		return r, true
	}
	if b, ok := ix.blocks[key]; ok {
		return b.def, true
	}
	i := strings.LastIndex(key, " > ")
	if i < 0 {
		return hcl.Range{}, false
	}
	name, elem := key[i+3:], -1
	if j := strings.IndexByte(name, '['); j > 0 && strings.HasSuffix(name, "]") {
		n, err := strconv.Atoi(name[j+1 : len(name)-1])
		if err != nil {
			return hcl.Range{}, false
		}
		name, elem = name[:j], n
	}
	b, ok := ix.blocks[key[:i]]
	if !ok {
		return hcl.Range{}, false
	}
	if b.body == nil {
		return hcl.Range{}, false
	}
	a, ok := b.body.Attributes[name]
	if !ok {
		return hcl.Range{}, false
	}
	if elem < 0 {
		return a.Expr.Range(), true
	}
	if t, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok && elem < len(t.Exprs) {
		return t.Exprs[elem].Range(), true
	}
	return hcl.Range{}, false
}

// lookup returns the range of key, or of its nearest ancestor that is
// written in the file (a missing attribute points at its block, a list
// element without its own range at its list).
func (ix index) lookup(key string) (hcl.Range, bool) {
	for k := key; ; {
		if r, ok := ix.exact(k); ok {
			return r, true
		}
		if i := strings.LastIndexByte(k, '['); i > 0 && strings.HasSuffix(k, "]") && !strings.Contains(k[i:], " > ") {
			k = k[:i]
			continue
		}
		i := strings.LastIndex(k, " > ")
		if i < 0 {
			return hcl.Range{}, false
		}
		k = k[:i]
	}
}
