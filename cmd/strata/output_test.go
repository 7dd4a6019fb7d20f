package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// -t runs over the JSON -json prints: its field names, numbers as
// written, a missing field an error; -json indents the same JSON.
func TestOutputFlags(t *testing.T) {
	type rec struct {
		Name  string `json:"Name"`
		Time  int64  `json:"SubmitTime"`
		Inner struct {
			Ok bool `json:"OK"`
		} `json:"Inner"`
	}
	v := []rec{{Name: "web", Time: 1733336400123456789}}
	v[0].Inner.Ok = true
	run := func(args ...string) (string, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o := addOutputFlags(fs)
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if err := checkOutputFlags(fs); err != nil {
			return "", err
		}
		var b strings.Builder
		err := o.write(&b, v)
		return b.String(), err
	}
	if out, err := run("-t", `{{range .}}{{.Name}} {{.SubmitTime}} {{.Inner.OK}}{{end}}`); err != nil || out != "web 1733336400123456789 true\n" {
		t.Fatalf("-t = %q, %v", out, err)
	}
	if out, err := run("-json"); err != nil || !strings.Contains(out, `"SubmitTime": 1733336400123456789`) || !strings.HasPrefix(out, "[\n    {") {
		t.Fatalf("-json = %q, %v", out, err)
	}
	if _, err := run("-t", "{{range .}}{{.Time}}{{end}}"); err == nil || !strings.Contains(err.Error(), "Time") {
		t.Fatalf("a Go field name that JSON names otherwise: %v", err)
	}
	if _, err := run("-t", "{{.Name"); err == nil {
		t.Fatal("a malformed template was accepted")
	}
	if _, err := run("-json", "-t", "{{.}}"); err == nil || !strings.Contains(err.Error(), "cannot be used together") {
		t.Fatalf("-json with -t: %v", err)
	}
}
