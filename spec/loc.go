package spec

import (
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
type loc struct{ key, path string }

func rootLoc() loc { return loc{key: "job"} }

func (l loc) String() string {
	if l.path == "" {
		return "job"
	}
	return l.path
}

func (l loc) add(key, path string) loc {
	if l.path != "" {
		path = l.path + " > " + path
	}
	return loc{key: l.key + " > " + key, path: path}
}

// attr is an attribute, or a singleton block (config, restart, resources).
func (l loc) attr(name string) loc { return l.add(name, name) }

// single is a block that appears at most once.
func (l loc) single(typ string) loc { return l.attr(typ) }

// block is the i-th labelled block of its type.
func (l loc) block(typ string, i int, label string) loc {
	return l.add(typ+"["+strconv.Itoa(i)+"]", typ+" "+strconv.Quote(label))
}

// nth is the i-th unlabelled block of its type.
func (l loc) nth(typ string, i int) loc {
	s := typ + "[" + strconv.Itoa(i) + "]"
	return l.add(s, s)
}

// elem is the i-th element of a list attribute.
func (l loc) elem(i int) loc {
	s := "[" + strconv.Itoa(i) + "]"
	return loc{key: l.key + s, path: l.path + s}
}

// entry is the entry k of a map (env, meta).
func (l loc) entry(k string) loc {
	return loc{key: l.key + " > " + k, path: l.path + "[" + strconv.Quote(k) + "]"}
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
	def   hcl.Range
	attrs hclsyntax.Attributes // nil for a body that is not hclsyntax's
}

func newIndex(blocks int) index {
	return index{blocks: make(map[string]indexedBlock, blocks), ranges: map[string]hcl.Range{}}
}

// has reports whether key is written in the file.
func (ix index) has(key string) bool { _, ok := ix.exact(key); return ok }

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
	a, ok := b.attrs[name]
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
