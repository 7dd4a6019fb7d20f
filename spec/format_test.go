package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Formatting every test file is idempotent, keeps its meaning, and leaves
// files already in canonical form alone.
func TestFormatSourceIdempotent(t *testing.T) {
	for _, path := range testFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			once, err := FormatSource(path, src)
			if err != nil {
				var ds Diagnostics
				if !errors.As(err, &ds) || !isBad(path) {
					t.Fatalf("FormatSource: %v", err)
				}
				return // a syntax error: refused
			}
			twice, err := FormatSource(path, once)
			if err != nil || !bytes.Equal(once, twice) {
				t.Fatalf("not idempotent (%v):\n--- once ---\n%s\n--- twice ---\n%s", err, once, twice)
			}
			if isBad(path) {
				return
			}
			before, err := Parse(path, src)
			if err != nil {
				t.Fatal(err)
			}
			after, err := Parse(path, once)
			if err != nil {
				t.Fatalf("the formatted file does not parse: %v\n%s", err, once)
			}
			b1, b2 := mustJSON(t, before), mustJSON(t, after)
			if !bytes.Equal(b1, b2) {
				t.Errorf("formatting changed the job:\n%s\n%s", b1, b2)
			}
		})
	}
}

func TestFormatSource(t *testing.T) {
	src := []byte("job \"x\" {\n  group \"g\" {\n      count=1\n    task \"t\" {\n  driver =   \"docker\"\n  image_tag_is_not_checked = 1\n    }\n  }\n}\n")
	want := "job \"x\" {\n  group \"g\" {\n    count = 1\n    task \"t\" {\n      driver                   = \"docker\"\n      image_tag_is_not_checked = 1\n    }\n  }\n}\n"
	got, err := FormatSource("x.hcl", src)
	if err != nil || string(got) != want {
		t.Errorf("FormatSource = %v\n%s\nwant\n%s", err, got, want)
	}
	if _, err := FormatSource("bad.hcl", []byte("job \"x\" {\n  count = \n")); err == nil {
		t.Error("FormatSource accepted a syntax error")
	}
	if _, err := FormatSource("big.hcl", make([]byte, MaxFileSize+1)); err == nil {
		t.Error("FormatSource accepted an oversized file")
	}
}

func mustJSON(t testing.TB, j *Job) []byte {
	t.Helper()
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
