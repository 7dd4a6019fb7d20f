package sched

import (
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/strata-run/strata/spec"
)

// The operators of constraints and affinities (the job language's, which
// are Nomad's). A few aliases Nomad also accepts are read too.
const (
	opEqual          = "="
	opNotEqual       = "!="
	opGreater        = ">"
	opGreaterEqual   = ">="
	opLess           = "<"
	opLessEqual      = "<="
	opRegexp         = "regexp"
	opSetContains    = "set_contains"
	opSetContainsAny = "set_contains_any"
	opVersion        = "version"
	opSemver         = "semver"
	opIsSet          = "is_set"
	opIsNotSet       = "is_not_set"
	opDistinctHosts  = "distinct_hosts"
)

// canonicalOp maps Nomad's aliases to the job language's operators; an
// empty operator is "=", the language's default.
func canonicalOp(op string) string {
	switch op {
	case "", "==", "is":
		return opEqual
	case "not":
		return opNotEqual
	case "set_contains_all":
		return opSetContains
	}
	return op
}

// matcher is a compiled "attribute operator value", shared by constraints
// and affinities. A literal value is compiled once (regexp, version
// constraint); a value with references is compiled per resolved string
// through a compileCache.
type matcher struct {
	attr, value template
	op          string
	re          *regexp.Regexp      // literal regexp value
	ver         *versionConstraints // literal version or semver value
	invalid     bool                // the literal value does not compile: never met
}

func newMatcher(attribute, op, value string) matcher {
	m := matcher{attr: parseTemplate(attribute), value: parseTemplate(value), op: canonicalOp(op)}
	lit, ok := m.value.literal()
	if !ok {
		return m
	}
	switch m.op {
	case opRegexp:
		m.re, m.invalid = compileRegexp(lit)
	case opVersion, opSemver:
		m.ver, m.invalid = compileVersion(lit, m.op == opSemver)
	}
	return m
}

// unique reports whether the result depends on more than the node's
// computed class.
func (m *matcher) unique() bool { return m.attr.unique() || m.value.unique() }

// matches reports whether node n satisfies the matcher, with Nomad's
// checkConstraint semantics for unset attributes: only != and
// is_not_set can hold for an attribute the node does not have (an unset
// side counts as "" for !=).
func (m *matcher) matches(n *Node, cc *compileCache) bool {
	l, lok := m.attr.resolve(n)
	switch m.op {
	case opIsSet:
		return lok
	case opIsNotSet:
		return !lok
	}
	r, rok := m.value.resolve(n)
	if m.op == opNotEqual {
		return l != r
	}
	if !lok || !rok {
		return false
	}
	switch m.op {
	case opEqual:
		return l == r
	case opGreater, opGreaterEqual, opLess, opLessEqual:
		return checkOrder(m.op, l, r)
	case opRegexp:
		re := m.re
		if re == nil && !m.invalid {
			re = cc.regexp(r)
		}
		return re != nil && re.MatchString(l)
	case opSetContains:
		return setContainsAll(l, r)
	case opSetContainsAny:
		return setContainsAny(l, r)
	case opVersion, opSemver:
		vc := m.ver
		if vc == nil && !m.invalid {
			vc = cc.version(r, m.op == opSemver)
		}
		if vc == nil {
			return false
		}
		v, ok := parseVersion(l, false) // Nomad parses the node's side loosely for both
		return ok && vc.check(v)
	}
	return false // an operator we do not know never holds
}

// checkOrder is Nomad's checkOrder: as integers when both sides parse as
// integers, else as floats when both parse as floats, else lexically.
func checkOrder(op, l, r string) bool {
	if x, err := strconv.ParseInt(l, 10, 64); err == nil {
		if y, err := strconv.ParseInt(r, 10, 64); err == nil {
			return compareOrder(op, x, y)
		}
	}
	if x, err := strconv.ParseFloat(l, 64); err == nil {
		if y, err := strconv.ParseFloat(r, 64); err == nil {
			return compareOrder(op, x, y)
		}
	}
	return compareOrder(op, l, r)
}

func compareOrder[T int64 | float64 | string](op string, l, r T) bool {
	switch op {
	case opLess:
		return l < r
	case opLessEqual:
		return l <= r
	case opGreater:
		return l > r
	case opGreaterEqual:
		return l >= r
	}
	return false
}

// setContainsAll: every comma-separated item of r (trimmed) is an item of l.
func setContainsAll(l, r string) bool {
	for item := range strings.SplitSeq(r, ",") {
		if !setHas(l, strings.TrimSpace(item)) {
			return false
		}
	}
	return true
}

// setContainsAny: some comma-separated item of r (trimmed) is an item of l.
func setContainsAny(l, r string) bool {
	for item := range strings.SplitSeq(r, ",") {
		if setHas(l, strings.TrimSpace(item)) {
			return true
		}
	}
	return false
}

