package acl

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/strata-run/strata/spec"
)

// The levels of a node, agent or operator rule, and a namespace rule's
// policy.
const (
	PolicyDeny  = "deny"
	PolicyRead  = "read"
	PolicyWrite = "write"
)

// The namespace capabilities Strata honours: each guards operations of
// the API (the route table says which). A namespace policy is shorthand:
// "read" is list-jobs and read-job; "write" adds submit-job, read-logs,
// alloc-lifecycle (stop, restart and signal an allocation), scale-job and
// dispatch-job;
// "deny" is deny, which wins over every grant.
const (
	CapDeny           = "deny"
	CapListJobs       = "list-jobs"
	CapReadJob        = "read-job"
	CapSubmitJob      = "submit-job"
	CapReadLogs       = "read-logs"
	CapAllocLifecycle = "alloc-lifecycle"
	CapScaleJob       = "scale-job"
	CapDispatchJob    = "dispatch-job"
)

// DefaultNamespace is Strata's one namespace: every job is in it.
const DefaultNamespace = "default"

// MaxPolicySize bounds a policy's rules, in bytes.
const MaxPolicySize = 64 << 10

// capabilities lists the capabilities Strata honours, in the order
// messages show them.
var capabilities = []string{CapDeny, CapListJobs, CapReadJob, CapSubmitJob, CapReadLogs, CapAllocLifecycle, CapScaleJob, CapDispatchJob}

// nomadOnly are Nomad's namespace capabilities that guard operations
// Strata does not have: refused by name, with what Strata honours.
var nomadOnly = []string{
	"parse-job", "read-fs", "alloc-exec", "alloc-node-exec",
	"csi-register-plugin", "csi-write-volume", "csi-read-volume", "csi-list-volume", "csi-mount-volume",
	"list-scaling-policies", "read-scaling-policy", "read-job-scaling",
	"sentinel-override", "submit-recommendation", "host-volume-create", "host-volume-register",
	"host-volume-read", "host-volume-write", "host-volume-delete",
}

// expand is a namespace policy's capabilities.
func expand(policy string) []string {
	switch policy {
	case PolicyDeny:
		return []string{CapDeny}
	case PolicyRead:
		return []string{CapListJobs, CapReadJob}
	case PolicyWrite:
		return []string{CapListJobs, CapReadJob, CapSubmitJob, CapReadLogs, CapAllocLifecycle, CapScaleJob, CapDispatchJob}
	}
	return nil
}

// Policy is a parsed ACL policy: Nomad's rules, as far as Strata has
// something for them to guard.
type Policy struct {
	// Namespaces are the namespace rules in file order; Name may be a
	// glob ("*", "prod-*").
	Namespaces []*NamespaceRule
	// Node, Agent and Operator are PolicyDeny, PolicyRead or PolicyWrite,
	// or "" when the policy has no such rule.
	Node, Agent, Operator string
}

// NamespaceRule grants (or denies) capabilities in the namespaces whose
// name matches Name: Policy's expansion and Capabilities together.
type NamespaceRule struct {
	Name         string
	Policy       string // "" when only capabilities are given
	Capabilities []string
}

// Parse reads an ACL policy in Nomad's HCL form:
//
//	namespace "default" {
//	  policy       = "write"                  # deny | read | write
//	  capabilities = ["read-logs"]            # added to the policy's
//	}
//	node     { policy = "read" }              # deny | read | write
//	agent    { policy = "write" }
//	operator { policy = "read" }
//
// filename is used in positions only. A problem is returned as
// spec.Diagnostics, each with its source range, like a job file's: a
// syntax error, an unknown block or attribute, a value of the wrong type,
// a level or capability Strata does not know, or one of Nomad's rules
// that guards nothing in Strata (quota, plugin, host_volume, node_pool,
// variables, the "scale" policy and capabilities such as dispatch-job),
// which is refused rather than accepted and ignored.
func Parse(filename string, src []byte) (*Policy, error) {
	if err := spec.CheckSource(filename, src, MaxPolicySize, "an ACL policy"); err != nil {
		return nil, err
	}
	file, hds := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if hds.HasErrors() {
		return nil, toDiagnostics(hds)
	}
	p := &parser{}
	pol := p.policy(file.Body, file.Body.(*hclsyntax.Body).SrcRange)
	if len(p.diags) > 0 {
		return nil, p.diags
	}
	return pol, nil
}

