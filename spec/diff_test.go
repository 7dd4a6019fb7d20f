package spec

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func mustParseFile(t *testing.T, name string) *Job {
	t.Helper()
	src, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse(name, src)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func diffStrings(ds []FieldDiff) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

func TestDiff(t *testing.T) {
	base := mustParseFile(t, "my-service-wasm.hcl")
	if d := Diff(base, mustParseFile(t, "my-service-wasm.hcl")); len(d) != 0 {
		t.Fatalf("a job differs from itself: %q", diffStrings(d))
	}

	changed := mustParseFile(t, "my-service-wasm.hcl")
	g := changed.Groups[0]
	g.Count = 7
	g.Tasks[0].Config.Module = "web-frontend@1.4.3"
	g.Tasks[0].Env["NEW"] = "x"
	delete(g.Tasks[0].Env, "DB_USER")
	extra := *g.Tasks[0]
	extra.Name = "sidecar"
	g.Tasks = append(g.Tasks, &extra)

	got := diffStrings(Diff(base, changed))
	want := []string{
		`~ group "webs" > count: 5 => 7`,
		`+ group "webs" > task "frontend" > env > NEW: "x"`,
		`~ group "webs" > task "frontend" > config > module: "web-frontend@1.4.2" => "web-frontend@1.4.3"`,
		`+ group "webs" > task "sidecar": (added)`,
		`- group "webs" > task "frontend" > env > DB_USER: "web"`,
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d changes, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}

	// Reordering groups or tasks is no change: they are matched by name.
	two := mustParseFile(t, "my-service-wasm.hcl")
	two.Groups[0].Tasks = append(two.Groups[0].Tasks, &extra)
	swapped := mustParseFile(t, "my-service-wasm.hcl")
	swapped.Groups[0].Tasks = append([]*Task{&extra}, swapped.Groups[0].Tasks...)
	if d := Diff(two, swapped); len(d) != 0 {
		t.Errorf("reordered tasks differ: %q", diffStrings(d))
	}

	// A first version: everything is added, one entry per group.
	if got := diffStrings(Diff(nil, base)); !slices.Contains(got, `+ group "webs": (added)`) {
		t.Errorf("diff from nothing: %q", got)
	}
}

func TestGroupNeedsReplace(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(g *Group)
		want   bool
	}{
		{"nothing", func(*Group) {}, false},
		{"count", func(g *Group) { g.Count++ }, false},
		{"update strategy", func(g *Group) { g.Update.MaxParallel = 3; g.Update.Canary = 1 }, false},
		{"reschedule", func(g *Group) { g.Reschedule.Attempts = 9 }, false},
		{"module", func(g *Group) { g.Tasks[0].Config.Module = "web-frontend@2.0.0" }, true},
		{"module digest", func(g *Group) { g.Tasks[0].Config.ModuleDigest = "sha256:00" }, true},
		{"env", func(g *Group) { g.Tasks[0].Env["X"] = "y" }, true},
		{"resources", func(g *Group) { g.Tasks[0].Resources.MemoryMB++ }, true},
		{"check", func(g *Group) { g.Tasks[0].Services[0].Checks[0].Path = "/ready" }, true},
		{"service tags", func(g *Group) { g.Tasks[0].Services[0].Tags = []string{"v2"} }, true},
		{"restart", func(g *Group) { g.Tasks[0].Restart.Attempts = 9 }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old := mustParseFile(t, "my-service-wasm.hcl").Groups[0]
			nu := mustParseFile(t, "my-service-wasm.hcl").Groups[0]
			tt.change(nu)
			if got := GroupNeedsReplace(old, nu); got != tt.want {
				t.Errorf("GroupNeedsReplace = %v, want %v", got, tt.want)
			}
		})
	}
}
