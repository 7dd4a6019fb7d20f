package coordinator

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

// carried maps every field of spec.Task (a path of leaves; [0] is the
// first element of a slice) to the field of wire.Task it becomes.
var carried = map[string]string{
	"Name":                                     "Name",
	"Driver":                                   "Driver",
	"Config.Module":                            "Config.Module",
	"Config.Mode":                              "Config.Mode",
	"Config.Args":                              "Config.Args",
	"Config.MaxRequestTime":                    "Config.MaxRequestTime",
	"Config.MaxConcurrency":                    "Config.MaxConcurrency",
	"Config.MaxRuntime":                        "Config.MaxRuntime",
	"Config.ModuleDigest":                      "Config.ModuleDigest",
	"Config.Image":                             "Config.Image",
	"Config.Command":                           "Config.Command",
	"Config.Ports":                             "Config.Ports",
	"Env":                                      "Env",
	"Restart.Attempts":                         "Restart.Attempts",
	"Restart.Interval":                         "Restart.Interval",
	"Restart.Delay":                            "Restart.Delay",
	"Restart.Mode":                             "Restart.Mode",
	"Resources.CPU":                            "Resources.CPU",
	"Resources.MemoryMB":                       "Resources.MemoryMB",
	"Resources.Networks[0].Ports[0].Label":     "Resources.Ports[0]",
	"Services[0].Name":                         "Services[0].Name",
	"Services[0].Tags":                         "Services[0].Tags",
	"Services[0].Port":                         "Services[0].Port",
	"Services[0].Checks[0].Type":               "Services[0].Checks[0].Type",
	"Services[0].Checks[0].Path":               "Services[0].Checks[0].Path",
	"Services[0].Checks[0].Interval":           "Services[0].Checks[0].Interval",
	"Services[0].Checks[0].Timeout":            "Services[0].Checks[0].Timeout",
	"Services[0].Checks[0].CheckRestart.Limit": "Services[0].Checks[0].CheckRestart.Limit",
	"Services[0].Checks[0].CheckRestart.Grace": "Services[0].Checks[0].CheckRestart.Grace",
	"KillTimeout":                              "KillTimeout",
	"ShutdownDelay":                            "ShutdownDelay",
	"Services[0].CanaryTags":                   "Services[0].CanaryTags",
	"Lifecycle.Hook":                           "Lifecycle.Hook",
	"Lifecycle.Sidecar":                        "Lifecycle.Sidecar",
	"VolumeMounts[0].Volume":                   "VolumeMounts[0].Volume",
	"VolumeMounts[0].Destination":              "VolumeMounts[0].Destination",
	"VolumeMounts[0].ReadOnly":                 "VolumeMounts[0].ReadOnly",
	"DispatchPayload.File":                     "DispatchPayload.File",
}

// fromGroup are the fields of wire.Task that wireTasks sets from the
// task's group, not from the task (TestWireTasksResolveVolumes), or
// that nodeAllocs sets from the job (TestMergeMeta, and the payload:
// TestDispatchEndToEnd).
var fromGroup = []string{"VolumeMounts[0].HostVolume", "Meta", "DispatchPayload.Data"}

// leftOut are the fields of spec.Task an agent does not need, and why.
var leftOut = map[string]string{
	"Meta":                                  "merged over the group's and job's by nodeAllocs (mergeMeta, TestMergeMeta)",
	"Resources.Networks[0].MBits":           "refused at validation (bandwidth is not reserved); never sent",
	"Resources.Networks[0].Mode":            "only host networking is valid, which is what agents do",
	"Resources.Networks[0].Ports[0].Static": "the assigned number is in Alloc.Ports",
	"Resources.Networks[0].Ports[0].To":     "the container port is in Alloc.Ports, with the number",
	"Config.Port":                           "wireTasks puts the port it names first in Resources.Ports, where the agent serves (TestWireTasksServedPortFirst)",
	"Config.Mounts[0].Source":               "raw host paths are refused by validation: never sent to an agent",
	"Config.Mounts[0].Target":               "raw host paths are refused by validation: never sent to an agent",
	"Config.Mounts[0].Readonly":             "raw host paths are refused by validation: never sent to an agent",
}

