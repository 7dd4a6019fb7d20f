package spec

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// maxNesting bounds how deeply a file may nest what hclsyntax's parser
// recurses on. The parser uses a stack frame per level, several KB each,
// and a Go stack overflow kills the process (it is not a panic): within
// MaxFileSize, 1 MiB of "(" or "-" would. A realistic job nests less than
// 20 deep; 10,000 levels cost the parser a few tens of MB of stack.
const maxNesting = 10000

// checkNesting refuses src before the parser sees it when it could nest
// deeper than maxNesting. It does not parse: it overestimates from the
// raw bytes, counting brackets (which also open "${" and "%{") whether or
// not they are in strings or comments, runs of the prefix operators "-"
// and "!", and the conditionals' "?". A real file is nowhere near the
// bound, so the overestimate costs nothing.
func checkNesting(filename string, src []byte) hcl.Diagnostics {
	depth, run, questions := 0, 0, 0
	for i, c := range src {
		problem := ""
		switch nestClass[c] {
		case classOther:
			run = 0
			continue
		case classSpace:
			continue
		case classOpen:
			run = 0
			if depth++; depth > maxNesting {
				problem = fmt.Sprintf("brackets and braces nest more than %d deep here", maxNesting)
			}
		case classClose:
			run = 0
			depth = max(depth-1, 0)
		case classQuestion:
			run = 0
			if questions++; questions > maxNesting {
				problem = fmt.Sprintf("the file holds more than %d \"?\" (each conditional nests the expression after it)", maxNesting)
			}
		case classPrefix:
			if run++; run > maxNesting {
				problem = fmt.Sprintf("more than %d \"-\" and \"!\" follow each other here (each is a prefix operator, nesting the expression after it)", maxNesting)
			}
		}
		if problem != "" {
			pos := position(src, i)
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Too deeply nested",
				Detail:   problem + "; HCL's parser recurses once per level, and a job file may nest at most " + fmt.Sprint(maxNesting),
				Subject:  &hcl.Range{Filename: filename, Start: pos, End: pos},
			}}
		}
	}
	return nil
}

const (
	classOther = iota
	classSpace
	classOpen
	classClose
	classQuestion
	classPrefix
)

var nestClass = [256]uint8{
	' ': classSpace, '\t': classSpace, '\r': classSpace, '\n': classSpace,
	'(': classOpen, '[': classOpen, '{': classOpen,
	')': classClose, ']': classClose, '}': classClose,
	'?': classQuestion,
	'-': classPrefix, '!': classPrefix,
}

// position is the line and column (in characters) of byte offset i.
func position(src []byte, i int) hcl.Pos {
	line := 1 + bytes.Count(src[:i], []byte{'\n'})
	start := bytes.LastIndexByte(src[:i], '\n') + 1
	return hcl.Pos{Line: line, Column: 1 + utf8.RuneCount(src[start:i]), Byte: i}
}
