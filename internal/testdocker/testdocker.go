// Package testdocker gives tests a Docker image without a registry: it
// builds the static Go program in hello/ (CGO_ENABLED=0) with the go
// command running the tests, packs it with a FROM scratch Dockerfile into
// a tar build context and builds that through the Engine API, tagged
// HelloImage. The image carries a label with the hash of the program's
// source and of the toolchain, so it is rebuilt when either changes and
// otherwise reused: the second call costs one image inspect.
//
// Tests that need it call Hello, which fails the test (it does not skip)
// when no daemon answers: the tests of the docker driver must run in CI.
package testdocker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/docker"
	"github.com/strata-run/strata/internal/testwasm"
)

// HelloImage is the tag of the test image.
const HelloImage = "strata-test/hello:1"

// sourceLabel holds the hash the image was built from.
const sourceLabel = "strata.test.source"

//go:embed hello/main.go
var helloSource []byte

const dockerfile = `FROM scratch
COPY hello /hello
ENTRYPOINT ["/hello"]
`

var (
	once    sync.Once
	onceErr error
)

// Hello returns a client of the local daemon and HelloImage, building the
// image first if it is missing or stale (once per test binary).
func Hello(t testing.TB) (*docker.Client, string) {
	t.Helper()
	c, err := docker.New("")
	if err != nil {
		t.Fatal(err)
	}
	once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		onceErr = ensure(ctx, c)
	})
	if onceErr != nil {
		t.Fatalf("test image %s: %v", HelloImage, onceErr)
	}
	return c, HelloImage
}

// ensure builds HelloImage unless the daemon has it from the same source.
func ensure(ctx context.Context, c *docker.Client) error {
	if err := c.Ping(ctx); err != nil {
		return fmt.Errorf("no Docker daemon (the docker tests need one): %w", err)
	}
	if _, err := c.Negotiate(ctx); err != nil {
		return err
	}
	sum := sha256.Sum256(append([]byte(runtime.Version()+"\x00"+runtime.GOARCH+"\x00"), helloSource...))
	hash := hex.EncodeToString(sum[:8])
	if img, err := c.ImageInspect(ctx, HelloImage); err == nil && img.Config.Labels[sourceLabel] == hash {
		return nil
	} else if err != nil && !docker.IsNotFound(err) {
		return err
	}
	bin, err := buildHello(ctx)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"hello", 0o755, bin}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	_, err = c.ImageBuild(ctx, &buf, HelloImage, map[string]string{sourceLabel: hash})
	return err
}

// buildHello compiles hello/ as a static linux binary.
func buildHello(ctx context.Context) ([]byte, error) {
	dir, err := os.MkdirTemp("", "strata-testdocker-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "hello")
	cmd := exec.CommandContext(ctx, testwasm.GoTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/strata-run/strata/internal/testdocker/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("CGO_ENABLED=0 go build hello: %v\n%s", err, msg)
	}
	return os.ReadFile(out)
}
