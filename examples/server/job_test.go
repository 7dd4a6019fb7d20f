package main

import (
	"os"
	"testing"

	"github.com/strata-run/strata/spec"
)

func TestJobFile(t *testing.T) {
	b, err := os.ReadFile("server.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.Parse("server.hcl", b); err != nil {
		t.Fatal(err)
	}
}