// toDiagnostics converts hcl's error diagnostics.
func toDiagnostics(hds hcl.Diagnostics) spec.Diagnostics {
	var ds spec.Diagnostics
	for _, hd := range hds {
		if hd.Severity != hcl.DiagError {
			continue
		}
		d := &spec.Diagnostic{Summary: hd.Summary, Detail: hd.Detail}
		if hd.Subject != nil {
			r := *hd.Subject
			d.Range = &r
		}
		ds = append(ds, d)
	}
	return ds
}

type parser struct{ diags spec.Diagnostics }

func (p *parser) add(r hcl.Range, summary, format string, args ...any) {
	p.diags = append(p.diags, &spec.Diagnostic{Summary: summary, Detail: fmt.Sprintf(format, args...), Range: &r})
}

var policySchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "namespace", LabelNames: []string{"name"}},
	{Type: "node"}, {Type: "agent"}, {Type: "operator"},
	// Nomad's, refused with a message (unsupported below).
	{Type: "quota"}, {Type: "plugin"}, {Type: "node_pool", LabelNames: []string{"name"}},
	{Type: "host_volume", LabelNames: []string{"name"}},
}}

// unsupported says, for each of Nomad's rules Strata refuses, why.
var unsupported = map[string]string{
	"quota":       "Strata has no resource quotas",
	"plugin":      "Strata has no CSI plugins",
	"node_pool":   "Strata has no node pools",
	"host_volume": "Strata's host volumes are declared by each agent's operator (strata agent -host-volume NAME=PATH) and a job may ask for any of them: there are no host volume operations to guard",
	"variables":   "Strata has no variables",
}

var namespaceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "policy"}, {Name: "capabilities"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "variables"}},
}

var levelSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "policy", Required: true}}}

func (p *parser) policy(body hcl.Body, whole hcl.Range) *Policy {
	content, hds := body.Content(policySchema)
	p.diags = append(p.diags, toDiagnostics(hds)...)
	pol := &Policy{}
	seen := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		key := b.Type
		if len(b.Labels) > 0 {
			key += " " + b.Labels[0]
		}
		if first, dup := seen[key]; dup {
			p.add(b.DefRange, "Duplicate rule", "%s is already defined at line %d; write each rule once", describe(b), first.Start.Line)
			continue
		}
		seen[key] = b.DefRange
		switch b.Type {
		case "namespace":
			if r := p.namespace(b); r != nil {
				pol.Namespaces = append(pol.Namespaces, r)
			}
		case "node":
			pol.Node = p.level(b)
		case "agent":
			pol.Agent = p.level(b)
		case "operator":
			pol.Operator = p.level(b)
		default:
			p.add(b.DefRange, "Unsupported rule", "%s is a Nomad rule, but %s; Strata's rules are namespace, node, agent and operator", b.Type, unsupported[b.Type])
		}
	}
	if len(p.diags) == 0 && len(pol.Namespaces) == 0 && pol.Node == "" && pol.Agent == "" && pol.Operator == "" {
		start := hcl.Range{Filename: whole.Filename, Start: whole.Start, End: whole.Start}
		p.add(start, "Empty policy", "the policy has no rule: write at least one of namespace \"default\" { policy = \"read\" }, node, agent or operator { policy = \"read\" }")
	}
	return pol
}

func describe(b *hcl.Block) string {
	if len(b.Labels) > 0 {
		return fmt.Sprintf("%s %q", b.Type, b.Labels[0])
	}
	return b.Type
}

