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
// import directly. A package not listed may import anything, except that
// every package under internal/ may import only other internal/ packages
// (TestInternalImportsNoRole).
var allowed = map[string][]string{
	"spec":                {},
	"sched":               {"spec"},
	"wasmhost":            {},
	"registry":            {},
	"registry/consul":     {"registry"},
	"internal/wire":       {},
	"edge":                {"spec", "registry", "wasmhost", "internal/wire", "internal/fsutil", "internal/boltcheck", "internal/docker"},
	"internal/docker":     {},
	"coordinator/structs": {"spec", "sched", "registry", "internal/wire"},
	"coordinator/api":     {"spec", "registry", "coordinator/structs", "internal/wire"},
	"coordinator/state":   {"spec", "sched", "registry", "internal/boltcheck", "coordinator/structs", "coordinator/deploy"},
	"coordinator/deploy":  {"coordinator/structs"},
	"coordinator/acl":     {"spec"},
	"coordinator/ui":      {},
	"coordinator":         {"spec", "sched", "registry", "registry/consul", "wasmhost", "internal/wire", "internal/fsutil", "internal/boltcheck", "coordinator/structs", "coordinator/state", "coordinator/acl", "coordinator/deploy", "coordinator/ui"},
}

// neverLinked lists, for a package, third-party packages that must not
// be among its transitive dependencies: the API client and the records
// it carries must not link the server's machinery, and the state machine
// is applied and tested without Raft or the network.
var neverLinked = map[string][]string{
	"coordinator/structs": {"github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/quic-go/quic-go", "net/http"},
	"coordinator/api":     {"github.com/hashicorp/raft", "go.etcd.io/bbolt", "github.com/quic-go/quic-go", "github.com/tetratelabs/wazero"},
	"coordinator/state":   {"github.com/hashicorp/raft", "net/http", "github.com/quic-go/quic-go"},
	"coordinator/acl":     {"github.com/hashicorp/raft", "go.etcd.io/bbolt", "net/http", "github.com/quic-go/quic-go"},
	"coordinator/deploy":  {"github.com/hashicorp/raft", "go.etcd.io/bbolt", "net/http", "github.com/quic-go/quic-go"},
}

// goList runs `go list` over the module with the given template.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// imports returns each package of the module with its direct imports of
// the module's own packages (relative paths).
func imports(t *testing.T) map[string][]string {
	m := map[string][]string{}
	for _, line := range goList(t, "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", module+"...") {
		pkg, imps, _ := strings.Cut(line, ":")
		rel := strings.TrimPrefix(pkg, module)
		m[rel] = nil
		for _, imp := range strings.Fields(imps) {
			if dep, ok := strings.CutPrefix(imp, module); ok {
				m[rel] = append(m[rel], dep)
			}
		}
	}
	return m
}

func TestImportDirection(t *testing.T) {
	seen := 0
	for pkg, deps := range imports(t) {
		ok, constrained := allowed[pkg]
		if !constrained {
			continue
		}
		seen++
		for _, dep := range deps {
			if !contains(ok, dep) {
				t.Errorf("%s imports %s; allowed: %v", pkg, dep, ok)
			}
		}
	}
	if seen != len(allowed) {
		t.Fatalf("checked %d constrained packages, want %d: is a package missing?", seen, len(allowed))
	}
}

// internal/ is plumbing under the house: it imports no role package
// (spec, sched, coordinator, edge, wasmhost, registry, cmd).
func TestInternalImportsNoRole(t *testing.T) {
	n := 0
	for pkg, deps := range imports(t) {
		if !strings.HasPrefix(pkg, "internal/") {
			continue
		}
		n++
		for _, dep := range deps {
			if !strings.HasPrefix(dep, "internal/") {
				t.Errorf("%s imports the role package %s; internal/ is plumbing only", pkg, dep)
			}
		}
	}
	if n == 0 {
		t.Fatal("no package under internal/ was listed")
	}
}

func TestClientLinksNoServer(t *testing.T) {
	for pkg, banned := range neverLinked {
		deps := goList(t, "-deps", module+pkg)
		for _, d := range deps {
			for _, b := range banned {
				if d == b || strings.HasPrefix(d, b+"/") {
					t.Errorf("%s links %s", pkg, d)
				}
			}
		}
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
