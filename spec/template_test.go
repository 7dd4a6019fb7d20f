package spec

import (
	"maps"
	"strings"
	"testing"
)

func TestInterpolate(t *testing.T) {
	vals := map[string]string{"STRATA_PORT_http": "24001", "node.datacenter": "dc1", "attr.a-b": "x"}
	resolve := func(ref string) (string, bool) { v, ok := vals[ref]; return v, ok }
	tests := []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "", want: ""},
		{in: "${STRATA_PORT_http}", want: "24001"},
		{in: ":${STRATA_PORT_http}/${node.datacenter}", want: ":24001/dc1"},
		{in: "${attr.a-b}", want: "x"},
		{in: "$${STRATA_PORT_http}", want: "${STRATA_PORT_http}"},
		{in: "a$$${STRATA_PORT_http}", want: "a$${STRATA_PORT_http}"},
		{in: "costs $5 or $$6", want: "costs $5 or $$6"},
		{in: "$", want: "$"},
		{in: "${}", err: "unknown reference ${}"},
		{in: "${nope}", err: "unknown reference ${nope}"},
		{in: "x ${STRATA_PORT_http", err: `"${" without a closing "}"`},
	}
	for _, tt := range tests {
		got, err := Interpolate(tt.in, resolve)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Interpolate(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
			}
		case err != nil || got != tt.want:
			t.Errorf("Interpolate(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// What the HCL side writes, Interpolate reads back: the file's meaning
// survives the round trip through the typed job.
func TestTemplateFromHCL(t *testing.T) {
	tests := []struct {
		hcl  string // an env value as written in the file
		want string // the value in the typed job
		run  string // after Interpolate with STRATA_PORT_http=1
	}{
		{`"${STRATA_PORT_http}"`, "${STRATA_PORT_http}", "1"},
		{`"$${STRATA_PORT_http}"`, "$${STRATA_PORT_http}", "${STRATA_PORT_http}"},
		{`"a$$${STRATA_PORT_http}"`, "a$$${STRATA_PORT_http}", "a$${STRATA_PORT_http}"},
		{`"%%{x}"`, "%{x}", "%{x}"},
		{`"${ STRATA_PORT_http }"`, "${STRATA_PORT_http}", "1"},
		{`"x ${~ STRATA_PORT_http ~} y"`, "x${STRATA_PORT_http}y", "x1y"},
		{`"${var.v}"`, "$${lit}", "${lit}"},
		{`"${var.v}${STRATA_PORT_http}"`, "$${lit}${STRATA_PORT_http}", "${lit}1"},
		{`"${"$"}{STRATA_PORT_http}"`, "$${STRATA_PORT_http}", "${STRATA_PORT_http}"},
		{`42`, "42", "42"},
		{`true`, "true", "true"},
		{`"${1 + 1}"`, "2", "2"},
		{`var.v`, "$${lit}", "${lit}"},
		{`"%{ if true }${STRATA_PORT_http}%{ endif }"`, "", ""}, // a directive around a reference: refused
	}
	for _, tt := range tests {
		src := "variable \"v\" {\n  default = \"${\"$\"}{lit}\"\n}\njob \"j\" {\n  group \"g\" {\n    network {\n      port \"http\" {}\n    }\n" +
			"    task \"t\" {\n      driver = \"docker\"\n      config {\n        image = \"x\"\n      }\n      env {\n        A = " + tt.hcl + "\n      }\n    }\n  }\n}\n"
		j, err := Parse("t.hcl", []byte(src))
		if tt.want == "" {
			if err == nil {
				t.Errorf("%s: parsed as %q, want an error", tt.hcl, j.Groups[0].Tasks[0].Env["A"])
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.hcl, err)
			continue
		}
		got := j.Groups[0].Tasks[0].Env["A"]
		if got != tt.want {
			t.Errorf("%s: typed job has %q, want %q", tt.hcl, got, tt.want)
		}
		run, err := Interpolate(got, func(string) (string, bool) { return "1", true })
		if err != nil || run != tt.run {
			t.Errorf("%s: Interpolate(%q) = %q, %v; want %q", tt.hcl, got, run, err, tt.run)
		}
	}
}

func TestCheckRef(t *testing.T) {
	tests := []struct {
		ref  string
		kind refKind
		ok   bool
	}{
		{"node.datacenter", refNode, true},
		{"node.unique.name", refNode, true},
		{"node.unique.id", refNode, true},
		{"node.class", refNode, true},
		{"node.region", refNode, false},
		{"attr.kernel.name", refNode, true},
		{"attr.unique.platform.aws.instance-type", refNode, true},
		{"attr.", refNode, false},
		{"attr..x", refNode, false},
		{"meta.rack", refNode, true},
		{"meta.a b", refNode, false},
		{"STRATA_PORT_http", refNode, false},
		{"STRATA_PORT_http", refRuntime, true},
		{"NOMAD_ALLOC_ID", refRuntime, true},
		{"NOMAD_META_a.b", refRuntime, false},
		{"NOMAD_ALLOC_INDEX", refRuntime, true},
		{"STRATA_ALLOC_INDEX", refRuntime, true},
		{"NOMAD_DC", refRuntime, true},
		{"NOMAD_HOST_ADDR_http", refRuntime, true},
		{"NOMAD_META_owner", refRuntime, true},
		{"NOMAD_ALLOC_INDX", refRuntime, false},
		{"NOMAD_META_", refRuntime, false},
		{"STRATA_PORT_", refRuntime, false},
		{"NOMAD_ALLOC_INDEX", refNode, false},
		{"foo.bar", refRuntime, false},
		{"var.x", refRuntime, false},
		{"", refRuntime, false},
	}
	for _, tt := range tests {
		if msg := checkRef(tt.ref, tt.kind); (msg == "") != tt.ok {
			t.Errorf("checkRef(%q, %d) = %q; ok want %v", tt.ref, tt.kind, msg, tt.ok)
		}
	}
}

// A port variable names its label after the longest prefix: HOST_PORT_x
// is port x, whichever spelling.
func TestPortOfRef(t *testing.T) {
	for ref, want := range map[string]string{
		"NOMAD_PORT_http": "http", "STRATA_HOST_PORT_http": "http", "NOMAD_HOST_ADDR_db": "db",
		"NOMAD_ALLOC_PORT_x": "x", "NOMAD_IP_admin": "admin", "NOMAD_ALLOC_ID": "", "NOMAD_PORT_": "",
	} {
		got, ok := portOfRef(ref)
		if got != want || ok != (want != "") {
			t.Errorf("portOfRef(%q) = %q, %v; want %q", ref, got, ok, want)
		}
	}
}

// NOMAD_META_<key> and STRATA_META_<key> carry the merged meta, the
// task's over the group's over the job's, and an upper-cased twin.
func TestMetaVars(t *testing.T) {
	got := MetaVars(map[string]string{"owner": "job", "tier": "web"}, map[string]string{"owner": "group"}, map[string]string{"TIER": "task"})
	want := map[string]string{
		"NOMAD_META_owner": "group", "NOMAD_META_OWNER": "group", "STRATA_META_owner": "group", "STRATA_META_OWNER": "group",
		"NOMAD_META_tier": "web", "STRATA_META_tier": "web", "NOMAD_META_TIER": "task", "STRATA_META_TIER": "task",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("MetaVars = %v\nwant %v", got, want)
	}
}

func TestCheckVersionConstraint(t *testing.T) {
	tests := []struct {
		in     string
		semver bool
		ok     bool
	}{
		{">= 0.1.0, < 0.2", false, true},
		{"~> 1.2", false, true},
		{"= v1.2.3-beta.1+build.5", false, true},
		{"1.2", false, true},
		{"> 3.19", false, true},
		{">= 1.0.0, < 2.0.0", true, true},
		{"1.6.0-beta", true, true},
		{"~> 1.2", true, false},
		{"v1.2.3", true, false},
		{"1.2.3.4", true, false},
		{">= one", false, false},
		{">= 1.0,", false, false},
		{"", false, false},
		{">=", false, false},
	}
	for _, tt := range tests {
		if err := checkVersionConstraint(tt.in, tt.semver); (err == nil) != tt.ok {
			t.Errorf("checkVersionConstraint(%q, semver=%v) = %v; ok want %v", tt.in, tt.semver, err, tt.ok)
		}
	}
}

// Values that come from variables are literal text, whatever they hold;
// a variable name twice in an env map is an error.
func TestTemplateVariablesAreLiteral(t *testing.T) {
	src := `variable "env" {
  default = { A = "$${x}" }
}
variable "args" {
  default = ["${"$"}{y}"]
}
job "j" {
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image = "x"
        args  = var.args
      }
      env = var.env
    }
  }
}
`
	j, err := Parse("v.hcl", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tk := j.Groups[0].Tasks[0]
	if tk.Env["A"] != "$${x}" || tk.Config.Args[0] != "$${y}" {
		t.Errorf("env %q args %q: variable values must stay literal", tk.Env, tk.Config.Args)
	}

	dup := strings.Replace(src, "env = var.env", `env = { A = "1", A = "2" }`, 1)
	_, err = Parse("v.hcl", []byte(dup))
	if err == nil || !strings.Contains(err.Error(), "v.hcl:15:24: Duplicate environment variable: A is set twice; the first is at v.hcl:15,15-16") {
		t.Errorf("duplicate env key: %v", err)
	}
}