func (p *parser) namespace(b *hcl.Block) *NamespaceRule {
	name := b.Labels[0]
	if err := validNamespace(name); err != nil {
		p.add(b.LabelRanges[0], "Invalid namespace", "%v", err)
	}
	content, hds := b.Body.Content(namespaceSchema)
	p.diags = append(p.diags, toDiagnostics(hds)...)
	for _, vb := range content.Blocks {
		p.add(vb.DefRange, "Unsupported rule", "variables is a Nomad rule, but %s", unsupported["variables"])
	}
	r := &NamespaceRule{Name: name}
	pa, hasPolicy := content.Attributes["policy"]
	if hasPolicy {
		r.Policy = p.str(pa)
		switch r.Policy {
		case PolicyDeny, PolicyRead, PolicyWrite, "":
		case "scale":
			p.add(pa.Expr.Range(), "Unsupported policy", "policy \"scale\" grants Nomad's scaling capabilities, and Strata has no scaling API; use %q, %q or %q", PolicyDeny, PolicyRead, PolicyWrite)
		default:
			p.add(pa.Expr.Range(), "Invalid policy", "unknown namespace policy %q; use %q, %q or %q", r.Policy, PolicyDeny, PolicyRead, PolicyWrite)
		}
	}
	ca, hasCaps := content.Attributes["capabilities"]
	if hasCaps {
		r.Capabilities = p.capabilities(ca)
	}
	if !hasPolicy && !hasCaps {
		p.add(b.DefRange, "Empty namespace rule", "namespace %q needs a policy (%q, %q or %q) or capabilities", name, PolicyDeny, PolicyRead, PolicyWrite)
	}
	return r
}

func (p *parser) capabilities(a *hcl.Attribute) []string {
	v, hds := a.Expr.Value(nil)
	if hds.HasErrors() {
		p.diags = append(p.diags, toDiagnostics(hds)...)
		return nil
	}
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || lv.IsNull() {
		p.add(a.Expr.Range(), "Invalid capabilities", "capabilities must be a list of strings, like [%q, %q]", CapReadJob, CapReadLogs)
		return nil
	}
	var out []string
	exprs, _ := hcl.ExprList(a.Expr)
	for i, ev := range lv.AsValueSlice() {
		rng := a.Expr.Range()
		if i < len(exprs) {
			rng = exprs[i].Range()
		}
		if ev.IsNull() {
			p.add(rng, "Invalid capability", "a capability must not be null")
			continue
		}
		c := ev.AsString()
		switch {
		case slices.Contains(capabilities, c):
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		case slices.Contains(nomadOnly, c):
			p.add(rng, "Unsupported capability", "%q is a Nomad capability that guards an operation Strata does not have; Strata's capabilities: %s", c, strings.Join(capabilities, ", "))
		default:
			p.add(rng, "Invalid capability", "unknown capability %q; Strata's capabilities: %s", c, strings.Join(capabilities, ", "))
		}
	}
	return out
}

func (p *parser) level(b *hcl.Block) string {
	content, hds := b.Body.Content(levelSchema)
	p.diags = append(p.diags, toDiagnostics(hds)...)
	a, ok := content.Attributes["policy"]
	if !ok {
		return ""
	}
	l := p.str(a)
	switch l {
	case PolicyDeny, PolicyRead, PolicyWrite:
		return l
	case "":
		// str reported it
	default:
		p.add(a.Expr.Range(), "Invalid policy", "unknown %s policy %q; use %q, %q or %q", b.Type, l, PolicyDeny, PolicyRead, PolicyWrite)
	}
	return ""
}

// str evaluates a string attribute; "" after reporting a problem.
func (p *parser) str(a *hcl.Attribute) string {
	v, hds := a.Expr.Value(nil)
	if hds.HasErrors() {
		p.diags = append(p.diags, toDiagnostics(hds)...)
		return ""
	}
	sv, err := convert.Convert(v, cty.String)
	if err != nil || sv.IsNull() {
		p.add(a.Expr.Range(), "Invalid value", "%s must be a string", a.Name)
		return ""
	}
	if sv.AsString() == "" {
		p.add(a.Expr.Range(), "Invalid value", "%s must not be empty", a.Name)
	}
	return sv.AsString()
}

// validNamespace checks a namespace name or glob: Nomad's characters
// (letters, digits, '-', '_', '.') and '*'.
func validNamespace(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("namespace %q must be 1 to 128 characters", s)
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '*') {
			return fmt.Errorf("namespace %q contains %q: use letters, digits, '-', '_', '.' and '*' (a glob)", s, c)
		}
	}
	return nil
}
