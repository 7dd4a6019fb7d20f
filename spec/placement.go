package spec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Validation of constraint, affinity and spread: where a job may run.

const (
	constraintOps = `=, !=, >, >=, <, <=, regexp, set_contains, set_contains_any, version, semver, is_set, is_not_set, distinct_hosts`
	affinityOps   = `=, !=, >, >=, <, <=, regexp, set_contains, set_contains_any, version, semver`
)

// placement checks the constraints, affinities and spreads of a job or group.
func (v *validator) placement(at loc, jobType string, cs []*Constraint, as []*Affinity, ss []*Spread) {
	for i, c := range cs {
		cl := at.nth("constraint", i)
		if c == nil {
			v.add(cl, "Missing constraint", "constraint %d is null", i)
			continue
		}
		v.constraint(cl, c)
	}
	for i, a := range as {
		al := at.nth("affinity", i)
		if a == nil {
			v.add(al, "Missing affinity", "affinity %d is null", i)
			continue
		}
		if jobType == JobTypeSystem {
			v.add(al, "Affinity not allowed", "a system job runs on every eligible node, so there is nothing to prefer: use a constraint")
			continue
		}
		v.affinity(al, a)
	}
	for i, s := range ss {
		sl := at.nth("spread", i)
		if s == nil {
			v.add(sl, "Missing spread", "spread %d is null", i)
			continue
		}
		if jobType == JobTypeSystem {
			v.add(sl, "Spread not allowed", "a system job runs on every eligible node, so there is nothing to spread")
			continue
		}
		v.spread(sl, s)
	}
}

func (v *validator) constraint(at loc, c *Constraint) {
	switch c.Operator {
	case OpDistinctHosts:
		if c.Attribute != "" {
			v.add(at.attr("attribute"), "Invalid constraint", "distinct_hosts takes no attribute: it places each allocation on a different node")
		}
		switch c.Value {
		case "", "true", "false":
		default:
			v.add(at.attr("value"), "Invalid constraint", `distinct_hosts takes value "true", "false" or none, got %q`, c.Value)
		}
		return
	case OpIsSet, OpIsNotSet:
		v.attribute(at, c.Attribute)
		if c.Value != "" {
			v.add(at.attr("value"), "Invalid constraint", "%s takes no value: it tests only whether the attribute exists", c.Operator)
		}
		return
	}
	if !v.operator(at, c.Operator, "constraint", constraintOps) {
		return
	}
	v.attribute(at, c.Attribute)
	v.operand(at, c.Operator, c.Value)
}

func (v *validator) affinity(at loc, a *Affinity) {
	if v.operator(at, a.Operator, "affinity", affinityOps) {
		v.attribute(at, a.Attribute)
		v.operand(at, a.Operator, a.Value)
	}
	if a.Weight < -100 || a.Weight > 100 || a.Weight == 0 {
		v.add(at.attr("weight"), "Invalid weight", "weight must be between -100 and 100 and not 0 (negative avoids, positive prefers), got %d", a.Weight)
	}
}

func (v *validator) spread(at loc, s *Spread) {
	v.attribute(at, s.Attribute)
	if s.Weight < 1 || s.Weight > 100 {
		v.add(at.attr("weight"), "Invalid weight", "weight must be between 1 and 100, got %d", s.Weight)
	}
	sum := 0
	seen := map[string]bool{}
	for i, t := range s.Targets {
		if t == nil {
			v.add(at.nth("target", i), "Missing target", "target %d is null", i)
			continue
		}
		tl := at.block("target", i, t.Value)
		switch {
		case t.Value == "":
			v.add(tl, "Invalid spread target", "a target needs a value: target \"us-east-1\" { percent = 50 }")
		case seen[t.Value]:
			v.add(tl, "Duplicate spread target", "target %q is listed twice", t.Value)
		}
		seen[t.Value] = true
		if t.Percent < 0 || t.Percent > 100 {
			v.add(tl.attr("percent"), "Invalid spread target", "percent must be between 0 and 100, got %d", t.Percent)
		}
		sum += t.Percent
	}
	if sum > 100 {
		v.add(at, "Invalid spread", "the targets' percents add up to %d; at most 100", sum)
	}
}

