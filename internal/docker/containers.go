package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
)

// Every error below is the official client's, wrapped once with the
// operation: cerrdefs.IsNotFound (no such container or image) and
// cerrdefs.IsConflict (a container that is not running) see through it.

// ImageInspect returns the daemon's image ref ("name:tag", "name@sha256:…"
// or an ID); an error that cerrdefs.IsNotFound when it has none.
func (c *Client) ImageInspect(ctx context.Context, ref string) (image.InspectResponse, error) {
	res, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return res.InspectResponse, fmt.Errorf("docker: inspect image %s: %w", ref, err)
	}
	return res.InspectResponse, nil
}

// ImagePull pulls ref from its registry, anonymously, and waits for the
// pull to end: a ref without tag or digest means its "latest" tag, as
// with `docker pull`. A failure the daemon reports inside the progress
// stream is an error too.
func (c *Client) ImagePull(ctx context.Context, ref string) error {
	resp, err := c.api.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err == nil {
		err = resp.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("docker: pull %s: %w", ref, err)
	}
	return nil
}

// ContainerCreate creates (does not start) a container named name.
func (c *Client) ContainerCreate(ctx context.Context, name string, cfg *container.Config, host *container.HostConfig) (client.ContainerCreateResult, error) {
	res, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: host})
	if err != nil {
		return res, fmt.Errorf("docker: create container %s: %w", name, err)
	}
	return res, nil
}

// ContainerStart starts a created container; starting a running one is
// not an error.
func (c *Client) ContainerStart(ctx context.Context, id string) error {
	if _, err := c.api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("docker: start container %s: %w", id, err)
	}
	return nil
}

// ContainerWait waits until the container is not running and returns its
// exit code, at once for one that has exited. Ending ctx ends the wait
// with its error.
func (c *Client) ContainerWait(ctx context.Context, id string) (int, error) {
	res := c.api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	// Not ctx.Done: ending ctx aborts the request, which the client
	// reports on Error; a result it decoded meanwhile would be left
	// unsent on Result, its goroutine blocked for good.
	select {
	case r := <-res.Result:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("docker: wait for container %s: %s", id, r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-res.Error:
		return -1, fmt.Errorf("docker: wait for container %s: %w", id, err)
	}
}

// ContainerInspect returns a container by ID or name.
func (c *Client) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	res, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return res.Container, fmt.Errorf("docker: inspect container %s: %w", id, err)
	}
	return res.Container, nil
}

// ContainerStop sends the container its stop signal (SIGTERM unless its
// image says otherwise) and kills it after timeout, rounded up to whole
// seconds (the API's unit). The call returns once the container is
// stopped; stopping a stopped container is not an error.
func (c *Client) ContainerStop(ctx context.Context, id string, timeout time.Duration) error {
	secs := int((timeout + time.Second - 1) / time.Second)
	if _, err := c.api.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("docker: stop container %s: %w", id, err)
	}
	return nil
}

// ContainerKill sends signal ("SIGHUP", "HUP" or a number) to the
// container's main process. One that is not running is a conflict
// (cerrdefs.IsConflict).
func (c *Client) ContainerKill(ctx context.Context, id, signal string) error {
	if _, err := c.api.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: signal}); err != nil {
		return fmt.Errorf("docker: signal %s to container %s: %w", signal, id, err)
	}
	return nil
}

// ContainerStats takes one sample of a running container's resource use,
// with the previous one filled in (PreCPUStats) so that CPUPercent has an
// interval: the daemon takes two readings a second apart.
func (c *Client) ContainerStats(ctx context.Context, id string) (*container.StatsResponse, error) {
	res, err := c.api.ContainerStats(ctx, id, client.ContainerStatsOptions{IncludePreviousSample: true})
	if err != nil {
		return nil, fmt.Errorf("docker: stats of container %s: %w", id, err)
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("docker: stats of container %s: %w", id, err)
	}
	return &s, nil
}

// MemoryInUse is the memory a sample says the container uses, page cache
// excluded, as `docker stats` shows it: usage less the cache (cgroup v1)
// or the inactive file pages (cgroup v2).
func MemoryInUse(s *container.StatsResponse) uint64 {
	m := s.MemoryStats
	cache, ok := m.Stats["cache"] // cgroup v1
	if !ok {
		cache = m.Stats["inactive_file"]
	}
	if cache > m.Usage {
		return 0
	}
	return m.Usage - cache
}

// CPUPercent is the CPU the container used between a sample's previous
// reading and its own, 100 per CPU, as `docker stats` shows it.
func CPUPercent(s *container.StatsResponse) float64 {
	cpu := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sys := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	if cpu <= 0 || sys <= 0 {
		return 0
	}
	return cpu / sys * float64(max(s.CPUStats.OnlineCPUs, 1)) * 100
}

// ContainerRemove removes a container and its anonymous volumes; force
// kills it first if it runs.
func (c *Client) ContainerRemove(ctx context.Context, id string, force bool) error {
	if _, err := c.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: force, RemoveVolumes: true}); err != nil {
		return fmt.Errorf("docker: remove container %s: %w", id, err)
	}
	return nil
}

// Container is one entry of the daemon's container list.
type Container = container.Summary

// ContainerList lists containers, stopped ones too, that carry every one
// of labels ("key" or "key=value").
func (c *Client) ContainerList(ctx context.Context, labels ...string) ([]Container, error) {
	opts := client.ContainerListOptions{All: true}
	if len(labels) > 0 {
		opts.Filters = make(client.Filters).Add("label", labels...)
	}
	res, err := c.api.ContainerList(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("docker: list containers %v: %w", labels, err)
	}
	return res.Items, nil
}

// ContainerLogs follows the container's stdout and stderr from since (a
// zero since: from its start) and copies them to stdout and stderr until
// the container stops (then it returns nil), ctx ends, or a write fails.
// The daemon's timestamps have nanoseconds, so a follower that lost its
// stream can take it up again without writing a line twice. The container
// must not have a TTY: the stream is the API's multiplexed one, split by
// the official stdcopy.
func (c *Client) ContainerLogs(ctx context.Context, id string, since time.Time, stdout, stderr io.Writer) error {
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true}
	if !since.IsZero() {
		opts.Since = since.UTC().Format(time.RFC3339Nano)
	}
	rc, err := c.api.ContainerLogs(ctx, id, opts)
	if err != nil {
		return fmt.Errorf("docker: logs of container %s: %w", id, err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil {
		return fmt.Errorf("docker: logs of container %s: %w", id, err)
	}
	return nil
}
