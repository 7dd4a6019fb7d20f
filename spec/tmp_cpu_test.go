package spec

import (
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestTmpCPU(t *testing.T) {
	src := bigJob(100, 10)
	t.Logf("size %d", len(src))
	f, _ := hclsyntax.ParseConfig(src, "x", hcl.InitialPos)
	for _, c := range []struct{ name string; fn func() }{
		{"lex", func() { hclsyntax.LexConfig(src, "x", hcl.InitialPos) }},
		{"syntax", func() { hclsyntax.ParseConfig(src, "x", hcl.InitialPos) }},
		{"decode", func() { var root rawFile; decodeBody(f.Body, &root) }},
		{"parse", func() { Parse("x", src) }},
	} {
		c.fn()
		w0, c0 := time.Now(), cpuNow()
		for range 5 { c.fn() }
		t.Logf("%s: wall %v cpu %v per op", c.name, time.Since(w0)/5, (cpuNow()-c0)/5)
	}
}

func TestTmpCalib(t *testing.T) {
	b := make([]byte, 64<<20)
	w0, c0 := time.Now(), cpuNow()
	s := 0
	for i := range b { s += int(b[i]) ^ i }
	t.Logf("calib 64M loop: wall %v cpu %v %d", time.Since(w0), cpuNow()-c0, s)
}
