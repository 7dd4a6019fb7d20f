package spec

import (
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
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
type index map[string]hcl.Range

func (ix index) has(key string) bool { _, ok := ix[key]; return ok }

// lookup returns the range of key, or of its nearest ancestor that is
// written in the file (a missing attribute points at its block, a list
// element without its own range at its list).
func (ix index) lookup(key string) (hcl.Range, bool) {
	for k := key; ; {
		if r, ok := ix[k]; ok {
			return r, true
		}
		if i := strings.LastIndexByte(k, '['); i > 0 && strings.HasSuffix(k, "]") {
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
