package spec

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Runtime references.
//
// Some strings of a job are templates resolved after the job is submitted:
// constraint, affinity and spread attributes and values by the scheduler,
// per node; env values, config args and the docker command by the agent,
// per allocation. In them `${ref}` is a reference, `$${` a literal "${",
// and every other character itself, the same rule as HCL's templates, so
// the typed job keeps exactly what the file wrote:
//
//	env { PORT = "${STRATA_PORT_http}" }    Env["PORT"] = "${STRATA_PORT_http}"
//	env { LIT  = "$${not_a_ref}" }          Env["LIT"]  = "$${not_a_ref}"
//
// What a reference may name (checked by Validate):
//
//	node.datacenter  node.unique.name  node.unique.id  node.class
//	attr.<name>      meta.<name>       (node attributes and node meta; names may hold '.', '-')
//	STRATA_<NAME>    NOMAD_<NAME>      (runtime variables: env, args, command only)
//
// The runtime variables are listed in runtimevars.go; Validate refuses any
// other name. STRATA_PORT_<label> and the like must name a port of the
// group, NOMAD_META_<key> a key of the job's, group's or task's meta.
//
// In the HCL file, an interpolation that refers only to var.* is evaluated
// when the file is parsed, like anywhere else, and its value is literal
// text; any other interpolation is kept as a reference, written as the
// file writes it between "${" and "}" (so `${attr.platform.aws.instance-type}`
// is a name, not a subtraction).

// refKind says which references a template may hold.
type refKind int

const (
	refNode    refKind = iota // constraint, affinity, spread: node references
	refRuntime                // env, args, command: runtime variables too
)

