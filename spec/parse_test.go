package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// testFiles returns testdata/*.hcl. Files named bad-*.hcl must fail to
// parse; the others must parse.
func testFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.hcl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	return files
}

func isBad(path string) bool { return strings.HasPrefix(filepath.Base(path), "bad-") }

// render is what a golden file holds: the canonical JSON of a valid job, or
// the formatted diagnostics (no color) of an invalid one.
func render(t *testing.T, path string, src []byte) []byte {
	t.Helper()
	name := filepath.Base(path)
	job, err := Parse(name, src)
	if isBad(path) {
		var ds Diagnostics
		if !errors.As(err, &ds) {
			t.Fatalf("Parse(%s) = %v, %v; want Diagnostics", name, job, err)
		}
		if job != nil {
			t.Errorf("Parse(%s) returned a job with its error", name)
		}
		for _, d := range ds {
			if d.Range == nil {
				t.Errorf("%s: diagnostic without a range: %s", name, d)
			}
		}
		var buf bytes.Buffer
		if err := ds.Format(&buf, map[string][]byte{name: src}, false); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("-- Error() --\n")
		buf.WriteString(ds.Error())
		buf.WriteByte('\n')
		return buf.Bytes()
	}
	if err != nil {
		var buf bytes.Buffer
		if ds, ok := err.(Diagnostics); ok {
			ds.Format(&buf, map[string][]byte{name: src}, false)
		}
		t.Fatalf("Parse(%s): %v\n%s", name, err, buf.String())
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // ">= 1.2" stays readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(job); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestGolden(t *testing.T) {
	for _, path := range testFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := render(t, path, src)
			golden := strings.TrimSuffix(path, ".hcl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./spec -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (run with -update if the change is intended)\n--- got ---\n%s\n--- want ---\n%s", path, golden, got, want)
			}
		})
	}
}

// TestRoundTrip: HCL -> Job -> JSON -> Job -> Canonicalize gives the same
// job, and the parsed job is already canonical and valid.
func TestRoundTrip(t *testing.T) {
	for _, path := range testFiles(t) {
		if isBad(path) {
			continue
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			job, err := Parse(path, src)
			if err != nil {
				t.Fatal(err)
			}
			checkCanonicalRoundTrip(t, job)
		})
	}
}

func checkCanonicalRoundTrip(t testing.TB, job *Job) {
	t.Helper()
	if err := Validate(job); err != nil {
		t.Fatalf("Validate(Parse(...)) = %v", err)
	}
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	var back Job
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	Canonicalize(&back)
	if !reflect.DeepEqual(job, &back) {
		b2, _ := json.Marshal(&back)
		t.Fatalf("round trip changed the job:\n got %s\nwant %s", b2, b)
	}
	again, _ := json.Marshal(job)
	Canonicalize(job)
	if b3, _ := json.Marshal(job); !bytes.Equal(again, b3) {
		t.Fatalf("Canonicalize is not idempotent on a parsed job:\n%s\n%s", again, b3)
	}
}

