package spec

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// decoder decodes HCL blocks into the raw structs, as gohcl.DecodeBody
// does and with the same `hcl:"..."` tags and the same diagnostics, except
// that a singleton block written twice still decodes its first copy,
// attributes are evaluated in sc (var.*, with its messages), and an
// attribute field of type hcl.Expression gets the expression unevaluated
// (nil when absent).
//
// Why not gohcl.DecodeBody itself: it rebuilds the schema and the field tags
// of every struct for every block it decodes (seven maps per call, several
// calls per block), which was half of Parse's allocations on a 1,000-task
// job. Here the plan of each raw struct type is built once, with
// gohcl.ImpliedBodySchema; attribute values go through scope.decode
// (gohcl.DecodeExpression, after a fast path for literals). Only the tag
// kinds the raw structs use are known: label, optional, block (a pointer or
// a slice of pointers to a struct), body, def_range and remain
// (hcl.Attributes).
type decoder struct {
	sc      *scope
	general bool // always through Content, for tests of decodeSyntax
}

var exprType = reflect.TypeFor[hcl.Expression]()

type decodePlan struct {
	schema   *hcl.BodySchema
	expected string // the attributes and blocks that belong here, for messages
	attrs    []planField
	blocks   []planBlock
	labels   []int
	body     int // field index, or -1
	defRange int
	remain   int

	attrNames  map[string]bool // the schema's attributes, for remain
	labelCount map[string]int  // the schema's block types, with their number of labels
	required   bool            // the schema has a required attribute
}

type planField struct {
	name string
	idx  int
	expr bool // an hcl.Expression field: not evaluated
}

type planBlock struct {
	typ   string
	idx   int
	slice bool
	elem  reflect.Type // the struct type
}

// maxPlanAttrs bounds the attributes of a raw struct that decodeSyntax
// takes (more go the general way).
const maxPlanAttrs = 16

var plans sync.Map // reflect.Type -> *decodePlan

func planFor(t reflect.Type) *decodePlan {
	if p, ok := plans.Load(t); ok {
		return p.(*decodePlan)
	}
	schema, _ := gohcl.ImpliedBodySchema(reflect.New(t).Interface())
	p := &decodePlan{schema: schema, body: -1, defRange: -1, remain: -1}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("hcl")
		if !ok {
			continue
		}
		name, kind, _ := strings.Cut(tag, ",")
		switch kind {
		case "", "attr", "optional":
			p.attrs = append(p.attrs, planField{name: name, idx: i, expr: f.Type == exprType})
		case "label":
			p.labels = append(p.labels, i)
		case "block":
			b := planBlock{typ: name, idx: i, elem: f.Type}
			if b.elem.Kind() == reflect.Slice {
				b.slice, b.elem = true, b.elem.Elem()
			}
			if b.elem.Kind() != reflect.Pointer || b.elem.Elem().Kind() != reflect.Struct {
				panic(fmt.Sprintf("spec: block field %s.%s must be a pointer or a slice of pointers to a struct", t, f.Name))
			}
			b.elem = b.elem.Elem()
			p.blocks = append(p.blocks, b)
		case "body":
			p.body = i
		case "def_range":
			p.defRange = i
		case "remain":
			p.remain = i
		default:
			panic(fmt.Sprintf("spec: tag kind %q of %s.%s is not supported", kind, t, f.Name))
		}
	}
	p.expected = expected(schema, p.remain >= 0)
	p.attrNames = make(map[string]bool, len(schema.Attributes))
	for _, a := range schema.Attributes {
		p.attrNames[a.Name] = true
		p.required = p.required || a.Required
	}
	p.labelCount = make(map[string]int, len(schema.Blocks))
	for _, b := range schema.Blocks {
		p.labelCount[b.Type] = len(b.LabelNames)
	}
	actual, _ := plans.LoadOrStore(t, p)
	return actual.(*decodePlan)
}

func (d decoder) decodeStruct(body hcl.Body, v reflect.Value) hcl.Diagnostics {
	p := planFor(v.Type())
	if sb, ok := body.(*hclsyntax.Body); ok && !d.general {
		if diags, ok := d.decodeSyntax(sb, p, v); ok {
			return diags
		}
	}
	var content *hcl.BodyContent
	var rest hcl.Body
	var diags hcl.Diagnostics
	if p.remain >= 0 {
		content, rest, diags = body.PartialContent(p.schema)
	} else {
		content, diags = body.Content(p.schema)
	}
	for _, d := range diags {
		if d.Summary == "Unsupported argument" || d.Summary == "Unsupported block type" {
			d.Detail += p.expected
		}
	}
	if content == nil {
		return diags
	}
	if p.body >= 0 {
		v.Field(p.body).Set(reflect.ValueOf(&body).Elem())
	}
	if p.remain >= 0 {
		attrs, ds := rest.JustAttributes()
		diags = append(diags, ds...)
		v.Field(p.remain).Set(reflect.ValueOf(attrs))
	}
	for _, a := range p.attrs {
		attr := content.Attributes[a.name]
		switch {
		case attr == nil:
		case a.expr:
			v.Field(a.idx).Set(reflect.ValueOf(&attr.Expr).Elem())
		default:
			diags = append(diags, d.sc.decode(attr.Expr, v.Field(a.idx).Addr().Interface())...)
		}
	}
	if len(p.blocks) == 0 {
		return diags
	}
	byType := content.Blocks.ByType()
	for _, b := range p.blocks {
		blocks := byType[b.typ]
		if !b.slice && len(blocks) > 1 {
			for _, dup := range blocks[1:] {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Duplicate %s block", b.typ),
					Detail:   fmt.Sprintf("Only one %s block is allowed. Another was defined at %s.", b.typ, blocks[0].DefRange),
					Subject:  dup.DefRange.Ptr(),
				})
			}
			blocks = blocks[:1]
		}
		for _, blk := range blocks {
			diags = append(diags, d.decodeInto(v, b, blk.Labels, blk.DefRange, blk.Body)...)
		}
	}
	return diags
}

