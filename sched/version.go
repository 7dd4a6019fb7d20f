package sched

import (
	"strconv"
	"strings"
)

// Versions and version constraints for the "version" and "semver"
// operators, with the semantics of hashicorp/go-version (which Nomad uses)
// written out here rather than imported:
//
//   - A version is [v]N(.N)*, then a pre-release ("-beta.1"; for "version"
//     the dash may be left out before a letter: "1.2beta") and build
//     metadata ("+ent"), which never counts. Missing segments are zeros:
//     1.2 = 1.2.0.
//   - A constraint is a comma-separated list, all of which must hold, of
//     [op] version with op one of = != > >= < <= and, for "version" only,
//     ~> (pessimistic: "~> 1.2" is >= 1.2, < 2.0; "~> 1.2.3" is >= 1.2.3,
//     < 1.3). No op means =.
//   - "version" (go-version's Constraint) lets a pre-release satisfy an
//     ordering (> >= < <= ~>) only when the constraint names a pre-release
//     of the same MAJOR.MINOR.PATCH: 1.3.0-beta1 does not satisfy ">= 1.2".
//     "semver" (Nomad's helper/constraints/semver) orders pre-releases as
//     SemVer 2.0 does: 1.3.0-beta1 satisfies ">= 1.2".
//   - Pre-releases compare by dot-separated identifiers, numeric ones
//     numerically and below alphanumeric ones, and a shorter list first
//     when one is a prefix of the other (SemVer 2.0 §11; go-version differs
//     on the last point for alphanumeric identifiers).
//
// A version or constraint that does not parse never matches.

// version is a parsed version.
type version struct {
	seg   [3]int64 // MAJOR.MINOR.PATCH, zero padded
	extra []int64  // segments after the third (rare)
	si    int      // segments written
	pre   string   // pre-release, without the dash
}

// segments is the number of segments, at least three.
func (v *version) segments() int { return 3 + len(v.extra) }

// segment returns segment i, 0 past the end.
func (v *version) segment(i int) int64 {
	switch {
	case i < 3:
		return v.seg[i]
	case i-3 < len(v.extra):
		return v.extra[i-3]
	}
	return 0
}

// parseVersion reads a version; strict asks for a dash before the
// pre-release (SemVer), as go-version's NewSemver does.
func parseVersion(s string, strict bool) (version, bool) {
	s = strings.TrimPrefix(s, "v")
	var v version
	for {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return version{}, false
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return version{}, false
		}
		if v.si < 3 {
			v.seg[v.si] = n
		} else {
			v.extra = append(v.extra, n)
		}
		v.si++
		s = s[i:]
		if len(s) > 1 && s[0] == '.' && s[1] >= '0' && s[1] <= '9' {
			s = s[1:]
			continue
		}
		break
	}
	pre, meta, hasMeta := strings.Cut(s, "+")
	if hasMeta && !validIdents(meta) {
		return version{}, false
	}
	switch {
	case pre == "":
	case pre[0] == '-':
		pre = pre[1:]
		if pre == "" || !validIdents(pre) {
			return version{}, false
		}
		// go-version: after the dash, a numeric start or a letter start.
	case strict:
		return version{}, false
	default:
		// go-version accepts "1.2beta1": a pre-release starting with a
		// letter, '-' or '~' without the dash.
		if !isLetterish(pre[0]) || !validIdents(pre) {
			return version{}, false
		}
	}
	v.pre = pre
	return v, true
}

func isLetterish(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '~'
}

// validIdents checks dot-separated, non-empty identifiers of
// [0-9A-Za-z-~].
func validIdents(s string) bool {
	if s == "" {
		return false
	}
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		for i := 0; i < len(id); i++ {
			if c := id[i]; !(c >= '0' && c <= '9' || isLetterish(c)) {
				return false
			}
		}
	}
	return true
}

// compareSegments compares the numeric segments, missing ones as zeros.
func compareSegments(a, b *version) int {
	for i := range max(a.segments(), b.segments()) {
		if x, y := a.segment(i), b.segment(i); x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// compare orders versions: segments, then a release after its
// pre-releases, then pre-releases by identifier.
func (v version) compare(o version) int {
	if c := compareSegments(&v, &o); c != 0 {
		return c
	}
	switch {
	case v.pre == o.pre:
		return 0
	case v.pre == "":
		return 1
	case o.pre == "":
		return -1
	}
	return comparePrerelease(v.pre, o.pre)
}

func comparePrerelease(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range min(len(as), len(bs)) {
		if c := compareIdent(as[i], bs[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	return 0
}

func compareIdent(a, b string) int {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	switch {
	case errA == nil && errB == nil:
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b) // "01" and "1"
	case errA == nil:
		return -1 // numeric identifiers sort first
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// versionConstraint is one "op version" of a constraint list.
type versionConstraint struct {
	op  string
	ver version
}

// versionConstraints is a parsed constraint list; semver selects the
// flavour (see the top of this file).
type versionConstraints struct {
	list   []versionConstraint
	semver bool
}

// versionOps, longest first so that ">=" is not read as ">".
var versionOps = []string{"~>", ">=", "<=", "!=", ">", "<", "="}

// parseVersionConstraints reads "op version, op version, ...".
func parseVersionConstraints(s string, semver bool) (versionConstraints, bool) {
	cs := versionConstraints{semver: semver}
	for single := range strings.SplitSeq(s, ",") {
		single = strings.TrimSpace(single)
		op := ""
		for _, o := range versionOps {
			if strings.HasPrefix(single, o) {
				op = o
				break
			}
		}
		if op == "~>" && semver {
			return versionConstraints{}, false
		}
		v, ok := parseVersion(strings.TrimSpace(single[len(op):]), semver)
		if !ok {
			return versionConstraints{}, false
		}
		if op == "" {
			op = "="
		}
		cs.list = append(cs.list, versionConstraint{op: op, ver: v})
	}
	return cs, len(cs.list) > 0
}

// check reports whether v satisfies every constraint of the list.
func (cs versionConstraints) check(v version) bool {
	for _, c := range cs.list {
		if !c.check(v, cs.semver) {
			return false
		}
	}
	return true
}

func (c versionConstraint) check(v version, semver bool) bool {
	cmp := v.compare(c.ver)
	switch c.op {
	case "=":
		return cmp == 0
	case "!=":
		return cmp != 0
	}
	if !semver && !prereleaseAllowed(v, c.ver) {
		return false
	}
	switch c.op {
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case "~>":
		return pessimistic(v, c.ver, cmp)
	}
	return false
}

// prereleaseAllowed is go-version's prereleaseCheck: a pre-release
// version only satisfies an ordering constraint that names a pre-release
// of the same segments.
func prereleaseAllowed(v, c version) bool {
	switch {
	case v.pre != "" && c.pre != "":
		return compareSegments(&v, &c) == 0
	case v.pre != "":
		return false
	}
	return true
}

// pessimistic is go-version's ~>: v >= c, the segments c wrote but the
// last equal, and a pre-release constraint only matched by pre-releases.
func pessimistic(v, c version, cmp int) bool {
	if c.pre != "" && v.pre == "" || cmp < 0 || c.segments() > v.segments() {
		return false
	}
	for i := 0; i < c.si-1; i++ {
		if v.segment(i) != c.segment(i) {
			return false
		}
	}
	last := c.segments() - 1
	return c.segment(last) <= v.segment(last)
}