// Interpolate expands a template of the job language (see "Runtime
// references" in the package documentation): each ${ref} becomes
// resolve(ref), and $${ a literal "${". A reference resolve does not know,
// or a "${" without its "}", is an error naming it.
func Interpolate(s string, resolve func(ref string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	err := scanTemplate(s, func(lit string) { b.WriteString(lit) }, func(ref string) error {
		v, ok := resolve(ref)
		if !ok {
			return fmt.Errorf("unknown reference ${%s}", ref)
		}
		b.WriteString(v)
		return nil
	})
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

var errUnterminated = errors.New(`"${" without a closing "}"; write "$${" for a literal "${"`)

// scanTemplate walks s, calling lit with literal text (escapes resolved)
// and ref with each reference, and stops at ref's first error.
func scanTemplate(s string, lit func(string), ref func(string) error) error {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			lit(s)
			return nil
		}
		if i > 0 && s[i-1] == '$' { // "$${": a literal "${"
			lit(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		lit(s[:i])
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return errUnterminated
		}
		if err := ref(s[i+2 : i+2+end]); err != nil {
			return err
		}
		s = s[i+2+end+1:]
	}
}

// templateRefs returns the references of s, or the problem with it.
func templateRefs(s string) ([]string, error) {
	var refs []string
	err := scanTemplate(s, func(string) {}, func(r string) error {
		refs = append(refs, r)
		return nil
	})
	return refs, err
}

// checkRef says what is wrong with a reference, or returns "".
func checkRef(ref string, kind refKind) string {
	root, rest, _ := strings.Cut(ref, ".")
	switch root {
	case "node":
		switch rest {
		case "datacenter", "unique.name", "unique.id", "class":
			return ""
		}
		return fmt.Sprintf("${%s} is not a node reference; known: ${node.datacenter}, ${node.unique.name}, ${node.unique.id}, ${node.class}", ref)
	case "attr", "meta":
		if rest == "" || !validRefName(rest) {
			example := map[string]string{"attr": "attr.kernel.name", "meta": "meta.rack"}[root]
			return fmt.Sprintf("${%s} needs a name after %q: letters, digits, '_', '.' and '-', like ${%s}", ref, root+".", example)
		}
		return ""
	}
	if name, ok := runtimeVar(ref); kind == refRuntime && ok {
		if !validRefName(ref) || strings.Contains(ref, ".") {
			return fmt.Sprintf("${%s} is not a runtime variable name: letters, digits, '_' and '-'", ref)
		}
		return checkRuntimeVar(ref, name)
	}
	known := "node.*, attr.*, meta.*"
	if kind == refRuntime {
		known += ", STRATA_*, NOMAD_*"
	}
	if root == "var" {
		return fmt.Sprintf("${%s} is a variable reference, but only HCL files have variables; known here: %s", ref, known)
	}
	return fmt.Sprintf("unknown reference ${%s}; known roots: %s (write $${ for a literal ${)", ref, known)
}

func validRefName(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// template turns an HCL string expression into a template of the job
// language: interpolations of var.* (and constants) are evaluated,
// others are kept as ${...} references with the text the file writes.
func (c *converter) template(expr hcl.Expression) (string, bool) {
	var parts []hcl.Expression
	switch e := expr.(type) {
	case *hclsyntax.TemplateExpr:
		parts = make([]hcl.Expression, len(e.Parts))
		for i, p := range e.Parts {
			parts[i] = p
		}
	case *hclsyntax.TemplateWrapExpr:
		parts = []hcl.Expression{e.Wrapped}
	default: // a number, var.x, a conditional...: evaluated as a whole
		parts = []hcl.Expression{expr}
	}
	// Literal text is collected and escaped as a whole, so that text from
	// two parts ("$" and "{") cannot form a "${" by accident.
	var out, lit strings.Builder
	flush := func() {
		writeEscaped(&out, lit.String())
		lit.Reset()
	}
	ok := true
	for _, p := range parts {
		if l, isLit := p.(*hclsyntax.LiteralValueExpr); isLit && l.Val.Type() == cty.String {
			lit.WriteString(l.Val.AsString())
			continue
		}
		if ref, isRef := c.runtimeRef(p); isRef {
			flush()
			if strings.HasSuffix(out.String(), "$") {
				c.diags = append(c.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Ambiguous $ before a reference",
					Detail:   fmt.Sprintf(`"$${%s}" would read as an escaped "${"; put another character between "$" and the reference`, ref),
					Subject:  p.Range().Ptr(),
				})
				ok = false
				continue
			}
			out.WriteString("${" + ref + "}")
			continue
		}
		s, good := c.stringValue(p)
		if !good {
			ok = false
			continue
		}
		lit.WriteString(s)
	}
	flush()
	return out.String(), ok
}

// runtimeRef reports whether the interpolated expression p refers to
// anything but var.*, and returns its source text, trimmed.
func (c *converter) runtimeRef(p hcl.Expression) (string, bool) {
	vars := p.Variables()
	runtime := false
	for _, tr := range vars {
		if tr.RootName() != "var" {
			runtime = true
		}
	}
	if !runtime {
		return "", false
	}
	r := p.Range()
	if r.Start.Byte < 0 || r.End.Byte > len(c.src) || r.Start.Byte > r.End.Byte {
		return "", false
	}
	return strings.TrimSpace(string(c.src[r.Start.Byte:r.End.Byte])), true
}

// stringValue evaluates expr in the scope as a string (numbers and bools
// convert, as HCL does for string attributes).
func (c *converter) stringValue(expr hcl.Expression) (string, bool) {
	val, diags, ok := c.scope.value(expr)
	c.diags = append(c.diags, diags...)
	if !ok {
		return "", false
	}
	sv, err := convert.Convert(val, cty.String)
	if err != nil || sv.IsNull() || !sv.IsKnown() {
		why := "a string is required"
		if err != nil {
			why = err.Error()
		} else if sv.IsNull() {
			why = "the value is null"
		}
		c.diags = append(c.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Unsuitable value type",
			Detail:   "Unsuitable value: " + why,
			Subject:  expr.Range().Ptr(),
		})
		return "", false
	}
	return sv.AsString(), true
}

// escaped returns literal text in template form.
func escaped(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	writeEscaped(&b, s)
	return b.String()
}

// writeEscaped writes literal text in template form: "${" becomes "$${".
func writeEscaped(b *strings.Builder, s string) {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return
		}
		b.WriteString(s[:i])
		b.WriteString("$${")
		s = s[i+2:]
	}
}
