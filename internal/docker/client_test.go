package docker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/strata-run/strata/internal/docker"
	"github.com/strata-run/strata/internal/testdocker"
	"github.com/strata-run/strata/internal/testutil"
)

// These tests run against the machine's Docker daemon (DOCKER_HOST or
// /var/run/docker.sock) and the test image testdocker builds; they fail,
// not skip, without one.

// testLabel marks this package's containers, so cleanup and assertions
// never touch another test binary's.
const testLabel = "strata.test.pkg=internal/docker"

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// create creates a container of the test image, removed at cleanup even
// when the test fails.
func create(t *testing.T, c *docker.Client, image string, cfg container.Config, host container.HostConfig) string {
	t.Helper()
	cfg.Image = image
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	k, v, _ := strings.Cut(testLabel, "=")
	cfg.Labels[k] = v
	host.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
	name := "strata-test-" + strings.ToLower(strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	created, err := c.ContainerCreate(ctxT(t, 30*time.Second), name, &cfg, &host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.ContainerRemove(ctx, created.ID, true); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return created.ID
}

// Against the daemon here the client settles on the daemon's highest
// version (Docker 20.10: 1.41), below the official client's own.
func TestNegotiate(t *testing.T) {
	c, _ := testdocker.Hello(t)
	v, err := c.Negotiate(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := v.APIVersion
	if versions.GreaterThan(want, client.MaxAPIVersion) {
		want = client.MaxAPIVersion
	}
	if v.Version == "" || v.Os != "linux" || v.Negotiated != want || c.APIVersion() != want {
		t.Fatalf("version %+v, client at %s: want %s negotiated", v, c.APIVersion(), want)
	}
	t.Logf("Engine %s (API %s–%s): negotiated %s", v.Version, v.MinAPIVersion, v.APIVersion, v.Negotiated)
}

// A version the daemon does not speak, pinned with DOCKER_API_VERSION
// (which turns negotiation off), is refused at Negotiate in the daemon's
// words.
func TestNegotiatePinnedTooNew(t *testing.T) {
	testdocker.Hello(t)
	t.Setenv("DOCKER_API_VERSION", client.MaxAPIVersion)
	c, err := docker.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Negotiate(ctxT(t, 10*time.Second))
	switch {
	case err != nil && !strings.Contains(err.Error(), "client version "+client.MaxAPIVersion+" is too new"):
		t.Fatalf("Negotiate pinned to %s: %v, want the daemon's refusal", client.MaxAPIVersion, err)
	case err == nil && versions.LessThan(v.APIVersion, client.MaxAPIVersion):
		t.Fatalf("Negotiate pinned to %s = %+v: accepted by a daemon that speaks %s at most", client.MaxAPIVersion, v, v.APIVersion)
	}
}

func TestUnreachableDaemon(t *testing.T) {
	sock := t.TempDir() + "/docker.sock"
	c, err := docker.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Negotiate(ctxT(t, 5*time.Second))
	if err == nil || !strings.Contains(err.Error(), "docker: ping unix://"+sock) || !client.IsErrConnectionFailed(err) {
		t.Fatalf("Negotiate = %v, want a connection failure naming the socket", err)
	}
}

func TestNewHost(t *testing.T) {
	for _, tc := range []struct {
		host, env, want, err string
	}{
		{host: "unix:///run/d.sock", want: "unix:///run/d.sock"},
		{host: "tcp://10.0.0.1:2375", want: "tcp://10.0.0.1:2375"},
		{env: "unix:///from/env.sock", want: "unix:///from/env.sock"},
		{want: client.DefaultDockerHost},
		{host: "ssh://me@host", err: "only unix:// and tcp://"},
		{host: "npipe:////./pipe/docker_engine", err: "protocol not available"},
		{host: "unix://", err: "unable to parse docker host"},
		{host: "tcp://", err: "unable to parse docker host"},
	} {
		t.Run(tc.host+tc.env, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tc.env)
			c, err := docker.New(tc.host)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("New(%q) = %v, want error %q", tc.host, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Host() != tc.want {
				t.Fatalf("host %q, want %q", c.Host(), tc.want)
			}
		})
	}
}

// A container that exits: its code, its two streams, its state, and
// removal.
func TestContainerExit(t *testing.T) {
	c, image := testdocker.Hello(t)
	ctx := ctxT(t, time.Minute)
	id := create(t, c, image, container.Config{Cmd: []string{"exit", "3"}, Labels: map[string]string{"strata.task": "x"}}, container.HostConfig{})
	if err := c.ContainerStart(ctx, id); err != nil {
		t.Fatal(err)
	}
	code, err := c.ContainerWait(ctx, id)
	if err != nil || code != 3 {
		t.Fatalf("wait = %d, %v; want 3", code, err)
	}
	var stdout, stderr bytes.Buffer
	if err := c.ContainerLogs(ctx, id, time.Time{}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "hello: exiting with code 3\n" || stderr.String() != "hello: stderr before exit 3\n" {
		t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	info, err := c.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Status != "exited" || info.State.ExitCode != 3 || info.State.OOMKilled || info.Config.Labels["strata.task"] != "x" {
		t.Fatalf("inspect: state %+v labels %v", info.State, info.Config.Labels)
	}
	list, err := c.ContainerList(ctx, testLabel, "strata.task=x")
	if err != nil || !containsID(list, id) {
		t.Fatalf("list = %v, %v; want it to hold %s", list, err, id)
	}
	if err := c.ContainerRemove(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerInspect(ctx, id); !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspect after remove = %v, want not found", err)
	}
	if list, err := c.ContainerList(ctx, testLabel, "strata.task=x"); err != nil || containsID(list, id) {
		t.Fatalf("list after remove = %v, %v", list, err)
	}
	if err := c.ContainerRemove(ctx, id, true); !cerrdefs.IsNotFound(err) {
		t.Fatalf("second remove = %v, want not found", err)
	}
}

func containsID(list []docker.Container, id string) bool {
	for _, c := range list {
		if c.ID == id {
			return true
		}
	}
	return false
}

// A server: env, memory and CPU settings, a published port, logs followed
// while it runs, and a stop that lets it shut down on SIGTERM.
func TestContainerServeAndStop(t *testing.T) {
	c, image := testdocker.Hello(t)
	ctx := ctxT(t, time.Minute)
	port := freePort(t)
	p8081 := network.MustParsePort("8081/tcp")
	id := create(t, c, image, container.Config{
		Env:          []string{"PORT=8081", "GREETING=hi there"},
		ExposedPorts: network.PortSet{p8081: {}},
	}, container.HostConfig{
		Resources:    container.Resources{Memory: 32 << 20, MemorySwap: 32 << 20, CPUShares: 256},
		PortBindings: network.PortMap{p8081: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}}},
	})
	if err := c.ContainerStart(ctx, id); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr testutil.Buffer
	logsDone := make(chan error, 1)
	go func() { logsDone <- c.ContainerLogs(ctx, id, time.Time{}, &stdout, &stderr) }()

	// The program says it serves once it listens, and the daemon has
	// published the port before starting it: wait for that line as the
	// followed log delivers it, then ask once.
	testutil.Await(t, 20*time.Second, "the container says it serves", stdout.Changed, func() error {
		if out := stdout.String(); !strings.Contains(out, "hello: serving on :8081\n") {
			return fmt.Errorf("stdout so far %q", out)
		}
		return nil
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	body, err := get(url + "/x")
	if err != nil {
		t.Fatalf("GET %s/x once the container serves: %v", url, err)
	}
	if body != "hello from /x\n" {
		t.Fatalf("body %q", body)
	}
	env, err := get(url + "/env")
	if err != nil || !strings.Contains("\n"+env, "\nGREETING=hi there\n") {
		t.Fatalf("env %q, %v", env, err)
	}
	info, err := c.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if h := info.HostConfig; !info.State.Running || h.Memory != 32<<20 || h.MemorySwap != 32<<20 || h.CPUShares != 256 {
		t.Fatalf("inspect: state %+v host config %+v", info.State, h)
	}

	start := time.Now()
	if err := c.ContainerStop(ctx, id, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("stop took %s: SIGTERM should have ended it", d)
	}
	if err := <-logsDone; err != nil {
		t.Fatalf("logs: %v", err)
	}
	if code, err := c.ContainerWait(ctx, id); err != nil || code != 0 {
		t.Fatalf("wait after stop = %d, %v; want 0", code, err)
	}
	if out := stdout.String(); !strings.Contains(out, "hello: serving on :8081\n") || !strings.Contains(out, "hello: stopping on SIGTERM\n") {
		t.Fatalf("stdout %q", out)
	}
	if !strings.Contains(stderr.String(), "hello: GET /x\n") {
		t.Fatalf("stderr %q", stderr.String())
	}
	if err := c.ContainerStop(ctx, id, time.Second); err != nil {
		t.Fatalf("stopping a stopped container: %v", err)
	}
}

// A container that outgrows its memory limit is killed, and says so.
func TestContainerMemoryLimit(t *testing.T) {
	c, image := testdocker.Hello(t)
	ctx := ctxT(t, time.Minute)
	id := create(t, c, image, container.Config{Cmd: []string{"eat", "128"}},
		container.HostConfig{Resources: container.Resources{Memory: 16 << 20, MemorySwap: 16 << 20}})
	if err := c.ContainerStart(ctx, id); err != nil {
		t.Fatal(err)
	}
	code, err := c.ContainerWait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if code != 137 || !info.State.OOMKilled {
		t.Fatalf("exit %d, state %+v; want 137 and OOMKilled", code, info.State)
	}
}

func TestMissingImage(t *testing.T) {
	c, _ := testdocker.Hello(t)
	ctx := ctxT(t, time.Minute)
	const absent = "strata-test/absent:0"
	_, err := c.ImageInspect(ctx, absent)
	if !cerrdefs.IsNotFound(err) || !strings.Contains(err.Error(), "docker: inspect image "+absent+": ") {
		t.Fatalf("inspect = %v, want not found, naming the image", err)
	}
	_, err = c.ContainerCreate(ctx, "strata-test-absent", &container.Config{Image: absent}, nil)
	if !cerrdefs.IsNotFound(err) || !strings.Contains(err.Error(), "docker: create container strata-test-absent: ") ||
		!strings.Contains(err.Error(), "No such image: "+absent) {
		t.Fatalf("create = %v, want not found, naming the container and, in the daemon's words, the image", err)
	}
	// No registry answers here (and strata-test/ is not on Docker Hub
	// where one does): the pull fails with the daemon's reason.
	err = c.ImagePull(ctx, absent)
	if err == nil || !strings.Contains(err.Error(), "docker: pull "+absent+": ") {
		t.Fatalf("pull = %v, want the daemon's error", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func get(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}
