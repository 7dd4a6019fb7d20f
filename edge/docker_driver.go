package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/strata-run/strata/internal/docker"
)

// The docker driver: one attempt of a task is one container, run through
// the official Engine client (internal/docker adapts it) at the API
// version negotiated with the daemon when the agent started.
//
//   - The image must be on the node: an absent one is pulled once, and if
//     that fails (no registry reachable) the attempt fails naming the image.
//   - The container is created as strata-<task>-<alloc ID>, labelled with
//     the allocation, job, group, task and node and with a hash of its
//     whole configuration, with the task's resolved env and the runtime
//     variables, Cmd = [command] + args (the image's entrypoint is kept;
//     neither set keeps the image's Cmd too), memory limited to
//     resources.memory MB without swap, resources.cpu MHz as CPU shares
//     (see docs/RATIONALE.md), and the daemon's restart policy "no":
//     restarts are Strata's, applied by the runner.
//   - The task's ports are published on the agent's BindAddr: its own ports
//     and those config.ports names, host port = the allocation's port,
//     container port = the port's `to` if set, else the same number.
//   - Its stdout and stderr are followed into the task's log files.
//   - Exit 0 completes the task; any other exit is an error carrying the
//     exit code (and whether the kernel killed it for memory) to the
//     restart policy. Stopping it gives it its stop signal, then SIGKILL
//     after kill_timeout. Either way it is removed when the attempt is over.
//   - Signals go to the container's main process through the Engine API
//     (POST /containers/{id}/kill?signal=…); stats are the container's
//     cgroup memory (page cache excluded) and CPU, as `docker stats` shows.
//   - Recovery: the containers of this node that an allocation the agent
//     restored from local state still owns are left running at start
//     (prune removes the others). The task's runner re-attaches to its
//     container if it still runs the same configuration: its log stream is
//     taken up from when the task's log files were last written (so no
//     line is written twice), its exit is waited for and its checks run
//     again; the task is not restarted. A container that exited meanwhile,
//     or was made for another version of the task, is removed and the task
//     started again.
type dockerDriver struct {
	c        *docker.Client
	nodeID   string
	bindAddr string
	log      *slog.Logger
}

// Labels on every container the agent creates.
const (
	labelAllocID = "strata.alloc_id"
	labelJob     = "strata.job"
	labelGroup   = "strata.group"
	labelTask    = "strata.task"
	labelNode    = "strata.node_id"
	// labelConfig is a hash of the rest of the container's configuration:
	// a container is re-attached to only if it runs what the task would
	// create now.
	labelConfig = "strata.config"
)