// TestParseRanges pins the exact source position of a few problems.
func TestParseRanges(t *testing.T) {
	tests := []struct {
		file    string
		summary string
		want    string // the source text under the range
		line    int
	}{
		{"bad-memory.hcl", "Invalid memory", "5", 11},
		{"bad-negative-count.hcl", "Invalid count", "-1", 3},
		{"bad-duration.hcl", "Invalid duration", `"10x"`, 19},
		{"bad-undeclared-port.hcl", "Undeclared port", `"web"`, 15},
		{"bad-driver.hcl", "Unsupported driver", `"qemu"`, 4},
		{"bad-missing-driver.hcl", "Missing driver", `task "hello"`, 3},
		{"bad-duplicate-task.hcl", "Duplicate task", `task "hello"`, 10},
		{"bad-wrong-type.hcl", "Unsuitable value type", `three`, 3},
		{"bad-unknown-block.hcl", "Unsupported block type", "vault", 4},
		{"bad-names.hcl", "Invalid priority", "0", 2},
		{"bad-names.hcl", "Invalid service name", `"Web_Frontend"`, 17},
		{"bad-names.hcl", "Duplicate group", `group "web"`, 22},
		{"bad-checks.hcl", "Missing check path", "check", 17},
		{"bad-variables.hcl", "Undefined variable", "var.prio", 25},
		{"bad-variables.hcl", "Duplicate variable", `variable "count"`, 5},
		{"bad-interpolation.hcl", "Ambiguous $ before a reference", "STRATA_TASK_NAME", 23},
		{"bad-interpolation.hcl", "Unknown variable", "attr", 8},
		{"bad-placement.hcl", "Invalid reference", `"${foo.bar}"`, 3},
		{"bad-placement.hcl", "Duplicate spread target", `target "dc1"`, 38},
		{"bad-ports.hcl", "Duplicate port", `port "http"`, 24},
		{"bad-strategies.hcl", "Ambiguous reschedule policy", "true", 18},
		{"bad-system.hcl", "Reschedule not allowed", "reschedule", 17},
		{"bad-periodic.hcl", "Invalid cron", `"61 * * * *"`, 4},
		{"bad-periodic.hcl", "Invalid time_zone", `"Mars/Olympus"`, 5},
		{"bad-periodic.hcl", "Periodic not allowed", "periodic", 3},
		{"bad-parameterized.hcl", "Invalid payload", `"sometimes"`, 4},
		{"bad-parameterized.hcl", "Duplicate meta key", `"input"`, 6},
		{"bad-parameterized.hcl", "Invalid file", `"../escape.txt"`, 16},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.summary, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(tt.file, src)
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("Parse = %v, want Diagnostics", err)
			}
			for _, d := range ds {
				if d.Summary != tt.summary {
					continue
				}
				got := string(d.Range.SliceBytes(src))
				if got != tt.want || d.Range.Start.Line != tt.line {
					t.Errorf("%q at line %d = %q, want line %d %q", tt.summary, d.Range.Start.Line, got, tt.line, tt.want)
				}
				return
			}
			t.Errorf("no %q in\n%v", tt.summary, ds)
		})
	}
}

func TestParseAllErrorsReported(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "bad-three-errors.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("bad-three-errors.hcl", src)
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("Parse = %v", err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Summary)
	}
	want := []string{"Unsupported argument", "Invalid duration", "Invalid memory"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("summaries = %q, want %q", got, want)
	}
}

func TestParseDefaults(t *testing.T) {
	job, err := Parse("min.hcl", []byte(`job "j" {
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "m@1.0.0"
        mode = "http"
      }
      restart { attempts = 0 }
      resources {
        network {
          port "p" {}
        }
      }
      service {
        port = "p"
        check {
          type = "tcp"
          interval = "1s"
        }
      }
    }
  }
}`))
	if err != nil {
		t.Fatal(err)
	}
	g := job.Groups[0]
	tk := g.Tasks[0]
	s := tk.Services[0]
	c := s.Checks[0]
	got := []any{job.Type, job.Region, job.Priority, g.Count, tk.Restart.Attempts, tk.Restart.Interval, tk.Restart.Delay, tk.Restart.Mode,
		tk.Resources.CPU, tk.Resources.MemoryMB, s.Name, c.Interval, c.Timeout}
	want := []any{"service", "global", 50, 1, 0, Duration(30 * 60e9), Duration(15e9), "fail",
		100, 300, "j-g-t", Duration(1e9), Duration(1e9)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %v\nwant %v", got, want)
	}
}

func TestParseMetaBothForms(t *testing.T) {
	job, err := Parse("meta.hcl", []byte(`job "j" {
  meta = { a = "1" }
  group "g" {
    meta { b = 2 }
    task "t" {
      driver = "docker"
      config { image = "x" }
      env = { "X.Y" = "z" }
    }
  }
}`))
	if err != nil {
		t.Fatal(err)
	}
	if job.Meta["a"] != "1" || job.Groups[0].Meta["b"] != "2" || job.Groups[0].Tasks[0].Env["X.Y"] != "z" {
		t.Errorf("maps: %v %v %v", job.Meta, job.Groups[0].Meta, job.Groups[0].Tasks[0].Env)
	}

	_, err = Parse("meta.hcl", []byte(`job "j" {
  meta = { a = "1" }
  meta { b = "2" }
  group "g" {
    task "t" {
      driver = "docker"
      config { image = "x" }
    }
  }
}`))
	if err == nil || !strings.Contains(err.Error(), "meta.hcl:3:3: Duplicate meta") {
		t.Errorf("meta written twice: %v", err)
	}
}

func TestParseTooLarge(t *testing.T) {
	src := bytes.Repeat([]byte("# padding\n"), MaxFileSize/10+1)
	_, err := Parse("big.hcl", src)
	if err == nil || !strings.HasPrefix(err.Error(), "big.hcl:1:1: File too large") {
		t.Errorf("Parse(big) = %v", err)
	}
}

