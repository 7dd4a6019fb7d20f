package spec

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Diagnostic is one problem with a job.
//
// A problem found while parsing a file carries the source Range it is
// about; a problem found by Validate in a typed job (one received as JSON)
// carries only a Path such as `group "web" > task "hello" > config > module`.
// A Validate problem found while parsing carries both.
type Diagnostic struct {
	Path    string     // where in the job; empty for syntax and decoding problems
	Summary string     // short, capitalised: "Invalid memory"
	Detail  string     // the full sentence: "memory must be at least 10 MB, got 5"
	Range   *hcl.Range // nil when the job did not come from HCL
}

// Error implements error: "file.hcl:12:5: summary: detail" or "path: summary: detail".
func (d *Diagnostic) Error() string {
	var b strings.Builder
	switch {
	case d.Range != nil:
		fmt.Fprintf(&b, "%s:%d:%d: ", d.Range.Filename, d.Range.Start.Line, d.Range.Start.Column)
	case d.Path != "":
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// Diagnostics is every problem found in one job. Parse and Validate return
// it as their error; use errors.As to get it back.
type Diagnostics []*Diagnostic

// Error implements error, one line per problem.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

// maxSnippet is the longest source line Format shows; longer lines (a
// minified file, binary garbage) are left out rather than flood a terminal.
const maxSnippet = 240

// Format writes the diagnostics as a person reads them:
//
//	hello.hcl:14:18: Invalid memory
//	   14 |         memory = 5
//	      |                  ^
//	  memory must be at least 10 MB, got 5
//
// files maps a filename (as given to Parse) to its source; a diagnostic whose
// file is missing is written without its source line. color adds VT100
// escapes for a terminal.
//
// hcl.NewDiagnosticTextWriter was the first choice, but without color it
// draws neither a caret nor a column (it marks the range only with escape
// codes), so this writer keeps its layout idea and adds both.
func (ds Diagnostics) Format(w io.Writer, files map[string][]byte, color bool) error {
	bw := bufio.NewWriter(w)
	red, bold, reset := "", "", ""
	if color {
		red, bold, reset = "\x1b[31m", "\x1b[1m", "\x1b[0m"
	}
	for _, d := range ds {
		switch {
		case d.Range != nil:
			fmt.Fprintf(bw, "%s%s:%d:%d:%s %s%s%s\n", red, d.Range.Filename, d.Range.Start.Line, d.Range.Start.Column, reset, bold, d.Summary, reset)
			if src, ok := files[d.Range.Filename]; ok {
				writeSnippet(bw, src, *d.Range, red, reset)
			}
		case d.Path != "":
			fmt.Fprintf(bw, "%s%s:%s %s%s%s\n", red, d.Path, reset, bold, d.Summary, reset)
		default:
			fmt.Fprintf(bw, "%sError:%s %s%s%s\n", red, reset, bold, d.Summary, reset)
		}
		if d.Detail != "" {
			for _, line := range strings.Split(d.Detail, "\n") {
				fmt.Fprintf(bw, "  %s\n", line)
			}
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// writeSnippet writes the first source line of r with a caret line under
// the part of it r covers. Every offset is clamped: r may come from another
// version of the file.
func writeSnippet(w io.Writer, src []byte, r hcl.Range, red, reset string) {
	start := min(max(r.Start.Byte, 0), len(src))
	end := min(max(r.End.Byte, start), len(src))
	lineStart := bytes.LastIndexByte(src[:start], '\n') + 1
	lineEnd := len(src)
	if i := bytes.IndexByte(src[start:], '\n'); i >= 0 {
		lineEnd = start + i
	}
	line := bytes.TrimRight(src[lineStart:lineEnd], "\r")
	if len(line) > maxSnippet || !utf8.Valid(line) {
		return
	}
	end = min(end, lineStart+len(line))
	start = min(start, lineStart+len(line))

	var pad strings.Builder
	for _, c := range string(src[lineStart:start]) {
		if c == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	carets := max(utf8.RuneCount(src[start:end]), 1)
	fmt.Fprintf(w, "%5d | %s\n", r.Start.Line, line)
	fmt.Fprintf(w, "      | %s%s%s%s\n", pad.String(), red, strings.Repeat("^", carets), reset)
}

// fromHCL converts hcl's error diagnostics (warnings are dropped: nothing
// in the job language warns yet).
func fromHCL(hds hcl.Diagnostics) Diagnostics {
	var ds Diagnostics
	for _, hd := range hds {
		if hd.Severity != hcl.DiagError {
			continue
		}
		d := &Diagnostic{Summary: hd.Summary, Detail: hd.Detail}
		if hd.Subject != nil {
			r := *hd.Subject
			d.Range = &r
		}
		ds = append(ds, d)
	}
	return ds
}

// sortByPosition orders diagnostics by file and position; those without a
// range keep their order, after the others.
func (ds Diagnostics) sortByPosition() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Range, ds[j].Range
		switch {
		case a == nil || b == nil:
			return a != nil && b == nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		case a.Start.Byte != b.Start.Byte:
			return a.Start.Byte < b.Start.Byte
		default:
			return a.End.Byte < b.End.Byte
		}
	})
}