// A spec.Task with every field set converts field by field: each field
// is carried to its wire field with the same value, or listed as left
// out; and every field of the wire.Task is set from one.
func TestWireTaskCarriesEveryField(t *testing.T) {
	var st spec.Task
	n := 0
	fill(reflect.ValueOf(&st).Elem(), &n)
	wt := wireTask(&st)

	specLeaves := map[string]reflect.Value{}
	walkLeaves(reflect.ValueOf(st), "", specLeaves)
	for path, sv := range specLeaves {
		if _, ok := leftOut[path]; ok {
			continue
		}
		wpath, ok := carried[path]
		if !ok {
			t.Errorf("spec.Task.%s is neither carried to wire.Task (coordinator/wiretask.go) nor listed as left out", path)
			continue
		}
		wv, err := at(reflect.ValueOf(wt), wpath)
		if err != nil {
			t.Errorf("spec.Task.%s -> wire.Task.%s: %v", path, wpath, err)
			continue
		}
		if !sameValue(sv, wv) {
			t.Errorf("spec.Task.%s = %v became wire.Task.%s = %v", path, sv.Interface(), wpath, wv.Interface())
		}
	}
	for path := range carried {
		if _, ok := specLeaves[path]; !ok {
			t.Errorf("carried lists spec.Task.%s, which spec.Task does not have", path)
		}
	}
	wireLeaves := map[string]reflect.Value{}
	walkLeaves(reflect.ValueOf(wt), "", wireLeaves)
	targets := map[string]bool{}
	for _, w := range carried {
		targets[strings.TrimSuffix(w, "[0]")] = true // an element of a leaf slice
	}
	for path, v := range wireLeaves {
		if slices.Contains(fromGroup, path) {
			continue
		}
		if !targets[path] {
			t.Errorf("wire.Task.%s is not set from any field of spec.Task", path)
		} else if v.IsZero() {
			t.Errorf("wire.Task.%s is zero after converting a fully set spec.Task", path)
		}
	}
}

// Absent parts stay absent: no restart policy is the agent's default, no
// lifecycle a main task, and nil entries are skipped.
func TestWireTaskAbsentParts(t *testing.T) {
	wt := wireTask(&spec.Task{Name: "t", Driver: "wasm", Services: []*spec.Service{nil, {Name: "s", Checks: []*spec.Check{nil}}},
		Config: spec.TaskConfig{Mounts: []*spec.Mount{{Source: "/etc", Target: "/etc"}}}, VolumeMounts: []*spec.VolumeMount{nil}})
	if wt.Restart != nil || wt.Lifecycle != nil || wt.Env != nil || wt.VolumeMounts != nil || wt.Resources.Ports != nil {
		t.Fatalf("absent parts became %+v", wt)
	}
	if len(wt.Services) != 1 || wt.Services[0].Name != "s" || wt.Services[0].Checks != nil {
		t.Fatalf("services %+v", wt.Services)
	}
	g := &spec.Group{ShutdownDelay: spec.Duration(3 * time.Second), Tasks: []*spec.Task{nil, {Name: "a"}, {Name: "b", ShutdownDelay: spec.Duration(time.Second)}}}
	got := wireTasks(g)
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("wireTasks = %+v", got)
	}
	// A task's shutdown delay is its own, else its group's.
	if got[0].ShutdownDelay != 3*time.Second || got[1].ShutdownDelay != time.Second {
		t.Fatalf("shutdown delays %s, %s; want the group's 3s and the task's own 1s", got[0].ShutdownDelay, got[1].ShutdownDelay)
	}
}

// A served wasm task serves on the port its config names, else its first
// own port, else its group's only port: wireTasks puts that one first.
func TestWireTasksServedPortFirst(t *testing.T) {
	own := func(labels ...string) spec.Resources {
		var ps []*spec.Port
		for _, l := range labels {
			ps = append(ps, &spec.Port{Label: l})
		}
		return spec.Resources{Networks: []*spec.Network{{Ports: ps}}}
	}
	tests := []struct {
		name  string
		group []string
		task  spec.Task
		want  []string
	}{
		{"the group's only port", []string{"http"}, spec.Task{Driver: "wasm", Config: spec.TaskConfig{Mode: "http"}}, []string{"http"}},
		{"a named group port before the task's own", []string{"http", "admin"},
			spec.Task{Driver: "wasm", Config: spec.TaskConfig{Mode: "listener", Port: "admin"}, Resources: own("metrics")}, []string{"admin", "metrics"}},
		{"a named own port moves first", nil,
			spec.Task{Driver: "wasm", Config: spec.TaskConfig{Mode: "http", Port: "b"}, Resources: own("a", "b")}, []string{"b", "a"}},
		{"the task's own first port over the group's", []string{"http"},
			spec.Task{Driver: "wasm", Config: spec.TaskConfig{Mode: "http"}, Resources: own("mine")}, []string{"mine"}},
		{"a command task serves nothing", []string{"http"}, spec.Task{Driver: "wasm", Config: spec.TaskConfig{Mode: "command"}}, nil},
		{"docker publishes its ports list", []string{"http"}, spec.Task{Driver: "docker", Config: spec.TaskConfig{Ports: []string{"http"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &spec.Group{Tasks: []*spec.Task{&tt.task}}
			if tt.group != nil {
				n := &spec.Network{}
				for _, l := range tt.group {
					n.Ports = append(n.Ports, &spec.Port{Label: l})
				}
				g.Networks = []*spec.Network{n}
			}
			if got := wireTasks(g)[0].Resources.Ports; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ports = %q, want %q", got, tt.want)
			}
		})
	}
}

// A task's mount names its group's volume; the agent gets the host
// volume's name, read-only when the mount or the volume is.
func TestWireTasksResolveVolumes(t *testing.T) {
	g := &spec.Group{
		Volumes: []*spec.Volume{{Name: "data", Type: "host", Source: "shared-data", ReadOnly: true}, {Name: "scratch", Type: "host", Source: "tmp"}},
		Tasks: []*spec.Task{{Name: "t", VolumeMounts: []*spec.VolumeMount{
			{Volume: "data", Destination: "/data"},
			{Volume: "scratch", Destination: "/tmp"},
			{Volume: "scratch", Destination: "/ro", ReadOnly: true},
		}}},
	}
	got := wireTasks(g)[0].VolumeMounts
	want := []wire.VolumeMount{
		{Volume: "data", HostVolume: "shared-data", Destination: "/data", ReadOnly: true},
		{Volume: "scratch", HostVolume: "tmp", Destination: "/tmp"},
		{Volume: "scratch", HostVolume: "tmp", Destination: "/ro", ReadOnly: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("volume mounts = %+v, want %+v", got, want)
	}
}

// fill sets every field reachable from v to a distinct non-zero value;
// slices get one element and maps one entry.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Int, reflect.Int64:
		if v.Type() == reflect.TypeOf(spec.Duration(0)) {
			v.SetInt(int64(*n) * int64(time.Second))
		} else {
			v.SetInt(int64(*n))
		}
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

// walkLeaves records the leaves under v by path: scalars, maps, and
// slices of scalars are leaves; structs, pointers and slices of structs
// are walked into (first element).
func walkLeaves(v reflect.Value, path string, out map[string]reflect.Value) {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkLeaves(v.Elem(), path, out)
		} else {
			out[path] = v
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				walkLeaves(v.Field(i), join(f.Name), out)
			}
		}
	case reflect.Slice:
		el := v.Type().Elem()
		if el.Kind() == reflect.Pointer {
			el = el.Elem()
		}
		if el.Kind() != reflect.Struct {
			out[path] = v
			return
		}
		if v.Len() == 0 {
			out[path] = v
			return
		}
		walkLeaves(v.Index(0), path+"[0]", out)
	default:
		out[path] = v
	}
}

