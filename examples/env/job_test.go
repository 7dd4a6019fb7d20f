package main

import (
	"os"
	"testing"

	"github.com/strata-run/strata/spec"
)

func TestJobFile(t *testing.T) {
	b, err := os.ReadFile("env.hcl")
	if err != nil {
		t.Fatal(err)
	}
	job, err := spec.Parse("env.hcl", b)
	if err != nil {
		t.Fatal(err)
	}
	g := job.Groups[0]
	if got := g.ServedPort(g.Tasks[0]); got != "http" {
		t.Fatalf("the task serves on %q, want the group's port http", got)
	}
}