func setHas(set, item string) bool {
	for s := range strings.SplitSeq(set, ",") {
		if strings.TrimSpace(s) == item {
			return true
		}
	}
	return false
}

func compileRegexp(s string) (*regexp.Regexp, bool) {
	re, err := regexp.Compile(s)
	return re, err != nil
}

func compileVersion(s string, semver bool) (*versionConstraints, bool) {
	vc, ok := parseVersionConstraints(s, semver)
	if !ok {
		return nil, true
	}
	return &vc, false
}

// compileCache holds the regexps and version constraints compiled from
// values with references, per resolved string, for one Schedule call.
// A nil *compileCache compiles every time.
type compileCache struct {
	res  map[string]*regexp.Regexp // nil value: does not compile
	vers map[[2]string]*versionConstraints
}

func (c *compileCache) regexp(s string) *regexp.Regexp {
	if c == nil {
		re, _ := compileRegexp(s)
		return re
	}
	if re, ok := c.res[s]; ok {
		return re
	}
	if c.res == nil {
		c.res = make(map[string]*regexp.Regexp)
	}
	re, _ := compileRegexp(s)
	c.res[s] = re
	return re
}

func (c *compileCache) version(s string, semver bool) *versionConstraints {
	if c == nil {
		vc, _ := compileVersion(s, semver)
		return vc
	}
	key := [2]string{s, "version"}
	if semver {
		key[1] = "semver"
	}
	if vc, ok := c.vers[key]; ok {
		return vc
	}
	if c.vers == nil {
		c.vers = make(map[[2]string]*versionConstraints)
	}
	vc, _ := compileVersion(s, semver)
	c.vers[key] = vc
	return vc
}

// constraintCheck is one compiled constraint other than distinct_hosts.
type constraintCheck struct {
	matcher
	reason string   // "constraint ${attr.kernel.name} = linux"
	id     reasonID // reason interned for one Schedule call
}

// constraintReason is the stable rejection reason of a constraint:
// "constraint <attribute> <operator> <value>", the value left out when
// empty, as the job wrote them.
func constraintReason(c *spec.Constraint) string {
	s := "constraint " + c.Attribute + " " + canonicalOp(c.Operator)
	if c.Value != "" {
		s += " " + c.Value
	}
	return s
}

// Reason given to a node that already runs an allocation the
// distinct_hosts constraint forbids it to share.
const reasonDistinctHosts = "constraint distinct_hosts"

// distinctHosts is the scope of a distinct_hosts constraint.
type distinctHosts uint8

const (
	distinctNone  distinctHosts = iota
	distinctGroup               // at group level: no two copies of the group on a node
	distinctJob                 // at job level: no two allocations of the job on a node
)

// distinctHostsEnabled reads a distinct_hosts constraint's value: true
// when empty, else strconv.ParseBool's answer (false when it fails), as
// in Nomad.
func distinctHostsEnabled(c *spec.Constraint) bool {
	if c.Value == "" {
		return true
	}
	b, err := strconv.ParseBool(c.Value)
	return err == nil && b
}

// compileConstraints compiles the job's then the group's constraints,
// in order, and returns how many are the job's and the distinct_hosts
// scope they ask for.
func compileConstraints(job *spec.Job, g *spec.Group) (checks []constraintCheck, nJob int, dh distinctHosts) {
	add := func(cs []*spec.Constraint, scope distinctHosts) {
		for _, c := range cs {
			if c == nil {
				continue
			}
			if canonicalOp(c.Operator) == opDistinctHosts {
				if distinctHostsEnabled(c) {
					dh = max(dh, scope)
				}
				continue
			}
			checks = append(checks, constraintCheck{
				matcher: newMatcher(c.Attribute, c.Operator, c.Value),
				reason:  constraintReason(c),
			})
		}
	}
	add(job.Constraints, distinctJob)
	nJob = len(checks)
	add(g.Constraints, distinctGroup)
	return checks, nJob, dh
}

// affinityCheck is one compiled affinity.
type affinityCheck struct {
	matcher
	weight float64
}

// compileAffinities compiles the job's then the group's affinities and
// returns the sum of their absolute weights.
func compileAffinities(job *spec.Job, g *spec.Group) ([]affinityCheck, float64) {
	var (
		out []affinityCheck
		sum float64
	)
	for _, as := range [][]*spec.Affinity{job.Affinities, g.Affinities} {
		for _, a := range as {
			if a == nil || a.Weight == 0 {
				continue
			}
			out = append(out, affinityCheck{matcher: newMatcher(a.Attribute, a.Operator, a.Value), weight: float64(a.Weight)})
			sum += math.Abs(float64(a.Weight))
		}
	}
	return out, sum
}
