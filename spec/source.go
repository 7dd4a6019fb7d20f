package spec

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// CheckSource applies the guard Parse applies to a job file to another
// HCL file of Strata's (an ACL policy): it refuses src when it is larger
// than max bytes (what names the kind of file in the message) or nested
// deeper than hclsyntax's parser can take without exhausting its stack.
// It returns nil or Diagnostics with one problem and its range.
func CheckSource(filename string, src []byte, max int, what string) error {
	if len(src) > max {
		start := hcl.Pos{Line: 1, Column: 1}
		return Diagnostics{{
			Summary: "File too large",
			Detail:  fmt.Sprintf("%s may be at most %d bytes; this one is %d", what, max, len(src)),
			Range:   &hcl.Range{Filename: filename, Start: start, End: start},
		}}
	}
	if hds := checkNesting(filename, src); hds.HasErrors() {
		return fromHCL(hds)
	}
	return nil
}
