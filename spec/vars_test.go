package spec

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestVars(t *testing.T) {
	src, err := os.ReadFile("testdata/variables.hcl")
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Count  int
		Image  string
		DCs    []string
		Env    map[string]string
		Canary int
		Args   []string
	}
	read := func(j *Job) got {
		g := j.Groups[0]
		tk := g.Tasks[0]
		return got{g.Count, tk.Config.Image, j.Datacenters, tk.Env, g.Update.Canary, tk.Config.Args}
	}
	file := func(name, s string) VarFile { return VarFile{Name: name, Src: []byte(s)} }
	tests := []struct {
		name string
		vars Vars
		want got
	}{
		{"defaults", Vars{},
			got{2, "nginx:1.27", []string{"dc1"}, map[string]string{"LOG_LEVEL": "info"}, 0, []string{"--listen", "${STRATA_PORT_http}", "--workers=4"}}},
		{"a file", Vars{Files: []VarFile{file("prod.hcl", "replicas = 5\ntag = \"1.25\"\ndatacenters = [\"a\", \"b\"]\n")}},
			got{5, "nginx:1.25", []string{"a", "b"}, map[string]string{"LOG_LEVEL": "info"}, 0, []string{"--listen", "${STRATA_PORT_http}", "--workers=10"}}},
		{"a later file wins", Vars{Files: []VarFile{file("a.hcl", "replicas = 5\ntag = \"1\"\n"), file("b.hcl", "replicas = 6\n")}},
			got{6, "nginx:1", []string{"dc1"}, map[string]string{"LOG_LEVEL": "info"}, 0, []string{"--listen", "${STRATA_PORT_http}", "--workers=12"}}},
		{"-var beats the files, the last -var wins", Vars{
			Files: []VarFile{file("prod.hcl", "replicas = 5\ntag = \"1.25\"\n")},
			Flags: []string{"replicas=7", "image=caddy", "image=httpd"},
		}, got{7, "httpd:1.25", []string{"dc1"}, map[string]string{"LOG_LEVEL": "info"}, 0, []string{"--listen", "${STRATA_PORT_http}", "--workers=14"}}},
		{"-var of other types is HCL", Vars{Flags: []string{"canary=true", `datacenters=["x"]`, `env={A = "b=c"}`, "tag=${not.a.ref}"}},
			got{2, "nginx:${not.a.ref}", []string{"x"}, map[string]string{"A": "b=c"}, 1, []string{"--listen", "${STRATA_PORT_http}", "--workers=4"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := ParseWithVars("variables.hcl", src, tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			if g := read(j); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got  %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestVarsErrors(t *testing.T) {
	src, err := os.ReadFile("testdata/variables.hcl")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		vars Vars
		want string // Error()
	}{
		{"unknown -var", Vars{Flags: []string{"replica=3"}},
			`Undeclared variable: -var replica=3: the job file declares no variable "replica" (declared: canary, datacenters, env, image, replicas, tag)`},
		{"-var without =", Vars{Flags: []string{"replicas"}},
			`Invalid -var: -var "replicas": expected NAME=VALUE, like -var count=3`},
		{"-var of the wrong type", Vars{Flags: []string{"replicas=many"}},
			`Invalid value for variable: -var replicas=many: variable "replicas" is of type number, and "many" is not a value of it; write the value as HCL does, like 3, true or ["a", "b"]`},
		{"-var list of the wrong type", Vars{Flags: []string{`datacenters={a = 1}`}},
			`Invalid value for variable: -var datacenters={a = 1}: variable "datacenters" is of type list(string): list of string required`},
		{"unknown name in a file", Vars{Files: []VarFile{{Name: "prod.hcl", Src: []byte("replicas = 2\nimagee = \"x\"\n")}}},
			`prod.hcl:2:1: Undeclared variable: prod.hcl sets variable "imagee", which the job file does not declare (declared: canary, datacenters, env, image, replicas, tag)`},
		{"wrong type in a file", Vars{Files: []VarFile{{Name: "prod.hcl", Src: []byte("replicas = \"many\"\n")}}},
			`prod.hcl:1:12: Invalid value for variable: variable "replicas" is of type number: a number is required`},
		{"syntax error in a file", Vars{Files: []VarFile{{Name: "prod.hcl", Src: []byte("replicas = \n")}}},
			`prod.hcl:1:12: Invalid expression: Expected the start of an expression, but found an invalid expression token.`},
		{"blocks in a file", Vars{Files: []VarFile{{Name: "prod.hcl", Src: []byte("job \"x\" {}\n")}}},
			`prod.hcl:1:1: Unexpected "job" block: Blocks are not allowed here.`},
		{"references in a file", Vars{Files: []VarFile{{Name: "prod.hcl", Src: []byte("replicas = var.x\n")}}},
			`prod.hcl:1:12: Variables not allowed: Variables may not be used here.`},
		{"oversized file", Vars{Files: []VarFile{{Name: "big.hcl", Src: make([]byte, MaxFileSize+1)}}},
			`big.hcl:1:1: File too large: a variable file may be at most 1048576 bytes (1 MiB); this one is 1048577`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWithVars("variables.hcl", src, tt.vars)
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("ParseWithVars = %v, want Diagnostics", err)
			}
			if err.Error() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", err, tt.want)
			}
		})
	}
}

// A variable with no value is reported once, at its declaration; the
// places that use it stay quiet (their zero would be a second, wrong complaint).
func TestVarsMissingValue(t *testing.T) {
	src := []byte(`variable "prio" {
  type = number
}
job "j" {
  priority = var.prio
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image = "x"
      }
    }
  }
}
`)
	_, err := Parse("j.hcl", src)
	want := `j.hcl:1:1: Missing value for variable: variable "prio" has no default and no value was given: set it with -var prio=... or in a -var-file, or give it a default`
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v\nwant %s", err, want)
	}
	j, err := ParseWithVars("j.hcl", src, Vars{Flags: []string{"prio=80"}})
	if err != nil || j.Priority != 80 {
		t.Errorf("with -var prio=80: %v, %v", j, err)
	}
}

func TestVarsFlagDiagnosticsFormat(t *testing.T) {
	_, err := ParseWithVars("j.hcl", []byte("job \"j\" {}\n"), Vars{Flags: []string{"x=1"}})
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatal(err)
	}
	var b strings.Builder
	ds.Format(&b, nil, false)
	if !strings.Contains(b.String(), "Error: Undeclared variable\n  -var x=1: the job file declares no variable \"x\"\n") {
		t.Errorf("Format:\n%s", b.String())
	}
}
