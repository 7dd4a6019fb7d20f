package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func parseFile(t testing.TB, path string) *Job {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse(path, src)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// FuzzParse: Parse never panics; it returns either a job that is valid,
// canonical and survives JSON, or Diagnostics that format. FormatSource
// never panics either, is idempotent, and does not change what a file
// means.
func FuzzParse(f *testing.F) {
	for _, path := range testFiles(f) {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		job, err := Parse("fuzz.hcl", src)
		if err != nil {
			var ds Diagnostics
			if job != nil || !errors.As(err, &ds) || len(ds) == 0 {
				t.Fatalf("Parse = %v, %v", job, err)
			}
			if err := ds.Format(io.Discard, map[string][]byte{"fuzz.hcl": src}, true); err != nil {
				t.Fatal(err)
			}
		} else {
			checkCanonicalRoundTrip(t, job)
		}

		out, ferr := FormatSource("fuzz.hcl", src)
		if ferr != nil {
			return
		}
		again, err := FormatSource("fuzz.hcl", out)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("FormatSource is not idempotent (%v):\n%q\n%q", err, out, again)
		}
		if job == nil {
			return
		}
		formatted, err := Parse("fuzz.hcl", out)
		if err != nil {
			t.Fatalf("formatting broke a valid file: %v\n%q\n%q", err, src, out)
		}
		if a, b := mustJSON(t, job), mustJSON(t, formatted); !bytes.Equal(a, b) {
			t.Fatalf("formatting changed the job:\n%s\n%s", a, b)
		}
	})
}

// bigJob writes a job of groups × tasks tasks as an operator would: each
// task is the one `strata job init` writes (a wasm HTTP task with a
// config, env, resources with a port, and a health-checked service), less
// its blank lines and comments, with args added: 27 lines, 20 of them not
// a lone closing brace, about 500 bytes. The restart policy is written
// once per group, where the tasks inherit it: repeating it in each of a
// group's ten tasks would be bulk nobody writes. Port labels are unique in
// a group, as the tasks of a group share a node.
func bigJob(groups, tasks int) []byte {
	var b bytes.Buffer
	b.WriteString("job \"big\" {\n  datacenters = [\"dc1\", \"dc2\"]\n")
	for g := range groups {
		fmt.Fprintf(&b, `  group "g%d" {
    count = 3
    restart {
      attempts = 3
      interval = "10m"
      delay    = "20s"
    }
`, g)
		for t := range tasks {
			fmt.Fprintf(&b, `    task "t%d" {
      driver = "wasm"
      config {
        module = "mod-%d@1.%d.0"
        mode   = "http"
        args   = ["-x", "%d"]
      }
      env {
        INDEX = "%d"
      }
      resources {
        cpu    = 200
        memory = 64
        network {
          port "http%d" {}
        }
      }
      service {
        tags = ["t%d"]
        port = "http%d"
        check {
          type     = "http"
          path     = "/health"
          interval = "15s"
        }
      }
    }
`, t, t, g, t, t, t, t, t)
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func TestBigJob(t *testing.T) {
	src := bigJob(100, 10)
	if len(src) > MaxFileSize {
		t.Fatalf("the benchmark job is %d bytes, over MaxFileSize", len(src))
	}
	job, err := Parse("big.hcl", src)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range job.Groups {
		n += len(g.Tasks)
	}
	if n != 1000 {
		t.Fatalf("%d tasks, want 1000", n)
	}
	checkCanonicalRoundTrip(t, job)
}

// BenchmarkParse1000Tasks is issue #3's "under 50 ms"; docs/RATIONALE.md
// (spec) has the figure and why hclsyntax alone is above it.
func BenchmarkParse1000Tasks(b *testing.B) {
	src := bigJob(100, 10)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("big.hcl", src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseInvalid1000Tasks: every task is wrong twice; index lookups
// and the overlap filter must not go quadratic.
func BenchmarkParseInvalid1000Tasks(b *testing.B) {
	src := bigJob(100, 10)
	src = bytes.ReplaceAll(src, []byte("memory = 64"), []byte("memory = 5"))
	src = bytes.ReplaceAll(src, []byte(`interval = "15s"`), []byte(`interval = "15q"`))
	b.ReportAllocs()
	for b.Loop() {
		_, err := Parse("big.hcl", src)
		if err == nil || strings.Count(err.Error(), "\n")+1 != 2000 {
			b.Fatalf("want 2000 problems")
		}
	}
}

// BenchmarkParseSyntaxOnly1000Tasks is the floor under
// BenchmarkParse1000Tasks: hcl's own lexer and parser on the same bytes.
func BenchmarkParseSyntaxOnly1000Tasks(b *testing.B) {
	benchHCLPass(b, func(src []byte) hcl.Diagnostics {
		_, ds := hclsyntax.ParseConfig(src, "big.hcl", hcl.InitialPos)
		return ds
	})
}

// BenchmarkLexOnly1000Tasks is hcl's lexer alone on the same bytes: the
// part of BenchmarkParseSyntaxOnly1000Tasks before any parsing.
func BenchmarkLexOnly1000Tasks(b *testing.B) {
	benchHCLPass(b, func(src []byte) hcl.Diagnostics {
		_, ds := hclsyntax.LexConfig(src, "big.hcl", hcl.InitialPos)
		return ds
	})
}

// benchHCLPass times one of hcl's own passes over the 1,000-task file.
func benchHCLPass(b *testing.B, pass func(src []byte) hcl.Diagnostics) {
	src := bigJob(100, 10)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if ds := pass(src); ds.HasErrors() {
			b.Fatal(ds)
		}
	}
}

// BenchmarkParseSyntaxOnlyNoGC1000Tasks is BenchmarkParseSyntaxOnly1000Tasks
// with the collector off while the clock runs (it collects, untimed,
// before each parse, so memory is reused rather than faulted in): hcl's
// CPU cost with no GC at all, the floor no tuning of ours goes under.
func BenchmarkParseSyntaxOnlyNoGC1000Tasks(b *testing.B) {
	src := bigJob(100, 10)
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	b.SetBytes(int64(len(src)))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		if _, ds := hclsyntax.ParseConfig(src, "big.hcl", hcl.InitialPos); ds.HasErrors() {
			b.Fatal(ds)
		}
	}
}

// BenchmarkParseDecodeOnly1000Tasks is what Parse adds to
// BenchmarkParseSyntaxOnly1000Tasks: decoding, conversion,
// canonicalization and validation of the parsed file.
func BenchmarkParseDecodeOnly1000Tasks(b *testing.B) {
	src := bigJob(100, 10)
	f, ds := hclsyntax.ParseConfig(src, "big.hcl", hcl.InitialPos)
	if ds.HasErrors() {
		b.Fatal(ds)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeFile("big.hcl", src, f.Body, Vars{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHello(b *testing.B) {
	src, err := os.ReadFile("testdata/hello.hcl")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("hello.hcl", src); err != nil {
			b.Fatal(err)
		}
	}
}
