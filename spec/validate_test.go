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
		{"listener mode without a port", func(j *Job) {
			j.Groups[0].Tasks[0].Config.Mode = "listener"
			j.Groups[0].Tasks[0].Resources.Networks = nil
			j.Groups[0].Tasks[0].Services = nil
		}, []string{`group "web" > task "hello" > config > mode: Missing port: mode "listener" serves on a port: declare one in the group's network { port "http" {} } (or the task's resources { network { ... } }), and name it with config { port = "http" } if there are several`}},
		{"listener mode, two group ports, none named", func(j *Job) {
			j.Groups[0].Tasks[0].Config.Mode = "listener"
			j.Groups[0].Tasks[0].Resources.Networks = nil
			j.Groups[0].Tasks[0].Services = nil
			j.Groups[0].Networks = []*Network{{Ports: []*Port{{Label: "http"}, {Label: "admin"}}}}
		}, []string{`group "web" > task "hello" > config > mode: Missing port: mode "listener" serves on one port and the group declares 2 ("admin", "http"): name it with config { port = "..." }`}},
		{"config port undeclared", func(j *Job) { j.Groups[0].Tasks[0].Config.Port = "web" },
			[]string{`group "web" > task "hello" > config > port: Undeclared port: port "web" is not declared in this task's or its group's network blocks (declared: "http"); add network { port "web" {} } to the group`}},
		{"config port in command mode", func(j *Job) {
			j.Groups[0].Tasks[0].Config.Mode = "command"
			j.Groups[0].Tasks[0].Config.Port = "http"
			j.Groups[0].Tasks[0].Services = nil
		}, []string{`group "web" > task "hello" > config > port: Option of another mode: port applies to modes "http" and "listener", which serve on it; this task's mode is "command"`}},
		{"command mode with a check", func(j *Job) { j.Groups[0].Tasks[0].Config.Mode = "command" },
			[]string{`group "web" > task "hello" > service[0] > check[0]: Check of a command task: a wasm task in mode "command" cannot accept connections (WASI preview 1 has no sockets unless the agent opens one, which modes "http" and "listener" do), so its services cannot be checked`}},
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
			t2.Resources.Networks = nil
			t2.Config.Mode = "command"
			j.Groups[0].Tasks = append(j.Groups[0].Tasks, &t2)
		}, []string{`group "web" > task "hello": Duplicate task: task "hello" is defined more than once in group "web"`}},
		{"name too long", func(j *Job) { j.Groups[0].Name = strings.Repeat("g", 129) },
			[]string{`group "` + strings.Repeat("g", 129) + `": Invalid group name: group name "gggggggggggggggggggg"... is 129 characters long; the limit is 128`}},
		{"docker with wasm fields", func(j *Job) { j.Groups[0].Tasks[0].Driver = "docker" },
			[]string{
				`group "web" > task "hello" > config > image: Missing image: a docker task needs config { image = "..." }`,
				`group "web" > task "hello" > config > module: Option of another driver: module is a wasm option; a docker task takes image, args, command and ports`,
				`group "web" > task "hello" > config > mode: Option of another driver: mode is a wasm option; a docker task takes image, args, command and ports`,
			}},
		{"memory", func(j *Job) { j.Groups[0].Tasks[0].Resources.MemoryMB = 9 },
			[]string{`group "web" > task "hello" > resources > memory: Invalid memory: memory must be at least 10 MB, got 9`}},
		{"static port", func(j *Job) {
			n := j.Groups[0].Tasks[0].Resources.Networks[0]
			n.Ports[0].Static = 70000
			n.Ports = append(n.Ports, &Port{Label: "a", Static: 8080}, &Port{Label: "b", Static: 8080})
		}, []string{
			`group "web" > task "hello" > resources > network[0] > port "http" > static: Invalid port: static must be between 1 and 65535, got 70000`,
			`group "web" > task "hello" > resources > network[0] > port "b" > static: Duplicate static port: static port 8080 is also used by port "a"; the tasks of a group share one node's ports`,
		}},
		{"service port", func(j *Job) { j.Groups[0].Tasks[0].Services[0].Port = "admin" },
			[]string{`group "web" > task "hello" > service[0] > port: Undeclared port: port "admin" is not declared in this task's or its group's network blocks (declared: "http"); add resources { network { port "admin" {} } }`}},
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

