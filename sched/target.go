package sched

import "strings"

// refKind is what one part of a template names on a node.
type refKind uint8

const (
	refLiteral    refKind = iota // text, used as is
	refDatacenter                // ${node.datacenter}
	refNodeName                  // ${node.unique.name}
	refNodeID                    // ${node.unique.id}
	refNodeClass                 // ${node.class}
	refAttr                      // ${attr.<key>}
	refMeta                      // ${meta.<key>}
	refUnknown                   // a reference the scheduler does not know: never set
)

// part is a literal text or one node reference.
type part struct {
	kind refKind
	text string // the literal, or the attribute or meta key
}

// template is a constraint's, affinity's or spread's attribute or value,
// resolved against a node. The job language's rule applies: ${ref} is a
// reference, $${ a literal "${". A template without references is a
// literal used as is; one that mixes text and references resolves each
// reference (Nomad resolves only a whole-string reference; a mixed
// template is a strict extension).
type template struct {
	parts []part // never empty
}

// parseTemplate splits s into literal text and references. An unterminated
// "${" is literal text (the job validator rejects it before we see it).
func parseTemplate(s string) template {
	var t template
	lit := func(x string) {
		if x == "" {
			return
		}
		if n := len(t.parts); n > 0 && t.parts[n-1].kind == refLiteral {
			t.parts[n-1].text += x
			return
		}
		t.parts = append(t.parts, part{kind: refLiteral, text: x})
	}
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			lit(s)
			break
		}
		if i > 0 && s[i-1] == '$' { // "$${": a literal "${"
			lit(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			lit(s)
			break
		}
		lit(s[:i])
		t.parts = append(t.parts, parseRef(s[i+2:i+2+end]))
		s = s[i+2+end+1:]
	}
	if len(t.parts) == 0 {
		t.parts = []part{{kind: refLiteral}}
	}
	return t
}

// parseRef reads the inside of ${...}.
func parseRef(ref string) part {
	switch ref {
	case "node.datacenter":
		return part{kind: refDatacenter}
	case "node.unique.name":
		return part{kind: refNodeName}
	case "node.unique.id":
		return part{kind: refNodeID}
	case "node.class":
		return part{kind: refNodeClass}
	}
	if k, ok := strings.CutPrefix(ref, "attr."); ok && k != "" {
		return part{kind: refAttr, text: k}
	}
	if k, ok := strings.CutPrefix(ref, "meta."); ok && k != "" {
		return part{kind: refMeta, text: k}
	}
	return part{kind: refUnknown, text: ref}
}

// resolve returns the part's value on n and whether it is set. The node's
// own fields are always set (an empty Class is the value ""), as in Nomad.
func (p part) resolve(n *Node) (string, bool) {
	switch p.kind {
	case refLiteral:
		return p.text, true
	case refDatacenter:
		return n.Datacenter, true
	case refNodeName:
		return n.Name, true
	case refNodeID:
		return n.ID, true
	case refNodeClass:
		return n.Class, true
	case refAttr:
		v, ok := n.Attributes[p.text]
		return v, ok
	case refMeta:
		v, ok := n.Meta[p.text]
		return v, ok
	}
	return "", false
}

// resolve returns the template's value on n; it is unset when any of its
// references is.
func (t template) resolve(n *Node) (string, bool) {
	if len(t.parts) == 1 {
		return t.parts[0].resolve(n)
	}
	var b strings.Builder
	for _, p := range t.parts {
		v, ok := p.resolve(n)
		if !ok {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
}

// literal returns the template's text when it holds no reference.
func (t template) literal() (string, bool) {
	if len(t.parts) == 1 && t.parts[0].kind == refLiteral {
		return t.parts[0].text, true
	}
	return "", false
}

// unique reports whether the template reads something no two nodes share
// (the node's ID or name, attr.unique.* or meta.unique.*): its result
// cannot be cached per computed class, which leaves those out.
func (t template) unique() bool {
	for _, p := range t.parts {
		switch p.kind {
		case refNodeName, refNodeID:
			return true
		case refAttr, refMeta:
			if strings.HasPrefix(p.text, uniquePrefix) {
				return true
			}
		}
	}
	return false
}

// uniquePrefix marks attributes and meta keys that are unique per node
// (Nomad's convention); computed classes leave them out.
const uniquePrefix = "unique."