// operator checks that op is one of the list (kind: constraint or affinity).
func (v *validator) operator(at loc, op, kind, ops string) bool {
	for _, o := range strings.Split(ops, ", ") {
		if op == o {
			return true
		}
	}
	if op == OpDistinctHosts || op == OpIsSet || op == OpIsNotSet {
		v.add(at.attr("operator"), "Invalid operator", "operator %q is for constraints, not for an %s; supported: %s", op, kind, ops)
		return false
	}
	v.add(at.attr("operator"), "Invalid operator", "unknown %s operator %q; supported: %s", kind, op, ops)
	return false
}

// attribute checks the node attribute a constraint, affinity or spread
// looks at: exactly one reference, like "${attr.kernel.name}".
func (v *validator) attribute(at loc, s string) {
	al := at.attr("attribute")
	ref, ok := strings.CutPrefix(s, "${")
	ref, ok2 := strings.CutSuffix(ref, "}")
	switch {
	case s == "":
		v.add(al, "Missing attribute", `this needs the node attribute to look at, like attribute = "${attr.kernel.name}" or "${node.datacenter}"`)
	case !ok || !ok2 || strings.Contains(ref, "${") || strings.Contains(ref, "}"):
		v.add(al, "Invalid attribute", `attribute %q must be one node reference, like "${attr.kernel.name}", "${meta.rack}" or "${node.datacenter}"`, s)
	default:
		if msg := checkRef(ref, refNode); msg != "" {
			v.add(al, "Invalid reference", "%s", msg)
		}
	}
}

// operand checks a constraint's or affinity's value for op.
func (v *validator) operand(at loc, op, value string) {
	vl := at.attr("value")
	if value == "" {
		v.add(vl, "Missing value", "operator %q compares the attribute with a value: set value", op)
		return
	}
	v.template(vl, value, refNode, nil)
	if strings.Contains(value, "${") {
		return // resolved per node: checked by the scheduler
	}
	var err error
	switch op {
	case OpRegexp:
		_, err = regexp.Compile(value)
	case OpSetContains, OpSetContainsAny:
		for i, item := range strings.Split(value, ",") {
			if strings.TrimSpace(item) == "" {
				err = fmt.Errorf("item %d of the comma-separated list is empty", i+1)
				break
			}
		}
	case OpVersion:
		err = checkVersionConstraint(value, false)
	case OpSemver:
		err = checkVersionConstraint(value, true)
	}
	if err != nil {
		v.add(vl, "Invalid value", "value %q for operator %q: %v", value, op, err)
	}
}

var (
	versionRE = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)*(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	semverRE  = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

// checkVersionConstraint checks a version constraint as the scheduler
// reads it: comma-separated "[op] version", op one of = != > >= < <= and,
// for the "version" operator (hashicorp/go-version's syntax), ~>. semver
// takes SemVer 2.0 versions (MAJOR[.MINOR[.PATCH]][-pre][+build]) and no ~>.
func checkVersionConstraint(s string, semver bool) error {
	for _, part := range strings.Split(s, ",") {
		c := strings.TrimSpace(part)
		if c == "" {
			return errors.New(`a constraint is empty; write constraints like ">= 1.2, < 2.0"`)
		}
		op := ""
		for _, o := range []string{"~>", ">=", "<=", "!=", ">", "<", "="} {
			if strings.HasPrefix(c, o) {
				op = o
				break
			}
		}
		ver := strings.TrimSpace(strings.TrimPrefix(c, op))
		if op == "~>" && semver {
			return errors.New(`semver has no pessimistic operator "~>"; use operator "version", or ">= 1.2, < 2.0"`)
		}
		re := versionRE
		if semver {
			re = semverRE
		}
		if !re.MatchString(ver) {
			return fmt.Errorf("%q is not a version; write constraints like \">= 1.2.0, < 2.0.0\"", ver)
		}
	}
	return nil
}
