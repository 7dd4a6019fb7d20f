package spec

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// validJSON is a minimal job as a client sends it: no defaults filled.
const validJSON = `{
  "ID": "hello",
  "Groups": [{
    "Name": "web",
    "Count": 1,
    "Tasks": [{
      "Name": "hello",
      "Driver": "wasm",
      "Config": {"Module": "hello@0.1.0", "Mode": "http"},
      "Resources": {"Networks": [{"Ports": [{"Label": "http"}]}]},
      "Services": [{"Port": "http", "Checks": [{"Type": "http", "Path": "/"}]}]
    }]
  }]
}`

func decodeJSON(t *testing.T, s string) *Job {
	t.Helper()
	var j Job
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		t.Fatal(err)
	}
	Canonicalize(&j)
	return &j
}

func TestValidateJSONMatchesHCL(t *testing.T) {
	fromJSON := decodeJSON(t, validJSON)
	if err := Validate(fromJSON); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	fromHCL := parseFile(t, "testdata/hello.hcl")
	if !reflect.DeepEqual(fromJSON, fromHCL) {
		a, _ := json.Marshal(fromJSON)
		b, _ := json.Marshal(fromHCL)
		t.Errorf("JSON and HCL forms of hello differ:\n%s\n%s", a, b)
	}
}

