package acl

import (
	"strings"
	"testing"
)

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse("t.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Each kind of token against each kind of need.
func TestAllows(t *testing.T) {
	read := mustParse(t, `namespace "default" { policy = "read" }
node { policy = "read" }`)
	write := mustParse(t, `namespace "default" { policy = "write" }
node  { policy = "write" }
agent { policy = "write" }`)
	logsOnly := mustParse(t, `namespace "default" { capabilities = ["read-logs"] }`)
	denyNS := mustParse(t, `namespace "default" { policy = "deny" }
operator { policy = "deny" }`)
	operator := mustParse(t, `operator { policy = "write" }`)

	needs := []Need{
		NeedOpen, NeedToken,
		NeedNamespace(CapListJobs), NeedNamespace(CapReadJob), NeedNamespace(CapSubmitJob), NeedNamespace(CapReadLogs),
		NeedNode(PolicyRead), NeedNode(PolicyWrite),
		NeedAgent(PolicyRead), NeedAgent(PolicyWrite),
		NeedOperator(PolicyRead), NeedOperator(PolicyWrite),
		NeedManagement,
	}
	for _, tc := range []struct {
		name string
		acl  *ACL
		want string // one letter per need above: y or n
	}{
		{"nil", nil, "ynnnnnnnnnnnn"},
		{"anonymous, no policy", Anonymous(), "ynnnnnnnnnnnn"},
		{"anonymous with a read policy", Anonymous(read), "ynyynnynnnnnn"},
		{"read", Compile(read), "yyyynnynnnnnn"},
		{"write", Compile(write), "yyyyyyyyyynnn"},
		{"read-logs capability only", Compile(logsOnly), "yynnnynnnnnnn"},
		{"read and write merged", Compile(read, write), "yyyyyyyyyynnn"},
		{"deny wins over write", Compile(write, denyNS), "yynnnnyyyynnn"},
		{"operator", Compile(operator), "yynnnnnnnnyyn"},
		{"operator denied by another policy", Compile(operator, denyNS), "yynnnnnnnnnnn"},
		{"management", Management(), "yyyyyyyyyyyyy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, n := range needs {
				got := tc.acl.Allows(n)
				if got != (tc.want[i] == 'y') {
					t.Errorf("Allows(%s) = %v", n, got)
				}
			}
		})
	}
}

// A namespace's rule is its exact one, else the closest glob; deny there
// denies everything in it, whatever other rules grant.
func TestNamespaceGlobs(t *testing.T) {
	a := Compile(mustParse(t, `
namespace "*"        { policy = "read" }
namespace "prod-*"   { policy = "write" }
namespace "prod-db"  { policy = "deny" }
namespace "de*t"     { capabilities = ["read-logs"] }
`))
	for _, tc := range []struct {
		ns, capability string
		want           bool
	}{
		{"dev", CapReadJob, true}, // "*"
		{"dev", CapSubmitJob, false},
		{"prod-web", CapSubmitJob, true}, // "prod-*" is closer than "*"
		{"prod-db", CapReadJob, false},   // exact deny
		{"default", CapReadLogs, true},   // "de*t" is closer than "*"
		{"default", CapReadJob, false},   // ... and grants only read-logs
	} {
		if got := a.AllowNamespace(tc.ns, tc.capability); got != tc.want {
			t.Errorf("AllowNamespace(%q, %q) = %v, want %v", tc.ns, tc.capability, got, tc.want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*", "abc", true}, {"*c", "abc", true},
		{"a*c", "ac", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "acb", false},
		{"ab*ba", "aba", false}, {"abc", "abc", true}, {"abc", "abd", false},
	} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pattern, tc.s, got)
		}
	}
}

// A denial's message names the capability and the policy that grants it.
func TestNeedString(t *testing.T) {
	for n, want := range map[Need]string{
		NeedNamespace(CapSubmitJob): `capability "submit-job" in namespace "default" (namespace policy "write" grants it)`,
		NeedNamespace(CapListJobs):  `capability "list-jobs" in namespace "default" (namespace policy "read" grants it)`,
		NeedAgent(PolicyWrite):      `agent:write (an agent { policy = "write" } rule)`,
		NeedManagement:              "a management token",
	} {
		if got := n.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", n, got, want)
		}
		if strings.Contains(n.String(), "unknown") {
			t.Errorf("%#v is unknown", n)
		}
	}
}

// Stopping, restarting and signalling allocations take alloc-lifecycle,
// scaling scale-job or submit-job, as in Nomad; a namespace's write
// policy grants both, its read policy neither.
func TestLifecycleAndScaleNeeds(t *testing.T) {
	lifecycle := NeedNamespace(CapAllocLifecycle)
	scale := NeedNamespaceEither(CapScaleJob, CapSubmitJob)
	for _, tc := range []struct {
		rules            string
		lifecycle, scale bool
	}{
		{`namespace "default" { policy = "write" }`, true, true},
		{`namespace "default" { policy = "read" }`, false, false},
		{`namespace "default" { capabilities = ["submit-job"] }`, false, true},
		{`namespace "default" { capabilities = ["scale-job"] }`, false, true},
		{`namespace "default" { capabilities = ["alloc-lifecycle"] }`, true, false},
		{`namespace "default" {
  policy       = "write"
  capabilities = ["deny"]
}`, false, false},
	} {
		a := Compile(mustParse(t, tc.rules))
		if got := a.Allows(lifecycle); got != tc.lifecycle {
			t.Errorf("%s: alloc-lifecycle allowed = %t", tc.rules, got)
		}
		if got := a.Allows(scale); got != tc.scale {
			t.Errorf("%s: scaling allowed = %t", tc.rules, got)
		}
	}
	if s := scale.String(); !strings.Contains(s, `"scale-job" or "submit-job"`) {
		t.Errorf("the need says %q", s)
	}
}
