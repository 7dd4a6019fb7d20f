package archtest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/strata-run/strata/"

// allowed lists, for each package, the packages of this module it may
// import directly. A package not listed may import anything.
var allowed = map[string][]string{
	"spec":            {},
	"sched":           {"spec"},
	"wasmhost":        {},
	"registry":        {},
	"internal/wire":   {"spec"},
	"edge":            {"spec", "wasmhost", "internal/wire", "internal/fsutil", "internal/boltcheck", "internal/docker"},
	"internal/docker": {},
	"coordinator":     {"spec", "sched", "registry", "wasmhost", "internal/wire", "internal/fsutil", "internal/boltcheck"},
}

func TestImportDirection(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", module+"...")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		rel := strings.TrimPrefix(pkg, module)
		ok, constrained := allowed[rel]
		if !constrained {
			continue
		}
		seen++
		for _, imp := range strings.Fields(imports) {
			dep, internal := strings.CutPrefix(imp, module)
			if !internal {
				continue
			}
			if !contains(ok, dep) {
				t.Errorf("%s imports %s; allowed: %v", rel, dep, ok)
			}
		}
	}
	if seen != len(allowed) {
		t.Fatalf("checked %d constrained packages, want %d: is a package missing?", seen, len(allowed))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
