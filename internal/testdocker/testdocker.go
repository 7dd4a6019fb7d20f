// Package testdocker gives tests a Docker image without a registry: it
// builds the static Go program in hello/ (CGO_ENABLED=0) with the go
// command running the tests, packs it with a FROM scratch Dockerfile into
// a tar build context and builds that through the Engine API (the
// official client's ImageBuild, its output read by the official
// jsonmessage), tagged HelloImage. The image carries a label with the hash of the program's
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
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/jsonmessage"

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
	once     sync.Once
	shared   *docker.Client
	sharedOK error
)

// Hello returns a client of the local daemon, negotiated, and HelloImage,
// building the image first if it is missing or stale. The client and the
// image are made once per test binary; the client is shared by every
// caller (it is safe for concurrent use) and lives as long as the binary.
func Hello(t testing.TB) (*docker.Client, string) {
	t.Helper()
	once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared, sharedOK = docker.New("")
		if sharedOK == nil {
			sharedOK = ensure(ctx, shared)
		}
	})
	if sharedOK != nil {
		t.Fatalf("test image %s: %v", HelloImage, sharedOK)
	}
	return shared, HelloImage
}

// ensure builds HelloImage unless the daemon has it from the same source.
func ensure(ctx context.Context, c *docker.Client) error {
	if _, err := c.Negotiate(ctx); err != nil {
		return fmt.Errorf("no usable Docker daemon (the docker tests need one): %w", err)
	}
	sum := sha256.Sum256(append([]byte(runtime.Version()+"\x00"+runtime.GOARCH+"\x00"), helloSource...))
	hash := hex.EncodeToString(sum[:8])
	if img, err := c.ImageInspect(ctx, HelloImage); err == nil && img.Config != nil && img.Config.Labels[sourceLabel] == hash {
		return nil
	} else if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	bin, err := buildHello(ctx)
	if err != nil {
		return err
	}
	buildContext, err := tarContext(file{"Dockerfile", 0o644, []byte(dockerfile)}, file{"hello", 0o755, bin})
	if err != nil {
		return err
	}
	_, err = buildImage(ctx, c.API(), buildContext, HelloImage, map[string]string{sourceLabel: hash})
	return err
}

// file is one file of a build context.
type file struct {
	name string
	mode int64
	data []byte
}

// tarContext packs files into a tar build context.
func tarContext(files ...file) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// buildImage builds the image of a tar build context (a Dockerfile at its
// root) with the daemon's classic builder (it needs no BuildKit session:
// FROM scratch and COPY are all the Dockerfile does), tagged tag, each
// label set on the image, and returns its ID. A build that fails says why
// with its output.
func buildImage(ctx context.Context, api *client.Client, buildContext io.Reader, tag string, labels map[string]string) (string, error) {
	res, err := api.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags: []string{tag}, Labels: labels, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	defer res.Body.Close()
	var out bytes.Buffer
	var id string
	err = jsonmessage.DisplayJSONMessagesStream(res.Body, &out, 0, false, func(m jsonstream.Message) {
		var aux struct{ ID string }
		if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
			id = aux.ID
		}
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", tag, err, out.Bytes())
	}
	if id == "" {
		return "", fmt.Errorf("build %s: the daemon reported no image ID\n%s", tag, out.Bytes())
	}
	return id, nil
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