func TestDiagnosticsError(t *testing.T) {
	r := hcl.Range{Filename: "a.hcl", Start: hcl.Pos{Line: 12, Column: 5, Byte: 100}}
	ds := Diagnostics{
		{Summary: "Invalid memory", Detail: "memory must be at least 10 MB, got 5", Range: &r, Path: "ignored when there is a range"},
		{Path: `group "web" > count`, Summary: "Invalid count", Detail: "count must be 0 or more, got -1"},
		{Summary: "Odd", Detail: ""},
	}
	want := "a.hcl:12:5: Invalid memory: memory must be at least 10 MB, got 5\n" +
		"group \"web\" > count: Invalid count: count must be 0 or more, got -1\n" +
		"Odd"
	if got := ds.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}

func TestFormat(t *testing.T) {
	src := []byte("job \"x\" {\n\tpriority = 500\n}\n")
	r := hcl.Range{Filename: "x.hcl", Start: hcl.Pos{Line: 2, Column: 13, Byte: 22}, End: hcl.Pos{Line: 2, Column: 16, Byte: 25}}
	ds := Diagnostics{
		{Summary: "Invalid priority", Detail: "priority must be between 1 and 100, got 500", Range: &r},
		{Path: "priority", Summary: "Invalid priority", Detail: "two\nlines"},
	}
	var plain, color bytes.Buffer
	if err := ds.Format(&plain, map[string][]byte{"x.hcl": src}, false); err != nil {
		t.Fatal(err)
	}
	want := "x.hcl:2:13: Invalid priority\n" +
		"    2 | \tpriority = 500\n" +
		"      | \t           ^^^\n" +
		"  priority must be between 1 and 100, got 500\n" +
		"\n" +
		"priority: Invalid priority\n" +
		"  two\n" +
		"  lines\n" +
		"\n"
	if plain.String() != want {
		t.Errorf("Format =\n%q\nwant\n%q", plain.String(), want)
	}
	if err := ds.Format(&color, nil, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(color.String(), "\x1b[31m") || strings.Contains(color.String(), "priority = 500") {
		t.Errorf("colored Format without sources = %q", color.String())
	}
}

// A problem inside the second of two same-named tasks points into the
// second: the index is keyed by position, not by label.
func TestParseRangeOfDuplicateLabel(t *testing.T) {
	src := []byte(`job "j" {
  group "g" {
    task "t" {
      driver = "docker"
      config { image = "x" }
    }
    task "t" {
      driver = "docker"
      config { image = "x" }
      resources { memory = 5 }
    }
  }
}`)
	_, err := Parse("dup.hcl", src)
	want := "dup.hcl:7:5: Duplicate task: task \"t\" is defined more than once in group \"g\"\n" +
		"dup.hcl:10:28: Invalid memory: memory must be at least 10 MB, got 5"
	if err == nil || err.Error() != want {
		t.Errorf("Parse =\n%v\nwant\n%s", err, want)
	}
}

func TestIndexLookup(t *testing.T) {
	r := func(b int) hcl.Range { return hcl.Range{Start: hcl.Pos{Byte: b}, End: hcl.Pos{Byte: b + 1}} }
	ix := index{ranges: map[string]hcl.Range{
		"job":                            r(0),
		"job > group[0]":                 r(10),
		"job > group[0] > count":         r(20),
		"job > datacenters":              r(30),
		"job > datacenters[1]":           r(40),
		"job > group[0] > task[0]":       r(50),
		"job > group[0] > task[0] > env": r(60),
	}}
	for key, want := range map[string]int{
		"job > group[0] > count":                     20, // exact
		"job > group[0] > meta":                      10, // missing attribute: its block
		"job > datacenters[1]":                       40, // element
		"job > datacenters[2]":                       30, // element without a range: the list
		"job > group[0] > task[0] > env > A=B":       60, // map entry: the map
		"job > group[0] > task[0] > config > module": 50,
		"job > priority":                             0,
	} {
		got, ok := ix.lookup(key)
		if !ok || got.Start.Byte != want {
			t.Errorf("lookup(%q) = %d, %v; want %d", key, got.Start.Byte, ok, want)
		}
	}
	if _, ok := newIndex(0).lookup("job > x"); ok {
		t.Error("lookup in an empty index found something")
	}
}

func TestRangeSet(t *testing.T) {
	rng := func(a, b int) *hcl.Range { return &hcl.Range{Start: hcl.Pos{Byte: a}, End: hcl.Pos{Byte: b}} }
	other := rng(40, 50)
	other.Filename = "vars.hcl"
	s := newRangeSet("", Diagnostics{{Range: rng(50, 60)}, {Range: rng(10, 40)}, {Range: nil}, {Range: rng(12, 13)}, {Range: rng(70, 70)}, {Range: other}}, nil)
	for _, tt := range []struct {
		a, b int
		want bool
	}{
		{0, 10, false}, {0, 11, true}, {39, 45, true}, {40, 50, false}, {45, 55, true},
		{59, 59, true}, {60, 70, false}, {70, 70, true}, {69, 71, true}, {71, 80, false}, {41, 41, false},
	} {
		if got := s.overlaps(*rng(tt.a, tt.b)); got != tt.want {
			t.Errorf("overlaps(%d-%d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// Attributes are found through the block that holds them, list elements
// through their list.
func TestIndexThroughBlocks(t *testing.T) {
	src := []byte("job \"j\" {\n  datacenters = [\"a\", \"b\"]\n  priority = 5\n}\n")
	f, ds := hclsyntax.ParseConfig(src, "j.hcl", hcl.InitialPos)
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	blk := f.Body.(*hclsyntax.Body).Blocks[0]
	ix := newIndex(1)
	c := &converter{ix: ix}
	c.block(rootLoc(), blk.DefRange(), blk.Body)
	for key, want := range map[string]string{
		"job":                  `job "j"`,
		"job > priority":       "5",
		"job > datacenters":    `["a", "b"]`,
		"job > datacenters[1]": `"b"`,
		"job > datacenters[2]": `["a", "b"]`, // no such element: the list
		"job > region":         `job "j"`,    // not written: the block
	} {
		r, ok := ix.lookup(key)
		if got := string(r.SliceBytes(src)); !ok || got != want {
			t.Errorf("lookup(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
	if ix.has("job > region") || !ix.has("job > priority") || ix.has("job > datacenters[2]") {
		t.Error("has() is not exact")
	}
}

// hclsyntax recurses once per nesting level and a Go stack overflow kills
// the process, so what could nest deeper than maxNesting is refused
// before parsing, with a position; 1 MiB of "(" would otherwise crash.
func TestParseDeepNesting(t *testing.T) {
	for _, pat := range []string{"(", "[", "{a=", `"${`, "-", "!", "- !", "a?a:", "f(", "<<EOT\n${"} {
		t.Run(pat, func(t *testing.T) {
			src := []byte("job \"j\" {\n  priority = " + strings.Repeat(pat, maxNesting+1) + "\n}\n")
			for _, err := range []error{
				func() error { _, err := Parse("deep.hcl", src); return err }(),
				func() error { _, err := FormatSource("deep.hcl", src); return err }(),
				func() error {
					_, err := ParseWithVars("j.hcl", []byte("variable \"v\" {\n  type = number\n}\njob \"j\" {}\n"),
						Vars{Files: []VarFile{{Name: "deep.hcl", Src: src[18:]}}})
					return err
				}(),
			} {
				if err == nil || !strings.Contains(err.Error(), "deep.hcl:") || !strings.Contains(err.Error(), "Too deeply nested") {
					t.Errorf("got %.200v", err)
				}
			}
		})
	}
	// Well below the bound, the parser copes, and says what is wrong.
	src := []byte("job \"j\" {\n  priority = " + strings.Repeat("(", 2000) + "1" + strings.Repeat(")", 2000) + "\n}\n")
	if _, err := Parse("ok.hcl", src); err == nil || strings.Contains(err.Error(), "Too deeply nested") {
		t.Errorf("2000 parentheses: %.200v", err)
	}
}

func TestCheckNestingPosition(t *testing.T) {
	src := []byte("job \"é\" {\n  x = " + strings.Repeat("(", maxNesting+5))
	ds := checkNesting("p.hcl", src)
	if len(ds) != 1 {
		t.Fatalf("checkNesting = %v", ds)
	}
	// The first "(" is depth 2 (after the block's "{"), so the limit is
	// crossed by the maxNesting-th "(" of line 2, whose first is at column 7
	// (columns count characters: "é" is one, two bytes).
	if got, want := ds[0].Subject.Start, (hcl.Pos{Line: 2, Column: 7 + maxNesting - 1, Byte: len("job \"é\" {\n  x = ") + maxNesting - 1}); got != want {
		t.Errorf("position %+v, want %+v", got, want)
	}
}