// at follows a path of walkLeaves' form from v.
func at(v reflect.Value, path string) (reflect.Value, error) {
	for _, part := range strings.Split(path, ".") {
		name, idx, indexed := strings.Cut(part, "[")
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return v, fmt.Errorf("nil before %s", part)
			}
			v = v.Elem()
		}
		v = v.FieldByName(name)
		if !v.IsValid() {
			return v, fmt.Errorf("no field %s", name)
		}
		if indexed {
			if idx != "0]" || v.Kind() != reflect.Slice || v.Len() == 0 {
				return v, fmt.Errorf("no element %s", part)
			}
			v = v.Index(0)
		}
	}
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	return v, nil
}

// sameValue compares a spec leaf with the wire leaf it became: durations
// by length, everything else by value.
func sameValue(s, w reflect.Value) bool {
	if s.Type() == reflect.TypeOf(spec.Duration(0)) {
		return w.Type() == reflect.TypeOf(time.Duration(0)) && s.Int() == w.Int()
	}
	return reflect.DeepEqual(s.Interface(), w.Interface())
}

// A wire task's meta is its own over its group's over its job's: the
// agent's NOMAD_META_<key>.
func TestMergeMeta(t *testing.T) {
	job := &spec.Job{Meta: map[string]string{"owner": "job", "tier": "web"}}
	g := &spec.Group{Meta: map[string]string{"owner": "group"}, Tasks: []*spec.Task{
		{Name: "a", Meta: map[string]string{"tier": "task"}}, {Name: "b"}}}
	tasks := wireTasks(g)
	mergeMeta(job, g, tasks)
	if want := map[string]string{"owner": "group", "tier": "task"}; !reflect.DeepEqual(tasks[0].Meta, want) {
		t.Errorf("task a's meta = %v, want %v", tasks[0].Meta, want)
	}
	if want := map[string]string{"owner": "group", "tier": "web"}; !reflect.DeepEqual(tasks[1].Meta, want) {
		t.Errorf("task b's meta = %v, want %v", tasks[1].Meta, want)
	}
	none := wireTasks(&spec.Group{Tasks: []*spec.Task{{Name: "c"}}})
	mergeMeta(&spec.Job{}, &spec.Group{}, none)
	if none[0].Meta != nil {
		t.Errorf("no meta anywhere gave %v", none[0].Meta)
	}
}

// A group's own services go with its first main task, before that
// task's own; a prestart task does not carry them.
func TestWireTasksGroupServices(t *testing.T) {
	g := &spec.Group{
		Services: []*spec.Service{nil, {Name: "j-g", Port: "http", Checks: []*spec.Check{{Type: "tcp"}}}},
		Tasks: []*spec.Task{
			{Name: "init", Lifecycle: &spec.Lifecycle{Hook: "prestart"}},
			{Name: "main", Services: []*spec.Service{{Name: "own"}}},
			{Name: "other"},
		},
	}
	got := wireTasks(g)
	if got[0].Services != nil || got[2].Services != nil {
		t.Fatalf("the prestart and the second main task carry %v, %v; want none", got[0].Services, got[2].Services)
	}
	if s := got[1].Services; len(s) != 2 || s[0].Name != "j-g" || s[0].Port != "http" || len(s[0].Checks) != 1 || s[1].Name != "own" {
		t.Fatalf("the first main task carries %+v; want the group's j-g, then its own", s)
	}
}