// The rules that HCL files get through Parse, a JSON job gets through
// Validate, with paths instead of positions.
func TestValidateJSONPlacementAndStrategies(t *testing.T) {
	tests := []struct {
		name string
		edit func(j *Job)
		want []string
	}{
		{"constraint attribute", func(j *Job) {
			j.Constraints = []*Constraint{{Attribute: "${foo.bar}", Operator: "=", Value: "x"}, {Attribute: "kernel", Operator: "=", Value: "x"}}
		}, []string{
			`constraint[0] > attribute: Invalid reference: unknown reference ${foo.bar}; known roots: node.*, attr.*, meta.* (write $${ for a literal ${)`,
			`constraint[1] > attribute: Invalid attribute: attribute "kernel" must be one node reference, like "${attr.kernel.name}", "${meta.rack}" or "${node.datacenter}"`,
		}},
		{"constraint operators", func(j *Job) {
			j.Groups[0].Constraints = []*Constraint{
				{Attribute: "${attr.a}", Operator: "regexp", Value: "("},
				{Attribute: "${attr.a}", Operator: "is_set", Value: "x"},
				{Operator: "distinct_hosts", Value: "maybe"},
				{Attribute: "${attr.a}", Operator: "like", Value: "x"},
				{Attribute: "${attr.a}", Operator: "version", Value: "${meta.min}"},
				nil,
			}
		}, []string{
			"group \"web\" > constraint[0] > value: Invalid value: value \"(\" for operator \"regexp\": error parsing regexp: missing closing ): `(`",
			`group "web" > constraint[1] > value: Invalid constraint: is_set takes no value: it tests only whether the attribute exists`,
			`group "web" > constraint[2] > value: Invalid constraint: distinct_hosts takes value "true", "false" or none, got "maybe"`,
			`group "web" > constraint[3] > operator: Invalid operator: unknown constraint operator "like"; supported: =, !=, >, >=, <, <=, regexp, set_contains, set_contains_any, version, semver, is_set, is_not_set, distinct_hosts`,
			`group "web" > constraint[5]: Missing constraint: constraint 5 is null`,
		}},
		{"affinity and spread", func(j *Job) {
			j.Affinities = []*Affinity{{Attribute: "${node.class}", Operator: "=", Value: "x", Weight: 101}}
			j.Spreads = []*Spread{{Attribute: "${node.datacenter}", Weight: 50, Targets: []*SpreadTarget{{Value: "a", Percent: 60}, {Value: "b", Percent: 60}}}}
		}, []string{
			`affinity[0] > weight: Invalid weight: weight must be between -100 and 100 and not 0 (negative avoids, positive prefers), got 101`,
			`spread[0]: Invalid spread: the targets' percents add up to 120; at most 100`,
		}},
		{"system job", func(j *Job) {
			j.Type = "system"
			j.Groups[0].Count = 2
			j.Groups[0].Reschedule = &Reschedule{Delay: Duration(30e9), DelayFunction: "constant"}
			j.Affinities = []*Affinity{{Attribute: "${node.class}", Operator: "=", Value: "x", Weight: 50}}
		}, []string{
			`affinity[0]: Affinity not allowed: a system job runs on every eligible node, so there is nothing to prefer: use a constraint`,
			`group "web" > count: Invalid count: a system job runs one copy on every node: count may be 0 or 1, got 2`,
			`group "web" > reschedule: Reschedule not allowed: a system job runs on every node, so its allocations are never rescheduled elsewhere: remove the reschedule block`,
		}},
		{"update", func(j *Job) {
			j.Groups[0].Update = &Update{MaxParallel: 1, Stagger: Duration(1e9), MinHealthyTime: Duration(60e9), HealthyDeadline: Duration(30e9), Canary: -1}
		}, []string{
			`group "web" > update > min_healthy_time: Invalid min_healthy_time: min_healthy_time 1m0s must be shorter than healthy_deadline 30s`,
			`group "web" > update > canary: Invalid canary: canary must be 0 or more, got -1`,
		}},
		{"reschedule", func(j *Job) {
			j.Groups[0].Reschedule = &Reschedule{Attempts: 2, Interval: Duration(3600e9), Delay: Duration(10e9), DelayFunction: "exponential", MaxDelay: Duration(5e9)}
		}, []string{
			`group "web" > reschedule > max_delay: Invalid reschedule max_delay: with delay_function "exponential" the delay grows up to max_delay, which must be at least the delay 10s, got 5s`,
		}},
		{"disconnect", func(j *Job) {
			j.Groups[0].Disconnect = &Disconnect{LostAfter: -1, Reconcile: "coin"}
		}, []string{
			`group "web" > disconnect > lost_after: Invalid lost_after: lost_after must not be negative, got -1ns`,
			`group "web" > disconnect > reconcile: Invalid reconcile: unknown reconcile "coin"; supported: keep_original (the default), keep_replacement`,
		}},
		{"group ports", func(j *Job) {
			j.Groups[0].Networks = []*Network{{Ports: []*Port{{Label: "http"}, {Label: "admin", Static: 9000}}}}
			j.Groups[0].Services = []*Service{{Name: "x", Port: "nope"}}
		}, []string{
			`group "web" > task "hello" > resources > network[0] > port "http": Duplicate port: port "http" is also declared by the group; port labels are unique in a group`,
			`group "web" > service[0] > port: Undeclared port: port "nope" is not declared in this group's or its tasks' network blocks (declared: "admin", "http"); add network { port "nope" {} } to the group`,
		}},
		{"wasm config", func(j *Job) {
			c := &j.Groups[0].Tasks[0].Config
			c.MaxRuntime = Duration(1e9)
			c.MaxConcurrency = -1
			c.Mounts = []*Mount{{Source: "/etc", Target: "/d"}}
		}, []string{
			`group "web" > task "hello" > config > max_runtime: Option of another mode: max_runtime applies to mode "command" only; this task's mode is "http"`,
			`group "web" > task "hello" > config > max_concurrency: Invalid max_concurrency: max_concurrency must be 0 (no bound) or more, got -1`,
			`group "web" > task "hello" > config > mount[0]: Host path not allowed: config { mount { ... } } mounts a host path the job chooses (source = "/etc"), which Strata refuses: ` + hostVolumeHint,
		}},
		{"volumes", func(j *Job) {
			g := j.Groups[0]
			g.Volumes = []*Volume{{Name: "data", Type: "host", Source: "shared"}, {Name: "data", Type: "csi", Source: "x"}, {Name: "c", Source: ""}}
			g.Tasks[0].VolumeMounts = []*VolumeMount{{Volume: "data", Destination: "/data"}, {Volume: "nope", Destination: "data"}, {Volume: "c", Destination: "/data"}}
		}, []string{
			`group "web" > volume "data": Duplicate volume: volume "data" is declared more than once in the group`,
			`group "web" > volume "data" > type: Unsupported volume type: CSI volumes are not supported; type = "host" mounts a host volume an agent declares`,
			`group "web" > volume "c" > type: Missing volume type: a volume needs type = "host" (a host volume an agent declares with -host-volume)`,
			`group "web" > volume "c" > source: Missing volume source: source names the host volume, as an agent declares it with -host-volume NAME=PATH`,
			`group "web" > task "hello" > volume_mount[1] > volume: Undeclared volume: volume "nope" is not declared in the group (declared: "c", "data"); add volume "nope" { type = "host"  source = "NAME" } to the group`,
			`group "web" > task "hello" > volume_mount[1] > destination: Invalid destination: destination (where the task sees the volume) "data" must be an absolute path`,
			`group "web" > task "hello" > volume_mount[2] > destination: Duplicate destination: destination "/data" is mounted twice`,
		}},
		{"templates", func(j *Job) {
			tk := j.Groups[0].Tasks[0]
			tk.Env = map[string]string{"A": "${STRATA_PORT_http", "B": "${STRATA_PORT_nope}", "C": "$${fine}", "D": "${var.x}"}
		}, []string{
			`group "web" > task "hello" > env["A"]: Invalid template: "${STRATA_PORT_http": "${" without a closing "}"; write "$${" for a literal "${"`,
			`group "web" > task "hello" > env["B"]: Undeclared port: ${STRATA_PORT_nope} names port "nope", which this group does not declare (declared: "http")`,
			`group "web" > task "hello" > env["D"]: Invalid reference: ${var.x} is a variable reference, but only HCL files have variables; known here: node.*, attr.*, meta.*, STRATA_*, NOMAD_*`,
		}},
		{"lifecycle", func(j *Job) {
			j.Groups[0].Tasks[0].Lifecycle = &Lifecycle{Hook: "prestart"}
		}, []string{
			`group "web": Missing main task: every task of group "web" has a lifecycle hook; a group needs at least one main task (without lifecycle)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := decodeJSON(t, validJSON)
			tt.edit(j)
			Canonicalize(j)
			err := Validate(j)
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("Validate = %v, want Diagnostics", err)
			}
			if got := strings.Split(ds.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Validate:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// JSON zeros: the new blocks get their defaults where zero is never
// valid, inherit from the level above, and keep the zeros that mean
// something.
func TestCanonicalizeJSONStrategies(t *testing.T) {
	j := decodeJSON(t, `{"ID":"j","Update":{"MaxParallel":0,"AutoRevert":true},
		"Affinities":[{"Attribute":"${node.class}","Value":"a"}],
		"Spreads":[{"Attribute":"${node.datacenter}"}],
		"Constraints":[{"Attribute":"${meta.x}","Operator":"set_contains_all","Value":"a,b"}],
		"Groups":[{"Name":"g","Count":1,
		  "Restart":{"Attempts":1,"Interval":"1h"},
		  "Reschedule":{"Attempts":0,"Unlimited":false},
		  "Disconnect":{"LostAfter":"1h"},
		  "Tasks":[{"Name":"a","Driver":"docker","Config":{"Image":"x"}},
		           {"Name":"b","Driver":"docker","Config":{"Image":"x"},"Restart":{"Attempts":0,"Mode":"delay"}}]}]}`)
	g := j.Groups[0]
	if want := (Update{MaxParallel: 0, Stagger: defaultUpdate.Stagger, MinHealthyTime: 0, HealthyDeadline: defaultUpdate.HealthyDeadline, ProgressDeadline: defaultUpdate.ProgressDeadline, HealthCheck: HealthChecks, AutoRevert: true}); *j.Update != want || *g.Update != want {
		t.Errorf("update: job %+v group %+v, want %+v", *j.Update, *g.Update, want)
	}
	if a := j.Affinities[0]; a.Operator != "=" || a.Weight != 50 {
		t.Errorf("affinity defaults: %+v", a)
	}
	if j.Spreads[0].Weight != 50 || j.Constraints[0].Operator != "set_contains" {
		t.Errorf("spread weight %d, constraint operator %q", j.Spreads[0].Weight, j.Constraints[0].Operator)
	}
	if r := g.Reschedule; r.Delay != Duration(30e9) || r.DelayFunction != "exponential" || r.MaxDelay != Duration(3600e9) || r.Unlimited || r.Attempts != 0 {
		t.Errorf("reschedule: %+v", r)
	}
	if d := g.Disconnect; d.Replace == nil || !*d.Replace || d.Reconcile != ReconcileKeepOriginal {
		t.Errorf("disconnect: %+v", d)
	}
	// Delay 0 is a real zero in JSON ("restart at once"), so the group keeps it.
	if r := g.Tasks[0].Restart; *r != (RestartPolicy{Attempts: 1, Interval: Duration(3600e9), Delay: 0, Mode: "fail"}) {
		t.Errorf("task a inherits the group's restart: %+v", r)
	}
	if r := g.Tasks[1].Restart; *r != (RestartPolicy{Attempts: 0, Interval: Duration(3600e9), Delay: 0, Mode: "delay"}) {
		t.Errorf("task b merges with the group's restart: %+v", r)
	}
	if g.Tasks[0].KillTimeout != Duration(5e9) {
		t.Errorf("kill timeout %s", g.Tasks[0].KillTimeout)
	}
	if err := Validate(j); err != nil {
		t.Error(err)
	}

	batch := decodeJSON(t, `{"ID":"b","Type":"batch","Groups":[{"Name":"g","Count":1,"Tasks":[{"Name":"t","Driver":"docker","Config":{"Image":"x"}}]}]}`)
	bg := batch.Groups[0]
	if bg.Update != nil || *bg.Reschedule != *defaultReschedule(JobTypeBatch) || *bg.Tasks[0].Restart != defaultRestart(JobTypeBatch) {
		t.Errorf("batch defaults: update %v reschedule %+v restart %+v", bg.Update, bg.Reschedule, bg.Tasks[0].Restart)
	}
	system := decodeJSON(t, `{"ID":"s","Type":"system","Groups":[{"Name":"g","Count":1,"Tasks":[{"Name":"t","Driver":"docker","Config":{"Image":"x"}}]}]}`)
	if sg := system.Groups[0]; sg.Reschedule != nil || *sg.Update != defaultUpdate {
		t.Errorf("system defaults: reschedule %v update %v", sg.Reschedule, sg.Update)
	}
}

func TestAllPorts(t *testing.T) {
	g := &Group{
		Networks: []*Network{{Ports: []*Port{{Label: "g1"}}}, nil, {Ports: []*Port{{Label: "g2"}}}},
		Tasks: []*Task{
			{Resources: Resources{Networks: []*Network{{Ports: []*Port{{Label: "a"}, {Label: "b"}}}}}},
			nil,
			{Resources: Resources{Networks: []*Network{nil, {Ports: []*Port{{Label: "c"}}}}}},
		},
	}
	var got []string
	for _, p := range g.AllPorts() {
		got = append(got, p.Label)
	}
	if want := []string{"g1", "g2", "a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("AllPorts = %v, want %v", got, want)
	}
}

// Validate's output does not depend on map order.
func TestValidateDeterministic(t *testing.T) {
	var first string
	for i := range 20 {
		j := decodeJSON(t, validJSON)
		j.Groups[0].Networks = []*Network{{Ports: []*Port{{Label: "a"}, {Label: "b"}, {Label: "c"}}}}
		j.Groups[0].Tasks[0].Resources.Networks = append(j.Groups[0].Tasks[0].Resources.Networks,
			&Network{Ports: []*Port{{Label: "c"}, {Label: "b"}, {Label: "a"}}})
		j.Groups[0].Tasks[0].Env = map[string]string{"X": "${STRATA_PORT_x}", "Y": "${STRATA_PORT_y}", "Z": "${foo}"}
		got := Validate(j).Error()
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("run %d:\n%s\nrun 0:\n%s", i, got, first)
		}
	}
}
