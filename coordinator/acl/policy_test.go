package acl

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-run/strata/spec"
)

func TestParse(t *testing.T) {
	src := `
namespace "default" {
  policy       = "read"
  capabilities = ["read-logs", "read-logs"]
}
namespace "prod-*" {
  capabilities = ["submit-job"]
}
node     { policy = "read" }
agent    { policy = "write" }
operator { policy = "deny" }
`
	p, err := Parse("dev.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{
		Namespaces: []*NamespaceRule{
			{Name: "default", Policy: PolicyRead, Capabilities: []string{CapReadLogs}},
			{Name: "prod-*", Capabilities: []string{CapSubmitJob}},
		},
		Node: PolicyRead, Agent: PolicyWrite, Operator: PolicyDeny,
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("Parse = %+v, want %+v", p, want)
	}
}

// Every problem is reported with its position and a message that says
// what to write instead; Nomad's rules Strata has nothing for are refused
// by name.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // "line:col: Summary: detail substring"
	}{
		{"syntax", `namespace "default" { policy = }`, []string{"1:32: Invalid expression"}},
		{"unknown block", `namespaces "default" { policy = "read" }`, []string{"1:1: Unsupported block type"}},
		{"unknown attribute", "node {\n  policy = \"read\"\n  level = \"x\"\n}", []string{`3:3: Unsupported argument`}},
		{"bad level", `agent { policy = "admin" }`, []string{`1:18: Invalid policy: unknown agent policy "admin"`}},
		{"missing level", `operator {}`, []string{`1:10: Missing required argument`}},
		{"scale", `namespace "default" { policy = "scale" }`, []string{`1:32: Unsupported policy: policy "scale" grants Nomad's scaling`}},
		{"nomad capability", "namespace \"default\" {\n  capabilities = [\"read-job\", \"alloc-exec\"]\n}",
			[]string{`2:31: Unsupported capability: "alloc-exec" is a Nomad capability`}},
		{"unknown capability", `namespace "default" { capabilities = ["fly"] }`, []string{`1:39: Invalid capability: unknown capability "fly"`}},
		{"capabilities not a list", `namespace "default" { capabilities = "read-job" }`, []string{`1:38: Invalid capabilities`}},
		{"empty namespace rule", `namespace "default" {}`, []string{`1:1: Empty namespace rule`}},
		{"bad namespace", `namespace "a b" { policy = "read" }`, []string{`1:11: Invalid namespace`}},
		{"quota", `quota { policy = "read" }`, []string{`1:1: Unsupported rule: quota is a Nomad rule, but Strata has no resource quotas`}},
		{"host_volume", `host_volume "data" { policy = "write" }`, []string{`1:1: Unsupported rule: host_volume is a Nomad rule`}},
		{"variables", `namespace "default" {
  policy = "read"
  variables {
    path "*" { capabilities = ["read"] }
  }
}`, []string{`3:3: Unsupported rule: variables`}},
		{"duplicate", "node { policy = \"read\" }\nnode { policy = \"write\" }", []string{`2:1: Duplicate rule: node is already defined at line 1`}},
		{"empty", "# nothing\n", []string{`1:1: Empty policy`}},
		{"variable reference", `node { policy = var.x }`, []string{`1:17: Variables not allowed`}},
		{"two problems", "node { policy = \"root\" }\nagent { policy = \"boss\" }", []string{`1:17: Invalid policy`, `2:18: Invalid policy`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.hcl", []byte(tc.src))
			var ds spec.Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("Parse error = %v, want diagnostics", err)
			}
			if len(ds) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ds), len(tc.want), err)
			}
			for i, d := range ds {
				if d.Range == nil || d.Range.Filename != "p.hcl" {
					t.Fatalf("problem %d has no range in p.hcl: %v", i, d)
				}
				if !strings.Contains(d.Error(), "p.hcl:"+tc.want[i]) {
					t.Errorf("problem %d = %q, want it to contain %q", i, d.Error(), "p.hcl:"+tc.want[i])
				}
			}
		})
	}
}

// A policy's problem reads as a job file's does: the position, the source
// line and a caret under the offending value.
func TestParseDiagnosticFormat(t *testing.T) {
	src := []byte("namespace \"default\" {\n  policy = \"admin\"\n}\n")
	_, err := Parse("ops.hcl", src)
	var ds spec.Diagnostics
	if !errors.As(err, &ds) {
		t.Fatal(err)
	}
	var b bytes.Buffer
	ds.Format(&b, map[string][]byte{"ops.hcl": src}, false)
	want := `ops.hcl:2:12: Invalid policy
    2 |   policy = "admin"
      |            ^^^^^^^
  unknown namespace policy "admin"; use "deny", "read" or "write"

`
	if b.String() != want {
		t.Fatalf("formatted:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestParseTooLarge(t *testing.T) {
	src := bytes.Repeat([]byte("# padding\n"), MaxPolicySize/10+1)
	_, err := Parse("big.hcl", src)
	if err == nil || !strings.Contains(err.Error(), "File too large") {
		t.Fatalf("Parse of %d bytes = %v, want File too large", len(src), err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`namespace "default" { policy = "write" }`))
	f.Add([]byte(`node { policy = "read" } agent { policy = "deny" }`))
	f.Add([]byte(`namespace "*" { capabilities = ["read-job", "deny"] }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("f.hcl", src)
		if err != nil {
			var ds spec.Diagnostics
			if !errors.As(err, &ds) || len(ds) == 0 {
				t.Fatalf("error is not diagnostics: %v", err)
			}
			return
		}
		// A policy that parses compiles, and grants only known things.
		a := Compile(p)
		for _, ns := range p.Namespaces {
			for _, c := range ns.Capabilities {
				if !containsString(capabilities, c) {
					t.Fatalf("parsed unknown capability %q", c)
				}
			}
		}
		_ = a.Allows(NeedNamespace(CapSubmitJob))
	})
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
