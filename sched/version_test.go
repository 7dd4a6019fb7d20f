package sched

import "testing"

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in     string
		strict bool
		ok     bool
		pre    string
		segs   int // segments written
	}{
		{"1.2.3", false, true, "", 3},
		{"1.2", true, true, "", 2},
		{"v1.2.3", true, true, "", 3},
		{"1.2.3.4", false, true, "", 4},
		{"1.2.3-beta.1", true, true, "beta.1", 3},
		{"1.2.3-beta.1+ent.2", true, true, "beta.1", 3},
		{"1.2.3+ent", true, true, "", 3},
		{"1.2beta1", false, true, "beta1", 2}, // go-version's loose form
		{"1.2beta1", true, false, "", 0},      // SemVer wants the dash
		{"1.2.3-", false, false, "", 0},
		{"1.2.3+", false, false, "", 0},
		{"1.2.3-a..b", false, false, "", 0},
		{"1.", false, false, "", 0},
		{"1..2", false, false, "", 0},
		{"x1.2", false, false, "", 0},
		{"", false, false, "", 0},
		{"1.2.3 ", false, false, "", 0},
		{"11387778780781445675529500000000000000000", false, false, "", 0}, // overflows int64
	}
	for _, tt := range tests {
		v, ok := parseVersion(tt.in, tt.strict)
		if ok != tt.ok || ok && (v.pre != tt.pre || v.si != tt.segs || v.segments() != max(3, tt.segs)) {
			t.Errorf("parseVersion(%q, %v) = %+v, %v; want ok %v pre %q segments %d", tt.in, tt.strict, v, ok, tt.ok, tt.pre, tt.segs)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	// SemVer 2.0 §11's example chain, then padding and metadata.
	chain := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1", "1.10.0", "2"}
	for i := range chain {
		for j := range chain {
			a, _ := parseVersion(chain[i], true)
			b, _ := parseVersion(chain[j], true)
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.compare(b); got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", chain[i], chain[j], got, want)
			}
		}
	}
	for _, eq := range [][2]string{{"1.2", "1.2.0"}, {"1.2.0.0", "1.2"}, {"v1.2.3", "1.2.3"}, {"1.2.3+a", "1.2.3+b"}} {
		a, _ := parseVersion(eq[0], false)
		b, _ := parseVersion(eq[1], false)
		if a.compare(b) != 0 {
			t.Errorf("%s and %s differ", eq[0], eq[1])
		}
	}
}

func TestVersionConstraints(t *testing.T) {
	tests := []struct {
		constraint, version string
		semver              bool
		want                bool
	}{
		// go-version's Constraint ("version").
		{">= 1.0, < 1.2", "1.1.5", false, true},
		{"< 1.0, < 1.2", "1.1.5", false, false},
		{"= 1.0", "1.1.5", false, false},
		{"= 1.0", "1.0.0", false, true},
		{"1.0", "1.0.0", false, true},
		{"!= 1.0", "1.0.1", false, true},
		{"> 10", "8", false, false}, // numbers, not text
		{"~> 1.0", "2.0", false, false},
		{"~> 1.0", "1.1", false, true},
		{"~> 1.0", "1.2.3", false, true},
		{"~> 1.0.0", "1.2.3", false, false},
		{"~> 1.0.0", "1.0.7", false, true},
		{"~> 1.0.0", "1.1.0", false, false},
		{"~> 1.0.7", "1.0.4", false, false},
		{"~> 1.0.7", "1.0.7", false, true},
		{"~> 1.0.7", "1.0.8", false, true},
		{"~> 2.1.0-a", "2.2.0", false, false},
		{"~> 2.1.0-a", "2.1.0", false, false},
		{"~> 2.1.0-a", "2.1.0-beta", false, true},
		{"~> 2.1.0-a", "2.2.0-alpha", false, false},
		{"> 2.0", "2.1.0-beta", false, false},
		{">= 2.1.0-a", "2.1.0-beta", false, true},
		{">= 2.1.0-a", "2.1.1-beta", false, false},
		{">= 2.0.0", "2.1.0-beta", false, false},
		{">= 2.1.0-a", "2.1.1", false, true},
		{">= 2.1.0-a", "2.1.0", false, true},
		{"<= 2.1.0-a", "2.0.0", false, true},
		{"= 2.1.0-a", "2.1.0-a", false, true},
		{">=1.2,<2", "1.9.9", false, true}, // no spaces
		{" >= 1.2 ,  < 2 ", "2.0.0", false, false},
		// Nomad's semver: SemVer 2.0 ordering, pre-releases included.
		{">= 1.0, < 1.2", "1.1.5", true, true},
		{"> 2.0", "2.1.0-beta", true, true},
		{"> 2.1.0-a", "2.1.0-beta", true, true},
		{"> 2.1.0-a", "2.1.1-beta", true, true},
		{"> 2.0.0", "2.1.0-beta", true, true},
		{"> 2.1.0-a", "2.1.1", true, true},
		{"> 2.1.0-a", "2.1.0", true, true},
		{"<= 2.1.0-a", "2.0.0", true, true},
		{">= 0.6.1", "1.3.0-beta1", true, true},
		{"> 1.0-beta1", "1.0-rc1", true, true},
		{">= 0.6.1", "1.3.0-beta1+ent", true, true},
		{">= 1.3.0-beta1", "1.3.0-beta1+ent", true, true},
		{"> 1.3.0-beta1+cgo", "1.3.0-beta1+ent", true, false}, // metadata never counts
		{"= 1.3.0-beta1+cgo", "1.3.0-beta1+ent", true, true},
		{"> 10", "8", true, false},
	}
	for _, tt := range tests {
		cs, ok := parseVersionConstraints(tt.constraint, tt.semver)
		v, vok := parseVersion(tt.version, false)
		if !ok || !vok {
			t.Errorf("%q / %q: does not parse", tt.constraint, tt.version)
			continue
		}
		if got := cs.check(v); got != tt.want {
			t.Errorf("%q (semver %v) on %s = %v, want %v", tt.constraint, tt.semver, tt.version, got, tt.want)
		}
	}
}

func TestVersionConstraintsInvalid(t *testing.T) {
	for _, tt := range []struct {
		s      string
		semver bool
	}{
		{">= 1.x", false}, {"", false}, {">= 1.0,", false}, {"=> 1.0", false}, {"~ 1.0", false},
		{">= 1.0beta1", true}, // SemVer wants a dash
		{"~> 1.0", true},      // no pessimistic operator in semver
		{"11387778780781445675529500000000000000000", true},
	} {
		if _, ok := parseVersionConstraints(tt.s, tt.semver); ok {
			t.Errorf("parseVersionConstraints(%q, semver %v) accepted", tt.s, tt.semver)
		}
	}
}
