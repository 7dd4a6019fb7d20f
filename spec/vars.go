package spec

import (
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Vars are the values of a job file's variables given from outside the
// file: `strata run -var-file prod.hcl -var count=3 job.hcl`.
//
// Precedence, lowest first: a variable's default, then Files in order,
// then Flags in order; the last value given wins.
type Vars struct {
	// Files are variable files: HCL attributes `name = value`, no blocks,
	// no references. Name is used in positions only.
	Files []VarFile
	// Flags are -var arguments "name=value". A variable of type string
	// (or of no declared type) takes value as it is; any other type reads
	// it as an HCL expression ("3", "true", `["a", "b"]`).
	Flags []string
}

// VarFile is one variable file's name and contents.
type VarFile struct {
	Name string
	Src  []byte
}

// variable is one `variable "name" { type, default, description }` block
// with the value it ends up with.
type variable struct {
	name     string
	typ      cty.Type // cty.DynamicPseudoType: any
	value    cty.Value
	hasValue bool
	broken   bool // its declaration has a problem, already reported
	def      hcl.Range
}

// rawVariable mirrors a variable block. type and default are expressions:
// type is a type constraint (string, number, list(string), ...), not a
// value, and default is converted to the type.
type rawVariable struct {
	Name        string         `hcl:"name,label"`
	Type        hcl.Expression `hcl:"type,optional"`
	Default     hcl.Expression `hcl:"default,optional"`
	Description string         `hcl:"description,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// scope is what expressions in the job file may refer to: var.<name>.
// It turns HCL's generic messages about var into ones that say what to
// declare or set.
type scope struct {
	vars map[string]*variable
	ctx  *hcl.EvalContext
	// quiet are the ranges of expressions that could not be evaluated
	// for a reason already reported (see value).
	quiet []hcl.Range
}

// newScope reads the variable blocks and the values given for them.
// Problems come back as diagnostics; the scope is usable regardless, with
// the variables that have no value left unknown.
func newScope(blocks []*rawVariable, vars Vars) (*scope, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	s := &scope{vars: map[string]*variable{}}
	for _, b := range blocks {
		if !hclsyntax.ValidIdentifier(b.Name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid variable name",
				Detail:   fmt.Sprintf("variable name %q must be an identifier: a letter, then letters, digits, '_' and '-'", b.Name),
				Subject:  b.DefRange.Ptr(),
			})
			continue
		}
		if prev := s.vars[b.Name]; prev != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate variable",
				Detail:   fmt.Sprintf("variable %q is already declared at %s", b.Name, prev.def),
				Subject:  b.DefRange.Ptr(),
			})
			continue
		}
		v := &variable{name: b.Name, typ: cty.DynamicPseudoType, def: b.DefRange}
		s.vars[b.Name] = v
		if b.Type != nil {
			ty, ds := typeexpr.TypeConstraint(b.Type)
			diags = append(diags, ds...)
			if ds.HasErrors() {
				v.broken = true
			} else {
				v.typ = ty
			}
		}
		if b.Default != nil {
			val, ds := b.Default.Value(nil)
			diags = append(diags, ds...)
			v.broken = v.broken || ds.HasErrors()
			if !ds.HasErrors() {
				if val, err := convert.Convert(val, v.typ); err != nil {
					v.broken = true
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Invalid default value",
						Detail:   fmt.Sprintf("the default of variable %q does not fit its type %s: %s", b.Name, typeexpr.TypeString(v.typ), err),
						Subject:  b.Default.Range().Ptr(),
					})
				} else {
					v.value, v.hasValue = val, true
				}
			}
		}
	}

	for _, f := range vars.Files {
		diags = append(diags, s.readFile(f)...)
	}
	for _, flag := range vars.Flags {
		diags = append(diags, s.readFlag(flag)...)
	}

	obj := make(map[string]cty.Value, len(s.vars))
	for _, name := range slices.Sorted(maps.Keys(s.vars)) {
		v := s.vars[name]
		if !v.hasValue {
			if v.broken {
				obj[name] = cty.UnknownVal(v.typ)
				continue
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing value for variable",
				Detail:   fmt.Sprintf("variable %q has no default and no value was given: set it with -var %s=... or in a -var-file, or give it a default", name, name),
				Subject:  v.def.Ptr(),
			})
			obj[name] = cty.UnknownVal(v.typ)
			continue
		}
		obj[name] = v.value
	}
	s.ctx = &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(obj)}}
	return s, diags
}

// readFile applies a variable file's values.
func (s *scope) readFile(f VarFile) hcl.Diagnostics {
	if len(f.Src) > MaxFileSize {
		start := hcl.Pos{Line: 1, Column: 1}
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "File too large",
			Detail:   fmt.Sprintf("a variable file may be at most %d bytes (1 MiB); this one is %d", MaxFileSize, len(f.Src)),
			Subject:  &hcl.Range{Filename: f.Name, Start: start, End: start},
		}}
	}
	if diags := checkNesting(f.Name, f.Src); diags.HasErrors() {
		return diags
	}
	file, diags := hclsyntax.ParseConfig(f.Src, f.Name, hcl.InitialPos)
	if diags.HasErrors() {
		return diags
	}
	attrs, diags := file.Body.JustAttributes()
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		a := attrs[name]
		v := s.vars[name]
		if v == nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Undeclared variable",
				Detail:   fmt.Sprintf("%s sets variable %q, which the job file does not declare%s", f.Name, name, s.declared()),
				Subject:  a.NameRange.Ptr(),
			})
			continue
		}
		val, ds := a.Expr.Value(nil)
		diags = append(diags, ds...)
		if ds.HasErrors() {
			continue
		}
		val, err := convert.Convert(val, v.typ)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid value for variable",
				Detail:   fmt.Sprintf("variable %q is of type %s: %s", name, typeexpr.TypeString(v.typ), err),
				Subject:  a.Expr.Range().Ptr(),
			})
			continue
		}
		v.value, v.hasValue = val, true
	}
	return diags
}

// readFlag applies one -var name=value.
func (s *scope) readFlag(flag string) hcl.Diagnostics {
	bad := func(summary, format string, args ...any) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...)}}
	}
	name, raw, ok := strings.Cut(flag, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return bad("Invalid -var", "-var %q: expected NAME=VALUE, like -var count=3", flag)
	}
	v := s.vars[name]
	if v == nil {
		return bad("Undeclared variable", "-var %s: the job file declares no variable %q%s", flag, name, s.declared())
	}
	var val cty.Value
	if v.typ == cty.String || v.typ == cty.DynamicPseudoType {
		val = cty.StringVal(raw)
	} else {
		ds := checkNesting("-var "+name, []byte(raw))
		var expr hclsyntax.Expression
		if !ds.HasErrors() {
			expr, ds = hclsyntax.ParseExpression([]byte(raw), "-var "+name, hcl.InitialPos)
		}
		if !ds.HasErrors() {
			val, ds = expr.Value(nil)
		}
		if ds.HasErrors() {
			return bad("Invalid value for variable", "-var %s: variable %q is of type %s, and %q is not a value of it; write the value as HCL does, like 3, true or [\"a\", \"b\"]", flag, name, typeexpr.TypeString(v.typ), raw)
		}
	}
	val, err := convert.Convert(val, v.typ)
	if err != nil {
		return bad("Invalid value for variable", "-var %s: variable %q is of type %s: %s", flag, name, typeexpr.TypeString(v.typ), err)
	}
	v.value, v.hasValue = val, true
	return nil
}

// declared lists the declared variables for a message: " (declared: a, b)".
func (s *scope) declared() string {
	if len(s.vars) == 0 {
		return ""
	}
	return " (declared: " + strings.Join(slices.Sorted(maps.Keys(s.vars)), ", ") + ")"
}

// explain looks at the var references of an expression whose evaluation
// failed. It returns ok == false when a reference is to an undeclared
// variable (with a diagnostic saying so) or to one without a value (with
// none: newScope reported it at the declaration); then HCL's own
// diagnostics are noise.
func (s *scope) explain(expr hcl.Expression) (hcl.Diagnostics, bool) {
	if s.ctx == nil {
		return nil, true // no variables here: HCL's "Variables not allowed" says it
	}
	var diags hcl.Diagnostics
	ok := true
	for _, tr := range expr.Variables() {
		if tr.RootName() != "var" {
			continue
		}
		name := ""
		if len(tr) > 1 {
			switch step := tr[1].(type) {
			case hcl.TraverseAttr:
				name = step.Name
			case hcl.TraverseIndex:
				if step.Key.Type() == cty.String && step.Key.IsKnown() {
					name = step.Key.AsString()
				}
			}
		}
		v := s.vars[name]
		switch {
		case name == "":
			continue // HCL's message about the object itself is right
		case v == nil:
			ok = false
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Undefined variable",
				Detail:   fmt.Sprintf("var.%s is not declared; declare it at the top of the file: variable %q { default = ... }%s", name, name, s.declared()),
				Subject:  tr.SourceRange().Ptr(),
			})
		case !v.hasValue:
			ok = false
		}
	}
	return diags, ok
}

// value evaluates expr in the scope. ok is false when it failed because
// of a var reference explained by diags (or, for a variable without a
// value, already reported): the expression's range is then kept quiet,
// so that the zero value left in its place draws no second complaint.
func (s *scope) value(expr hcl.Expression) (val cty.Value, diags hcl.Diagnostics, ok bool) {
	val, diags = expr.Value(s.ctx)
	if diags.HasErrors() || !val.IsWhollyKnown() {
		if ds, ok := s.explain(expr); !ok {
			s.quiet = append(s.quiet, expr.Range())
			return cty.DynamicVal, ds, false
		}
	}
	return val, hint(diags), !diags.HasErrors()
}

// runtimeHint is added to HCL's "Unknown variable" for the roots of
// runtime references used where only var.* may be.
const runtimeHint = " Runtime references (${node.*}, ${attr.*}, ${meta.*}, ${STRATA_*}, ${NOMAD_*}) are kept only in" +
	" constraint, affinity and spread attributes and values, env values, args and command; elsewhere only var.<name> may be used."

// hint adds runtimeHint to the diagnostics about a runtime root.
func hint(diags hcl.Diagnostics) hcl.Diagnostics {
	for i, d := range diags {
		if d.Summary != "Unknown variable" || d.Subject == nil {
			continue
		}
		for _, root := range []string{`"node"`, `"attr"`, `"meta"`, `"STRATA_`, `"NOMAD_`} {
			if strings.Contains(d.Detail, "named "+root) {
				dd := *d
				dd.Detail += runtimeHint
				diags[i] = &dd
				break
			}
		}
	}
	return diags
}

// decode is gohcl.DecodeExpression in the scope, with the messages of
// value, and without gohcl's echo: when evaluating the expression already
// failed, gohcl adds "Unsuitable value type: value must be known" for the
// same spot; that one is dropped.
func (s *scope) decode(expr hcl.Expression, target any) hcl.Diagnostics {
	if decodeLiteral(expr, target) {
		return nil
	}
	diags := gohcl.DecodeExpression(expr, s.ctx, target)
	if !diags.HasErrors() {
		return diags
	}
	if ds, ok := s.explain(expr); !ok {
		s.quiet = append(s.quiet, expr.Range())
		return ds
	}
	if n := len(diags); n > 1 && diags[:n-1].HasErrors() && diags[n-1].Summary == "Unsuitable value type" {
		diags = diags[:n-1]
	}
	return hint(diags)
}

// decodeLiteral is the fast path of decode for what most attributes are:
// a literal string, whole number or bool, or a list of literal strings,
// written as such. It sets *target and returns true only when gohcl would
// have produced the same value without a diagnostic; anything else
// (conversions, references, errors) goes the general way.
func decodeLiteral(expr hcl.Expression, target any) bool {
	switch t := target.(type) {
	case *string:
		v, ok := literalString(expr)
		if ok {
			*t = v
		}
		return ok
	case *int:
		l, ok := expr.(*hclsyntax.LiteralValueExpr)
		if !ok || l.Val.Type() != cty.Number || l.Val.IsNull() {
			return false
		}
		bf := l.Val.AsBigFloat()
		if !bf.IsInt() {
			return false
		}
		i, acc := bf.Int64()
		if acc != big.Exact || int64(int(i)) != i {
			return false
		}
		*t = int(i)
		return true
	case *bool:
		l, ok := expr.(*hclsyntax.LiteralValueExpr)
		if !ok || l.Val.Type() != cty.Bool || l.Val.IsNull() {
			return false
		}
		*t = l.Val.True()
		return true
	case *[]string:
		tuple, ok := expr.(*hclsyntax.TupleConsExpr)
		if !ok {
			return false
		}
		l := make([]string, len(tuple.Exprs))
		for i, e := range tuple.Exprs {
			if l[i], ok = literalString(e); !ok {
				return false
			}
		}
		*t = l
		return true
	}
	return false
}

// literalString returns the value of a quoted string without
// interpolations ("abc"), as the parser leaves it.
func literalString(expr hcl.Expression) (string, bool) {
	te, ok := expr.(*hclsyntax.TemplateExpr)
	if !ok || len(te.Parts) != 1 {
		return "", false
	}
	l, ok := te.Parts[0].(*hclsyntax.LiteralValueExpr)
	if !ok || l.Val.Type() != cty.String || l.Val.IsNull() || !l.Val.IsKnown() {
		return "", false
	}
	return l.Val.AsString(), true
}
