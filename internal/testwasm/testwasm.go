package testwasm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

type build struct {
	once sync.Once
	b    []byte
	err  error
}

var builds sync.Map // package path -> *build

// GoTool is the go command of the toolchain running the tests.
func GoTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Build returns the module bytes of the Go package pkg (an import path,
// or a directory with dir as the working directory when dir != "").
func Build(dir, pkg string) ([]byte, error) {
	v, _ := builds.LoadOrStore(dir+"\x00"+pkg, &build{})
	b := v.(*build)
	b.once.Do(func() {
		f, err := os.CreateTemp("", "strata-testwasm-*.wasm")
		if err != nil {
			b.err = err
			return
		}
		out := f.Name()
		f.Close()
		defer os.Remove(out)
		cmd := exec.Command(GoTool(), "build", "-o", out, pkg)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("GOOS=wasip1 GOARCH=wasm go build %s: %v\n%s", pkg, err, msg)
			return
		}
		b.b, b.err = os.ReadFile(out)
	})
	return b.b, b.err
}
