package spec

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func BenchmarkTmpLex(b *testing.B) {
	src := bigJob(100, 10)
	for b.Loop() {
		hclsyntax.LexConfig(src, "x", hcl.InitialPos)
	}
}
func BenchmarkTmpSyntax(b *testing.B) {
	src := bigJob(100, 10)
	for b.Loop() {
		hclsyntax.ParseConfig(src, "x", hcl.InitialPos)
	}
}
func BenchmarkTmpDecode(b *testing.B) {
	src := bigJob(100, 10)
	f, _ := hclsyntax.ParseConfig(src, "x", hcl.InitialPos)
	for b.Loop() {
		var root rawFile
		decodeBody(f.Body, &root)
	}
}