func TestValidateJSONPaths(t *testing.T) {
	tests := []struct {
		name string
		edit func(j *Job)
		want []string // Error() lines
	}{
		{"missing module", func(j *Job) { j.Groups[0].Tasks[0].Config.Module = "" },
			[]string{`group "web" > task "hello" > config > module: Missing module: a wasm task needs config { module = "name@version" } (or "sha256:<digest>")`}},
		{"bad module", func(j *Job) { j.Groups[0].Tasks[0].Config.Module = "hello@1.0" },
			[]string{`group "web" > task "hello" > config > module: Invalid module reference: module reference "hello@1.0": version "1.0" is not a semantic version (MAJOR.MINOR.PATCH, like 1.4.2): it needs three numbers separated by dots`}},
		{"bad digest", func(j *Job) { j.Groups[0].Tasks[0].Config.ModuleDigest = "sha256:00" },
			[]string{`group "web" > task "hello" > config > module_digest: Invalid module digest: digest "sha256:00" must be "sha256:" followed by 64 lowercase hex digits`}},
		{"listener mode", func(j *Job) { j.Groups[0].Tasks[0].Config.Mode = "listener" },
			[]string{`group "web" > task "hello" > config > mode: Unsupported mode: mode "listener" is not supported yet; supported: http`}},
		{"job id", func(j *Job) { j.ID = "" },
			[]string{`job: Invalid job ID: job ID must not be empty`}},
		{"priority", func(j *Job) { j.Priority = 101 },
			[]string{`priority: Invalid priority: priority must be between 1 and 100, got 101`}},
		{"datacenters", func(j *Job) { j.Datacenters = []string{"dc1", "dc1", "d c"} },
			[]string{
				`datacenters[1]: Duplicate datacenter: datacenter "dc1" is listed twice`,
				`datacenters[2]: Invalid datacenter: datacenter "d c" contains ' ': use letters, digits, '_', '.' and '-'`,
			}},
		{"count", func(j *Job) { j.Groups[0].Count = -3 },
			[]string{`group "web" > count: Invalid count: count must be 0 or more, got -3`}},
		{"no groups", func(j *Job) { j.Groups = nil },
			[]string{`job: Missing group: a job needs at least one group`}},
		{"null group", func(j *Job) { j.Groups = append(j.Groups, nil) },
			[]string{`group[1]: Missing group: group 1 is null`}},
		{"duplicate task", func(j *Job) {
			t2 := *j.Groups[0].Tasks[0]
			t2.Services = nil
			j.Groups[0].Tasks = append(j.Groups[0].Tasks, &t2)
		}, []string{`group "web" > task "hello": Duplicate task: task "hello" is defined more than once in group "web"`}},
		{"name too long", func(j *Job) { j.Groups[0].Name = strings.Repeat("g", 129) },
			[]string{`group "` + strings.Repeat("g", 129) + `": Invalid group name: group name "gggggggggggggggggggg"... is 129 characters long; the limit is 128`}},
		{"docker with wasm fields", func(j *Job) { j.Groups[0].Tasks[0].Driver = "docker" },
			[]string{
				`group "web" > task "hello" > config > image: Missing image: a docker task needs config { image = "..." }`,
				`group "web" > task "hello" > config > module: Option of another driver: module is a wasm option; a docker task takes image`,
				`group "web" > task "hello" > config > mode: Option of another driver: mode is a wasm option; a docker task takes image`,
			}},
		{"memory", func(j *Job) { j.Groups[0].Tasks[0].Resources.MemoryMB = 9 },
			[]string{`group "web" > task "hello" > resources > memory: Invalid memory: memory must be at least 10 MB, got 9`}},
		{"static port", func(j *Job) {
			n := j.Groups[0].Tasks[0].Resources.Networks[0]
			n.Ports[0].Static = 70000
			n.Ports = append(n.Ports, &Port{Label: "a", Static: 8080}, &Port{Label: "b", Static: 8080})
		}, []string{
			`group "web" > task "hello" > resources > network[0] > port "http" > static: Invalid port: static must be between 1 and 65535, got 70000`,
			`group "web" > task "hello" > resources > network[0] > port "b" > static: Duplicate static port: static port 8080 is also used by port "a"`,
		}},
		{"service port", func(j *Job) { j.Groups[0].Tasks[0].Services[0].Port = "admin" },
			[]string{`group "web" > task "hello" > service[0] > port: Undeclared port: port "admin" is not declared in this task's network blocks (declared: "http"); add resources { network { port "admin" {} } }`}},
		{"derived service name", func(j *Job) { j.ID = "Hello_World"; j.Groups[0].Tasks[0].Services[0].Name = "Hello_World-web-hello" },
			[]string{`group "web" > task "hello" > service[0] > name: Invalid service name: service name "Hello_World-web-hello" contains 'H'; it is a DNS label: use lowercase letters, digits and '-' (the name is derived as <job>-<group>-<task>; set service { name = "hello-world-web-hello" } or rename)`}},
		{"check", func(j *Job) {
			c := j.Groups[0].Tasks[0].Services[0].Checks[0]
			c.Type, c.Timeout = "tcp", Duration(11e9)
		}, []string{
			`group "web" > task "hello" > service[0] > check[0] > path: Invalid check path: path is only for http checks`,
			`group "web" > task "hello" > service[0] > check[0] > timeout: Invalid check timeout: timeout 11s must not be longer than the interval 10s`,
		}},
		{"restart", func(j *Job) { j.Groups[0].Tasks[0].Restart.Mode = "forever" },
			[]string{`group "web" > task "hello" > restart > mode: Invalid restart mode: unknown restart mode "forever"; supported: fail, delay`}},
		{"env", func(j *Job) { j.Groups[0].Tasks[0].Env = map[string]string{"A=B": "c", "OK": "d"} },
			[]string{`group "web" > task "hello" > env["A=B"]: Invalid environment variable: environment variable name "A=B" must be non-empty, without '=' or NUL`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := decodeJSON(t, validJSON)
			tt.edit(j)
			err := Validate(j)
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("Validate = %v, want Diagnostics", err)
			}
			for _, d := range ds {
				if d.Range != nil {
					t.Errorf("diagnostic with a range from a JSON job: %v", d)
				}
			}
			if got := strings.Split(ds.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestValidateNil(t *testing.T) {
	if err := Validate(nil); err == nil {
		t.Error("Validate(nil) = nil")
	}
	Canonicalize(nil) // must not panic
	j := &Job{ID: "x", Groups: []*Group{{Name: "g", Tasks: []*Task{nil}}}}
	Canonicalize(j)
	if err := Validate(j); err == nil || !strings.Contains(err.Error(), "task 0 is null") {
		t.Errorf("Validate(null task) = %v", err)
	}
}

func TestCanonicalizeJSONZeros(t *testing.T) {
	// JSON cannot say "absent": zeros that are never valid get defaults,
	// zeros that mean something stay.
	j := decodeJSON(t, `{"ID":"j","Groups":[{"Name":"g","Count":0,"Tasks":[{"Name":"t","Driver":"docker",
		"Config":{"Image":"x"},"Restart":{"Attempts":0,"Delay":"0s"},"Env":{},"Meta":{}}]}],"Datacenters":[]}`)
	tk := j.Groups[0].Tasks[0]
	if j.Groups[0].Count != 0 || tk.Restart.Attempts != 0 || tk.Restart.Delay != 0 {
		t.Errorf("meaningful zeros changed: count %d attempts %d delay %s", j.Groups[0].Count, tk.Restart.Attempts, tk.Restart.Delay)
	}
	if tk.Restart.Interval.D().Minutes() != 30 || tk.Restart.Mode != "fail" || tk.Resources.CPU != 100 || tk.Resources.MemoryMB != 300 {
		t.Errorf("defaults not filled: %+v %+v", tk.Restart, tk.Resources)
	}
	if tk.Env != nil || tk.Meta != nil || j.Datacenters != nil {
		t.Errorf("empty maps and lists not nil: %v %v %v", tk.Env, tk.Meta, j.Datacenters)
	}
	if err := Validate(j); err != nil {
		t.Error(err)
	}
}
