package spec

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// decodeBoth decodes the job blocks of src through decodeSyntax where it
// takes a body and through Content always, and fails if the raw structs or the
// diagnostics differ. It returns the first job decoded and its scope (nil
// when src does not parse or holds no job).
func decodeBoth(t *testing.T, src []byte) (*rawJob, *scope) {
	t.Helper()
	f, ds := hclsyntax.ParseConfig(src, "f.hcl", hcl.InitialPos)
	if ds.HasErrors() {
		return nil, nil
	}
	content, _ := f.Body.Content(fileSchema)
	sc, _ := newScope(nil, Vars{})
	var first *rawJob
	for _, b := range content.Blocks {
		if b.Type != "job" {
			continue
		}
		var fast, general rawJob
		dFast := decoder{sc: sc}.decodeBlock(b, reflect.ValueOf(&fast).Elem())
		dGeneral := decoder{sc: sc, general: true}.decodeBlock(b, reflect.ValueOf(&general).Elem())
		if !reflect.DeepEqual(fast, general) {
			t.Errorf("decodeSyntax and Content decode differently:\n%s", src)
		}
		if a, b := diagStrings(dFast), diagStrings(dGeneral); a != b {
			t.Errorf("decodeSyntax and Content report differently:\n%s\n---\n%s\n---\n%s", a, b, src)
		}
		if first == nil {
			first = &fast
		}
	}
	return first, sc
}

// diagStrings lists ds sorted: Content reports the unsupported attributes
// of a body in map order, and Parse sorts its diagnostics anyway.
func diagStrings(ds hcl.Diagnostics) string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = fmt.Sprintf("%v %s: %s: %s", d.Severity, d.Subject, d.Summary, d.Detail)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// decodeSyntax, the fast way through bodies that fit their schema, decodes
// and reports exactly what the general way through Content does.
func TestDecodeSyntaxAsContent(t *testing.T) {
	for _, path := range testFiles(t) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		decodeBoth(t, src)
	}
	decodeBoth(t, bigJob(2, 2))
}

// index.writtenIn answers as index.has on the key, for every attribute and
// block type of every recorded block.
func TestIndexWrittenAsHas(t *testing.T) {
	var names []string
	for _, v := range []any{rawJob{}, rawGroup{}, rawTask{}, rawConfig{}, rawMount{}, rawRestart{}, rawReschedule{},
		rawUpdate{}, rawDisconnect{}, rawLifecycle{}, rawConstraint{}, rawAffinity{}, rawSpread{}, rawTarget{},
		rawResources{}, rawNetwork{}, rawPort{}, rawService{}, rawCheck{}} {
		p := planFor(reflect.TypeOf(v))
		for n := range p.attrNames {
			names = append(names, n)
		}
		for n := range p.labelCount {
			names = append(names, n)
		}
	}
	names = append(names, "nosuch")
	files := testFiles(t)
	srcs := [][]byte{bigJob(2, 2)}
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	checked := 0
	for _, src := range srcs {
		rj, sc := decodeBoth(t, src)
		if rj == nil {
			continue
		}
		c := &converter{ix: newIndex(0), scope: sc, src: src}
		c.job(rj)
		for key := range c.ix.blocks {
			at := locFromKey(t, key)
			if got := at.key(); got != key {
				t.Fatalf("locFromKey(%q).key() = %q", key, got)
			}
			for _, n := range names {
				if got, want := c.ix.writtenIn(at, n), c.ix.has(key+" > "+n); got != want {
					t.Errorf("%s > %s: writtenIn = %v, has = %v\n%s", key, n, got, want, src)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}

// locFromKey rebuilds the loc of a recorded block from its key.
func locFromKey(t *testing.T, key string) loc {
	segs := strings.Split(key, " > ")
	if segs[0] != "job" {
		t.Fatalf("key %q", key)
	}
	at := rootLoc()
	for _, s := range segs[1:] {
		if i := strings.IndexByte(s, '['); i > 0 {
			n, err := strconv.Atoi(strings.TrimSuffix(s[i+1:], "]"))
			if err != nil {
				t.Fatalf("key %q", key)
			}
			at = at.nth(s[:i], n)
			continue
		}
		at = at.attr(s)
	}
	return at
}

// FuzzDecodeSyntax: decodeSyntax and Content agree on any input.
func FuzzDecodeSyntax(f *testing.F) {
	for _, path := range testFiles(f) {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if checkInput("f.hcl", src) == nil {
			decodeBoth(t, src)
		}
	})
}
