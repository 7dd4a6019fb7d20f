package spec

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// MaxFileSize is the largest job file Parse reads (1 MiB).
const MaxFileSize = 1 << 20

// Parse decodes one job file into a canonical, valid job. filename is used
// in positions only; Parse reads nothing but src. It is ParseWithVars
// without values from outside the file: variables take their defaults.
//
// On any problem it returns nil and Diagnostics holding every problem found
// (syntax, unknown blocks and attributes, wrong types, bad durations,
// duplicate labels, variables and everything Validate checks), each with
// its source range. A syntax error stops there: what follows it is not
// decoded, since the parser's recovery would only add noise.
func Parse(filename string, src []byte) (*Job, error) {
	return ParseWithVars(filename, src, Vars{})
}

// checkInput refuses, before any parsing, a file larger than MaxFileSize
// or nested deeper than hclsyntax can parse without overflowing its stack.
func checkInput(filename string, src []byte) error {
	if len(src) > MaxFileSize {
		start := hcl.Pos{Line: 1, Column: 1}
		return Diagnostics{{
			Summary: "File too large",
			Detail:  fmt.Sprintf("a job file may be at most %d bytes (1 MiB); this one is %d", MaxFileSize, len(src)),
			Range:   &hcl.Range{Filename: filename, Start: start, End: start},
		}}
	}
	if hds := checkNesting(filename, src); hds.HasErrors() {
		return fromHCL(hds)
	}
	return nil
}

// ParseWithVars is Parse with values for the file's variables (see Vars).
// A problem in a variable file carries a range in that file; a problem
// with a -var flag has no range and names the flag.
func ParseWithVars(filename string, src []byte, vars Vars) (*Job, error) {
	if err := checkInput(filename, src); err != nil {
		return nil, err
	}
	file, hds := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if hds.HasErrors() {
		return nil, sorted(fromHCL(hds))
	}
	return decodeFile(filename, src, file.Body, vars)
}

// decodeFile is ParseWithVars after the syntax: body is the file's, parsed
// without errors.
func decodeFile(filename string, src []byte, body hcl.Body, vars Vars) (*Job, error) {
	content, hds := body.Content(fileSchema)
	for _, d := range hds {
		if d.Summary == "Unsupported argument" || d.Summary == "Unsupported block type" {
			d.Detail += expected(fileSchema, false)
		}
	}
	var rawVars []*rawVariable
	var jobs []*hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "variable":
			var rv rawVariable
			// A declaration may not refer to variables: an empty scope.
			hds = append(hds, decoder{sc: &scope{}}.decodeBlock(b, reflect.ValueOf(&rv).Elem())...)
			rawVars = append(rawVars, &rv)
		case "job":
			jobs = append(jobs, b)
		}
	}
	sc, ds := newScope(rawVars, vars)
	hds = append(hds, ds...)
	if len(jobs) == 0 {
		r := body.MissingItemRange()
		hds = append(hds, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Missing job block",
			Detail:   `a job file holds one job block, like: job "example" { ... }`,
			Subject:  &r,
		})
		return nil, sorted(fromHCL(hds))
	}
	for _, extra := range jobs[1:] {
		hds = append(hds, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Duplicate job block",
			Detail:   fmt.Sprintf("a job file holds exactly one job block; the first is at %s", jobs[0].DefRange),
			Subject:  extra.DefRange.Ptr(),
		})
	}
	var rj rawJob
	hds = append(hds, decoder{sc: sc}.decodeBlock(jobs[0], reflect.ValueOf(&rj).Elem())...)

	c := &converter{ix: newIndex(len(src) / 64), scope: sc, src: src} // about one block per 64 bytes of a typical file
	job := c.job(&rj)
	hds = append(hds, c.diags...)
	canonicalize(job, c.ix.writtenIn)

	diags := fromHCL(hds)
	decoded := newRangeSet(filename, diags, sc.quiet)
	for _, p := range validate(job) {
		d := &Diagnostic{Path: p.at.String(), Summary: p.summary, Detail: p.detail}
		if r, ok := c.ix.lookup(p.at.key()); ok {
			if decoded.overlaps(r) {
				continue // already reported while decoding: a value that did not decode is zero here
			}
			d.Range = &r
		}
		diags = append(diags, d)
	}
	if len(diags) > 0 {
		return nil, sorted(diags)
	}
	return job, nil
}

// fileSchema is the top level of a job file.
var fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "variable", LabelNames: []string{"name"}},
	{Type: "job", LabelNames: []string{"id"}},
}}

func sorted(ds Diagnostics) Diagnostics {
	ds.sortByPosition()
	return ds
}

// rangeSet answers "does r overlap a range of the set" in O(log n), for
// ranges in the one file being parsed.
type rangeSet struct{ starts, ends []int } // sorted by start; ends[i] is the max end of ranges[0..i]

// newRangeSet gathers the ranges in filename of ds and of more (ranges in
// a variable file are left out: their offsets are of another file).
func newRangeSet(filename string, ds Diagnostics, more []hcl.Range) rangeSet {
	var rs []hcl.Range
	for _, r := range more {
		if r.Filename == filename {
			rs = append(rs, r)
		}
	}
	for _, d := range ds {
		if d.Range != nil && d.Range.Filename == filename {
			rs = append(rs, *d.Range)
		}
	}
	slices.SortFunc(rs, func(a, b hcl.Range) int { return a.Start.Byte - b.Start.Byte })
	var s rangeSet
	maxEnd := -1
	for _, r := range rs {
		maxEnd = max(maxEnd, r.End.Byte, r.Start.Byte+1) // an empty range covers one byte, as hcl.Range.Overlaps has it
		s.starts = append(s.starts, r.Start.Byte)
		s.ends = append(s.ends, maxEnd)
	}
	return s
}

func (s rangeSet) overlaps(r hcl.Range) bool {
	end := max(r.End.Byte, r.Start.Byte+1)
	// The last range starting before r ends; the running max end tells
	// whether any range starting at or before it reaches into r.
	i, _ := slices.BinarySearch(s.starts, end)
	return i > 0 && s.ends[i-1] > r.Start.Byte
}
