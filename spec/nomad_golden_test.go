package spec

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// goldenRow is one row of docs/nomad.md's golden set: a file and what
// Strata does with it.
type goldenRow struct {
	file    string
	refused string // "" when accepted; else "L:C: Summary"
	message string // a fragment of the refusal's message
}

var goldenLine = regexp.MustCompile("^\\| `([^`]+)` \\| (accepted|refused at ([0-9]+:[0-9]+: [^|]+?)) \\| (`(.*)`)? *\\|$")

// readGolden parses the table between the golden markers of docs/nomad.md.
func readGolden(t *testing.T) []goldenRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "nomad.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- golden:begin -->")
	table, _, ok2 := strings.Cut(rest, "<!-- golden:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/nomad.md has no golden:begin/golden:end table")
	}
	var rows []goldenRow
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[2:] {
		m := goldenLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("docs/nomad.md: golden row %q is not `| `file` | accepted | |` or `| `file` | refused at L:C: Summary | `message` |`", line)
		}
		rows = append(rows, goldenRow{file: m[1], refused: m[3], message: m[5]})
	}
	return rows
}

// Must-show 1: every job file of the golden set is accepted or refused
// exactly as docs/nomad.md says, and the table and the directory list
// the same files.
func TestNomadGolden(t *testing.T) {
	rows := readGolden(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "nomad", "*.hcl"))
	var listed []string
	accepted := 0
	for _, r := range rows {
		listed = append(listed, filepath.Join("testdata", "nomad", r.file))
		if r.refused == "" {
			accepted++
		}
	}
	slices.Sort(listed)
	if !slices.Equal(files, listed) {
		t.Fatalf("docs/nomad.md lists %q\nbut testdata/nomad holds %q", listed, files)
	}
	if len(rows) < 20 || accepted < 10 {
		t.Fatalf("the golden set has %d files, %d accepted; want at least 20, 10 accepted", len(rows), accepted)
	}
	for _, r := range rows {
		t.Run(r.file, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "nomad", r.file))
			if err != nil {
				t.Fatal(err)
			}
			job, err := Parse(r.file, src)
			if r.refused == "" {
				if err != nil {
					t.Fatalf("docs/nomad.md says accepted; Parse: %v", err)
				}
				if vs := Validate(job); vs != nil {
					t.Fatalf("Parse accepted it but Validate (the servers' check) refuses: %v", vs)
				}
				return
			}
			if err == nil {
				t.Fatalf("docs/nomad.md says refused at %s; Parse accepted it", r.refused)
			}
			first := strings.Split(err.Error(), "\n")[0]
			if want := r.file + ":" + r.refused + ":"; !strings.HasPrefix(first, want) {
				t.Fatalf("first problem %q, docs/nomad.md says %q", first, want)
			}
			if !strings.Contains(first, r.message) {
				t.Fatalf("first problem %q does not contain %q", first, r.message)
			}
		})
	}
}