// connectDocker returns a client of the daemon at host ("" means
// $DOCKER_HOST or the default socket), its API version negotiated, and
// the daemon's version; or why no usable daemon answers: the agent then
// does not offer docker.
func connectDocker(ctx context.Context, host string) (*docker.Client, docker.Version, error) {
	c, err := docker.New(host)
	if err != nil {
		return nil, docker.Version{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	v, err := c.Negotiate(ctx)
	if err != nil {
		c.Close()
		return nil, docker.Version{}, err
	}
	return c, v, nil
}

// prune removes the containers of this node that no restored allocation
// owns (a previous run of the agent left them: it crashed, or the daemon
// was away when a task stopped); keep says which (allocation, task) pairs
// are owned. Those are left for their runners to re-attach to.
func (d *dockerDriver) prune(ctx context.Context, keep func(allocID, task string) bool) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := d.c.ContainerList(ctx, labelNode+"="+d.nodeID)
	if err != nil {
		d.log.Warn("listing this node's containers", "err", err)
		return
	}
	for _, c := range list {
		if keep(c.Labels[labelAllocID], c.Labels[labelTask]) {
			continue
		}
		if err := d.c.ContainerRemove(ctx, c.ID, true); err != nil && !cerrdefs.IsNotFound(err) {
			d.log.Warn("removing stale container", "container", c.ID, "err", err)
			continue
		}
		d.log.Info("removed stale container", "container", shortID(c.ID), "names", c.Names, "alloc_id", c.Labels[labelAllocID], "task", c.Labels[labelTask])
	}
}

func (d *dockerDriver) start(ctx context.Context, t *taskSpec) (taskHandle, error) {
	if err := d.ensureImage(ctx, t.Task.Config.Image); err != nil {
		return nil, err
	}
	name := containerName(t.Task.Name, t.AllocID)
	// A container of this name can only be left by an earlier attempt
	// whose removal failed, or one not re-attached to: it goes, so the
	// name is free.
	if err := d.remove(name); err != nil {
		return nil, err
	}
	cfg, host, err := d.containerConfig(t).api()
	if err != nil {
		return nil, err
	}
	// Not cancelled with the runner: a create abandoned half-way could
	// still complete in the daemon after its removal was tried, and leak.
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	created, err := d.c.ContainerCreate(cctx, name, cfg, host)
	cancel()
	if err != nil {
		return nil, err
	}
	for _, w := range created.Warnings {
		d.log.Warn("docker: "+w, "task", t.Task.Name, "container", name)
	}
	cctx, cancel = context.WithTimeout(context.Background(), time.Minute) // likewise
	err = d.c.ContainerStart(cctx, created.ID)
	cancel()
	if err != nil {
		if rerr := d.remove(created.ID); rerr != nil {
			d.log.Error("removing container", "task", t.Task.Name, "container", name, "err", rerr)
		}
		return nil, err
	}
	d.log.Info("task started", "task", t.Task.Name, "driver", "docker", "image", t.Task.Config.Image, "container", shortID(created.ID))
	return d.follow(t, created.ID, name, time.Time{},
		fmt.Sprintf("Container %s started from image %s", shortID(created.ID), t.Task.Config.Image)), nil
}

func (d *dockerDriver) recover(_ context.Context, t *taskSpec) (taskHandle, error) {
	name := containerName(t.Task.Name, t.AllocID)
	// Bounded, not cancelled with the runner: the runner stops what it
	// re-attached to, and removes what it did not.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := d.c.ContainerInspect(ctx, name)
	switch {
	case cerrdefs.IsNotFound(err):
		return nil, fmt.Errorf("%w: no container %s", errNotRecovered, name)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", errNotRecovered, err)
	case info.Config == nil || info.State == nil:
		return nil, fmt.Errorf("%w: container %s: the daemon gave no config or state", errNotRecovered, name)
	}
	labels := info.Config.Labels
	switch want := d.containerConfig(t).Labels[labelConfig]; {
	case labels[labelNode] != d.nodeID || labels[labelAllocID] != t.AllocID:
		return nil, fmt.Errorf("%w: container %s belongs to node %q, allocation %q", errNotRecovered, name, labels[labelNode], labels[labelAllocID])
	case labels[labelConfig] != want:
		return nil, fmt.Errorf("%w: container %s was made for another version of the task", errNotRecovered, name)
	case !info.State.Running:
		return nil, fmt.Errorf("%w: container %s is %s (exit code %d)", errNotRecovered, name, info.State.Status, info.State.ExitCode)
	}
	d.log.Info("task re-attached", "task", t.Task.Name, "driver", "docker", "container", shortID(info.ID), "logs_since", t.LogsWritten)
	return d.follow(t, info.ID, name, t.LogsWritten,
		fmt.Sprintf("Container %s re-attached after an agent restart", shortID(info.ID))), nil
}

// ensureImage makes sure image is on the node, pulling it if it is not.
func (d *dockerDriver) ensureImage(ctx context.Context, image string) error {
	_, err := d.c.ImageInspect(ctx, image)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := d.c.ImagePull(ctx, image); err != nil {
		return fmt.Errorf("image %s is not on this node and could not be pulled: %v; load it with docker load", image, err)
	}
	return nil
}

// remove force-removes a container by ID or name; an absent one is not an
// error.
func (d *dockerDriver) remove(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.c.ContainerRemove(ctx, id, true); err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// containerSpec is the container of one attempt as the driver asks for
// it, and what its labelConfig hash is computed over. Its JSON form is
// the one the agent has hashed since it first re-attached to containers
// (TestContainerConfig holds a hash made before the move to the official
// client), so an upgraded agent still recognises the containers its
// predecessor started; it does not follow the Engine API types, whose
// encoding may change with the client library. api() gives the API's
// types.
type containerSpec struct {
	Image        string              `json:"Image"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"` // "80/tcp"
	Host         hostSpec            `json:"HostConfig"`
}

type hostSpec struct {
	Memory       int64                    `json:"Memory,omitempty"`     // bytes
	MemorySwap   int64                    `json:"MemorySwap,omitempty"` // memory + swap, bytes; = Memory: no swap
	CPUShares    int64                    `json:"CpuShares,omitempty"`
	PortBindings map[string][]portBinding `json:"PortBindings,omitempty"`
	// Binds are bind mounts, "host-path:container-path[:ro]".
	Binds         []string `json:"Binds,omitempty"`
	RestartPolicy struct {
		Name string `json:"Name"`
	} `json:"RestartPolicy"`
}

type portBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// containerConfig is the container of one attempt of t (already resolved).
func (d *dockerDriver) containerConfig(t *taskSpec) *containerSpec {
	task := &t.Task
	cfg := &containerSpec{
		Image: task.Config.Image,
		Labels: map[string]string{
			labelAllocID: t.AllocID, labelJob: t.JobID, labelGroup: t.Group,
			labelTask: task.Name, labelNode: d.nodeID,
		},
		Host: hostSpec{
			Memory:     int64(task.Resources.MemoryMB) << 20,
			MemorySwap: int64(task.Resources.MemoryMB) << 20,
			CPUShares:  cpuShares(task.Resources.CPU),
		},
	}
	cfg.Host.RestartPolicy.Name = string(container.RestartPolicyDisabled)
	for _, k := range slices.Sorted(maps.Keys(t.Env)) {
		cfg.Env = append(cfg.Env, k+"="+t.Env[k])
	}
	for _, m := range t.Mounts {
		bind := m.Source + ":" + m.Destination
		if m.ReadOnly {
			bind += ":ro"
		}
		cfg.Host.Binds = append(cfg.Host.Binds, bind)
	}
	if task.Config.Command != "" {
		cfg.Cmd = append([]string{task.Config.Command}, task.Config.Args...)
	} else if len(task.Config.Args) > 0 {
		cfg.Cmd = task.Config.Args
	}
	for _, p := range t.Ports {
		to := p.To
		if to <= 0 {
			to = p.Value
		}
		key := strconv.Itoa(to) + "/tcp"
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
			cfg.Host.PortBindings = map[string][]portBinding{}
		}
		cfg.ExposedPorts[key] = struct{}{}
		cfg.Host.PortBindings[key] = append(cfg.Host.PortBindings[key],
			portBinding{HostIP: d.bindAddr, HostPort: strconv.Itoa(p.Value)})
	}
	// JSON encodes maps in key order: the same configuration always
	// hashes the same.
	b, _ := json.Marshal(cfg)
	sum := sha256.Sum256(b)
	cfg.Labels[labelConfig] = hex.EncodeToString(sum[:12])
	return cfg
}

// api is s in the Engine API's types, as the official client sends them.
func (s *containerSpec) api() (*container.Config, *container.HostConfig, error) {
	cfg := &container.Config{Image: s.Image, Cmd: s.Cmd, Env: s.Env, Labels: s.Labels}
	host := &container.HostConfig{
		Binds:         s.Host.Binds,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(s.Host.RestartPolicy.Name)},
		Resources: container.Resources{
			Memory: s.Host.Memory, MemorySwap: s.Host.MemorySwap, CPUShares: s.Host.CPUShares,
		},
	}
	for key, binds := range s.Host.PortBindings {
		port, err := network.ParsePort(key)
		if err != nil {
			return nil, nil, fmt.Errorf("container port %s: %w", key, err)
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts, host.PortBindings = network.PortSet{}, network.PortMap{}
		}
		cfg.ExposedPorts[port] = struct{}{}
		for _, b := range binds {
			ip, err := netip.ParseAddr(b.HostIP)
			if err != nil {
				return nil, nil, fmt.Errorf("container port %s: host address: %w", key, err)
			}
			host.PortBindings[port] = append(host.PortBindings[port], network.PortBinding{HostIP: ip, HostPort: b.HostPort})
		}
	}
	return cfg, host, nil
}

// cpuShares maps resources.cpu (MHz) to CPU shares, one per MHz, as
// Nomad does; 2 is the kernel's minimum.
func cpuShares(mhz int) int64 {
	return int64(max(mhz, 2))
}

// containerName is strata-<task>-<alloc ID>, with any character Docker
// does not allow in a name replaced by '-'.
func containerName(task, allocID string) string {
	return "strata-" + strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
			return c
		}
		return '-'
	}, task+"-"+allocID)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