// decodeInto decodes a block into a new element of the block field b of v.
func (d decoder) decodeInto(v reflect.Value, b planBlock, labels []string, def hcl.Range, body hcl.Body) hcl.Diagnostics {
	ev := reflect.New(b.elem)
	diags := d.decode(labels, def, body, ev.Elem())
	f := v.Field(b.idx)
	if b.slice {
		f.Set(reflect.Append(f, ev))
	} else {
		f.Set(ev)
	}
	return diags
}

func (d decoder) decodeBlock(blk *hcl.Block, v reflect.Value) hcl.Diagnostics {
	return d.decode(blk.Labels, blk.DefRange, blk.Body, v)
}

func (d decoder) decode(labels []string, def hcl.Range, body hcl.Body, v reflect.Value) hcl.Diagnostics {
	diags := d.decodeStruct(body, v)
	p := planFor(v.Type())
	for i, idx := range p.labels {
		if i < len(labels) {
			v.Field(idx).SetString(labels[i])
		}
	}
	if p.defRange >= 0 {
		*v.Field(p.defRange).Addr().Interface().(*hcl.Range) = def
	}
	return diags
}

// decodeSyntax is decodeStruct without Content, for a body in which
// Content (or, with remain, PartialContent and then JustAttributes) would
// find nothing to complain about: every attribute and block belongs, each
// block has its labels, nothing is required. For any other body it
// returns ok == false having done nothing, and decodeStruct goes the
// general way, which reports the problems. Content copies every attribute
// and block and builds four maps per body, which was a third of decoding
// a 1,000-task job; what decodeSyntax fills and reports is what the
// general way would.
func (d decoder) decodeSyntax(sb *hclsyntax.Body, p *decodePlan, v reflect.Value) (diags hcl.Diagnostics, ok bool) {
	if p.required || len(p.attrs) > maxPlanAttrs {
		return nil, false
	}
	var found [maxPlanAttrs]*hclsyntax.Attribute
	n := 0
	for i, a := range p.attrs {
		if found[i] = sb.Attributes[a.name]; found[i] != nil {
			n++
		}
	}
	switch {
	case p.remain >= 0:
		if len(sb.Blocks) > 0 {
			return nil, false // JustAttributes refuses any block
		}
	case n < len(sb.Attributes):
		return nil, false // an attribute that does not belong
	default:
		for _, b := range sb.Blocks {
			if l, ok := p.labelCount[b.Type]; !ok || l != len(b.Labels) {
				return nil, false
			}
		}
	}

	if p.body >= 0 {
		*v.Field(p.body).Addr().Interface().(*hcl.Body) = sb
	}
	if p.remain >= 0 {
		attrs := make(hcl.Attributes, len(sb.Attributes)-n)
		for name, a := range sb.Attributes {
			if !p.attrNames[name] {
				attrs[name] = a.AsHCLAttribute()
			}
		}
		v.Field(p.remain).Set(reflect.ValueOf(attrs))
	}
	for i, a := range p.attrs {
		attr := found[i]
		switch {
		case attr == nil:
		case a.expr:
			*v.Field(a.idx).Addr().Interface().(*hcl.Expression) = attr.Expr
		default:
			diags = append(diags, d.sc.decode(attr.Expr, v.Field(a.idx).Addr().Interface())...)
		}
	}
	for _, b := range p.blocks {
		if b.slice {
			for _, blk := range sb.Blocks {
				if blk.Type == b.typ {
					diags = append(diags, d.decodeInto(v, b, blk.Labels, blk.DefRange(), blk.Body)...)
				}
			}
			continue
		}
		// As decodeStruct: the duplicates are reported, then the first is decoded.
		var first *hclsyntax.Block
		for _, blk := range sb.Blocks {
			switch {
			case blk.Type != b.typ:
			case first == nil:
				first = blk
			default:
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Duplicate %s block", b.typ),
					Detail:   fmt.Sprintf("Only one %s block is allowed. Another was defined at %s.", b.typ, first.DefRange()),
					Subject:  blk.DefRange().Ptr(),
				})
			}
		}
		if first != nil {
			diags = append(diags, d.decodeInto(v, b, first.Labels, first.DefRange(), first.Body)...)
		}
	}
	return diags, true
}

// expected lists what belongs in a body of the schema: " Arguments here:
// a, b. Blocks here: c." (remain: the body also takes any argument).
func expected(schema *hcl.BodySchema, remain bool) string {
	var attrs, blocks []string
	for _, a := range schema.Attributes {
		attrs = append(attrs, a.Name)
	}
	for _, b := range schema.Blocks {
		if !slices.Contains(blocks, b.Type) {
			blocks = append(blocks, b.Type)
		}
	}
	slices.Sort(attrs)
	slices.Sort(blocks)
	var b strings.Builder
	switch {
	case remain:
	case len(attrs) == 0:
		b.WriteString(" No arguments belong here.")
	default:
		b.WriteString(" Arguments here: " + strings.Join(attrs, ", ") + ".")
	}
	if len(blocks) == 0 {
		b.WriteString(" No blocks belong here.")
	} else {
		b.WriteString(" Blocks here: " + strings.Join(blocks, ", ") + ".")
	}
	return b.String()
}
