package docker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ContainerConfig is the body of POST /containers/create: the container's
// config with its HostConfig, the fields Strata sets.
type ContainerConfig struct {
	Image        string              `json:"Image"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	HostConfig   HostConfig          `json:"HostConfig"`
}

// HostConfig is the part of a container's config that concerns its host.
type HostConfig struct {
	Memory       int64                    `json:"Memory,omitempty"`     // bytes
	MemorySwap   int64                    `json:"MemorySwap,omitempty"` // memory + swap, bytes; = Memory: no swap
	CPUShares    int64                    `json:"CpuShares,omitempty"`  // relative weight (1024 = one default share)
	NanoCPUs     int64                    `json:"NanoCpus,omitempty"`   // hard limit, 1e9 = one CPU
	PortBindings map[string][]PortBinding `json:"PortBindings,omitempty"`
	// Binds are bind mounts, "host-path:container-path[:ro]".
	Binds         []string      `json:"Binds,omitempty"`
	RestartPolicy RestartPolicy `json:"RestartPolicy"`
}

// PortBinding publishes a container port on a host address and port.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// RestartPolicy is the daemon's own restart policy: "no", "always",
// "unless-stopped" or "on-failure".
type RestartPolicy struct {
	Name string `json:"Name"`
}

// Created is POST /containers/create's answer.
type Created struct {
	ID       string   `json:"Id"`
	Warnings []string `json:"Warnings"`
}

// ContainerCreate creates (does not start) a container named name.
func (c *Client) ContainerCreate(ctx context.Context, name string, cfg *ContainerConfig) (Created, error) {
	var out Created
	err := c.call(ctx, request{method: http.MethodPost, path: "/containers/create", query: url.Values{"name": {name}}, body: cfg}, &out)
	return out, err
}

// ContainerStart starts a created container; starting a running one is
// not an error.
func (c *Client) ContainerStart(ctx context.Context, id string) error {
	return c.call(ctx, request{method: http.MethodPost, path: "/containers/" + id + "/start"}, nil)
}

// ContainerWait waits until the container is not running and returns its
// exit code. It returns at once for a container that has exited.
func (c *Client) ContainerWait(ctx context.Context, id string) (int, error) {
	var out struct {
		StatusCode int `json:"StatusCode"`
		Error      *struct {
			Message string `json:"Message"`
		} `json:"Error"`
	}
	r := request{method: http.MethodPost, path: "/containers/" + id + "/wait", query: url.Values{"condition": {"not-running"}}}
	if err := c.call(ctx, r, &out); err != nil {
		return -1, err
	}
	if out.Error != nil && out.Error.Message != "" {
		return out.StatusCode, &Error{Method: r.method, Path: r.path, StatusCode: http.StatusOK, Message: out.Error.Message}
	}
	return out.StatusCode, nil
}

// ContainerState is a container's State in GET /containers/{id}/json.
type ContainerState struct {
	Status    string `json:"Status"` // created, running, exited, …
	Running   bool   `json:"Running"`
	ExitCode  int    `json:"ExitCode"`
	OOMKilled bool   `json:"OOMKilled"`
	Error     string `json:"Error"`
}

// ContainerInfo is GET /containers/{id}/json, in part.
type ContainerInfo struct {
	ID     string         `json:"Id"`
	Name   string         `json:"Name"`
	State  ContainerState `json:"State"`
	Config struct {
		Image  string            `json:"Image"`
		Env    []string          `json:"Env"`
		Cmd    []string          `json:"Cmd"`
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
	HostConfig HostConfig `json:"HostConfig"`
}

// ContainerInspect returns a container by ID or name.
func (c *Client) ContainerInspect(ctx context.Context, id string) (*ContainerInfo, error) {
	var out ContainerInfo
	if err := c.call(ctx, request{method: http.MethodGet, path: "/containers/" + id + "/json"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ContainerStop sends the container's stop signal (SIGTERM unless its
// image says otherwise) and kills it after timeout, rounded up to whole
// seconds (the API's unit). The call returns once the container is
// stopped; stopping a stopped container is not an error.
func (c *Client) ContainerStop(ctx context.Context, id string, timeout time.Duration) error {
	secs := int((timeout + time.Second - 1) / time.Second)
	return c.call(ctx, request{method: http.MethodPost, path: "/containers/" + id + "/stop", query: url.Values{"t": {strconv.Itoa(secs)}}}, nil)
}

// ContainerKill sends signal ("SIGHUP", "HUP" or a number) to the
// container's main process. A container that is not running is an
// *Error (HTTP 409).
func (c *Client) ContainerKill(ctx context.Context, id, signal string) error {
	return c.call(ctx, request{method: http.MethodPost, path: "/containers/" + id + "/kill", query: url.Values{"signal": {signal}}}, nil)
}

// Stats is one sample of GET /containers/{id}/stats, in part.
type Stats struct {
	Read        time.Time   `json:"read"`
	CPUStats    CPUStats    `json:"cpu_stats"`
	PreCPUStats CPUStats    `json:"precpu_stats"` // the previous sample's
	MemoryStats MemoryStats `json:"memory_stats"`
}

// CPUStats are a container's CPU counters, in nanoseconds.
type CPUStats struct {
	CPUUsage struct {
		TotalUsage uint64 `json:"total_usage"`
	} `json:"cpu_usage"`
	SystemUsage uint64 `json:"system_cpu_usage"`
	OnlineCPUs  uint32 `json:"online_cpus"`
}

// MemoryStats are a container's cgroup memory figures, in bytes.
type MemoryStats struct {
	Usage uint64            `json:"usage"`
	Limit uint64            `json:"limit"`
	Stats map[string]uint64 `json:"stats"`
}

// MemoryInUse is the memory the container uses, page cache excluded, as
// `docker stats` shows it: usage less the cache (cgroup v1) or the
// inactive file pages (cgroup v2).
func (s *Stats) MemoryInUse() uint64 {
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

// CPUPercent is the CPU the container used between the previous sample
// and this one, 100 per CPU, as `docker stats` shows it.
func (s *Stats) CPUPercent() float64 {
	cpu := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sys := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	if cpu <= 0 || sys <= 0 {
		return 0
	}
	return cpu / sys * float64(max(s.CPUStats.OnlineCPUs, 1)) * 100
}

// ContainerStats takes one sample of a running container's resource use
// (stream=0): the daemon waits for a second reading so that PreCPUStats
// is filled, which takes about a second.
func (c *Client) ContainerStats(ctx context.Context, id string) (*Stats, error) {
	var out Stats
	if err := c.call(ctx, request{method: http.MethodGet, path: "/containers/" + id + "/stats", query: url.Values{"stream": {"0"}}}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ContainerRemove removes a container and its anonymous volumes; force
// kills it first if it runs.
func (c *Client) ContainerRemove(ctx context.Context, id string, force bool) error {
	q := url.Values{"v": {"1"}}
	if force {
		q.Set("force", "1")
	}
	return c.call(ctx, request{method: http.MethodDelete, path: "/containers/" + id, query: q}, nil)
}

// Container is one entry of GET /containers/json.
type Container struct {
	ID     string            `json:"Id"`
	Names  []string          `json:"Names"`
	Image  string            `json:"Image"`
	State  string            `json:"State"`
	Labels map[string]string `json:"Labels"`
}

// ContainerList lists containers, stopped ones too, that carry every one
// of labels ("key" or "key=value").
func (c *Client) ContainerList(ctx context.Context, labels ...string) ([]Container, error) {
	q := url.Values{"all": {"1"}}
	if len(labels) > 0 {
		f, _ := json.Marshal(map[string][]string{"label": labels})
		q.Set("filters", string(f))
	}
	var out []Container
	err := c.call(ctx, request{method: http.MethodGet, path: "/containers/json", query: q}, &out)
	return out, err
}

// ContainerLogs follows the container's stdout and stderr from its start
// and copies them to stdout and stderr until the container stops (then it
// returns nil), ctx ends, or a write fails. The container must not have a
// TTY: the stream is the API's multiplexed one.
func (c *Client) ContainerLogs(ctx context.Context, id string, stdout, stderr io.Writer) error {
	return c.ContainerLogsSince(ctx, id, time.Time{}, stdout, stderr)
}

// ContainerLogsSince is ContainerLogs from since on: only what the daemon
// captured after that instant (its timestamps have nanoseconds), so a
// follower that lost its stream can take it up again without writing a
// line twice. A zero since is the container's start.
func (c *Client) ContainerLogsSince(ctx context.Context, id string, since time.Time, stdout, stderr io.Writer) error {
	q := url.Values{"follow": {"1"}, "stdout": {"1"}, "stderr": {"1"}}
	if !since.IsZero() {
		q.Set("since", fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()))
	}
	r := request{method: http.MethodGet, path: "/containers/" + id + "/logs", query: q}
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := demux(resp.Body, stdout, stderr); err != nil {
		return fmt.Errorf("docker: %s %s: %w", r.method, r.path, err)
	}
	return nil
}

// demux splits the API's multiplexed stream: frames of an 8-byte header
// (stream: 1 stdout, 2 stderr, 3 an error of the daemon; 3 bytes zero; a
// big-endian uint32 length) and the payload.
func demux(src io.Reader, stdout, stderr io.Writer) error {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		var w io.Writer
		switch hdr[0] {
		case 0, 1:
			w = stdout
		case 2:
			w = stderr
		case 3:
			msg, _ := io.ReadAll(io.LimitReader(src, min(n, 64<<10)))
			return fmt.Errorf("daemon: %s", msg)
		default:
			return fmt.Errorf("unknown stream %d in the log stream", hdr[0])
		}
		if _, err := io.CopyN(w, src, n); err != nil {
			return err
		}
	}
}
