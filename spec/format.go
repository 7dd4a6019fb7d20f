package spec

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// FormatSource returns a job file (or a variable file) in canonical HCL
// layout: hclwrite's, as `terraform fmt` writes it (two-space indents,
// aligned "=", normalized spacing). It changes only layout, never meaning,
// and FormatSource(FormatSource(src)) == FormatSource(src).
//
// A file that is not syntactically HCL is refused with Diagnostics, since
// its layout cannot be fixed without guessing; a file that parses but is
// not a valid job is formatted (run Parse to check it).
func FormatSource(filename string, src []byte) ([]byte, error) {
	if err := checkInput(filename, src); err != nil {
		return nil, err
	}
	if _, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); diags.HasErrors() {
		return nil, sorted(fromHCL(diags))
	}
	return hclwrite.Format(src), nil
}
