package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-run/strata/internal/docker"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
	"github.com/strata-run/strata/wasmhost"
)

// The docker driver: one attempt of a task is one container.
//
//   - The image must be on the node: an absent one is pulled once, and if
//     that fails (no registry reachable) the attempt fails naming the image.
//   - The container is created as strata-<task>-<alloc ID>, labelled with
//     the allocation, job, group, task and node, with the task's resolved
//     env and the runtime variables, Cmd = [command] + args (the image's
//     entrypoint is kept; neither set keeps the image's Cmd too), memory
//     limited to resources.memory MB without swap, resources.cpu MHz as
//     CPU shares (see docs/RATIONALE.md), and the daemon's restart policy
//     "no": restarts are Strata's, applied by the runner.
//   - The task's ports are published on the agent's BindAddr: its own ports
//     and those config.ports names, host port = the allocation's port,
//     container port = the port's `to` if set, else the same number. Health
//     checks probe the host side, as for a wasm task.
//   - Its stdout and stderr are followed into the same rotated files as a
//     wasm task's (<DataDir>/allocs/<alloc>/logs/<task>.stdout, .stderr).
//   - Exit 0 completes the task; any other exit is an error carrying the
//     exit code (and whether the kernel killed it for memory) to the
//     restart policy. When the runner stops, the container is stopped
//     (its stop signal, then SIGKILL after kill_timeout). Either way it is
//     removed before the attempt returns.
//
// At start the agent removes every container labelled with its node ID
// (removeStaleContainers): none of them belongs to a runner of this
// process, and the allocations it restores start fresh containers.

// Labels on every container the agent creates.
const (
	labelAllocID = "strata.alloc_id"
	labelJob     = "strata.job"
	labelGroup   = "strata.group"
	labelTask    = "strata.task"
	labelNode    = "strata.node_id"
)

// dockerDriver is the agent's link to the Docker Engine, set when one
// answered at start.
type dockerDriver struct {
	c       *docker.Client
	version docker.Version
}

// connectDocker returns the driver of the daemon at host ("" means
// $DOCKER_HOST or the default socket), or nil when no usable daemon
// answers: the agent then does not offer docker.
func connectDocker(ctx context.Context, host string, log *slog.Logger) *dockerDriver {
	c, err := docker.New(host)
	if err != nil {
		log.Warn("docker driver disabled", "err", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		log.Info("docker driver not offered: no Docker Engine answers", "host", c.Host(), "err", err)
		return nil
	}
	v, err := c.Negotiate(ctx)
	if err != nil {
		log.Warn("docker driver not offered", "err", err)
		return nil
	}
	log.Info("docker driver available", "host", c.Host(), "engine", v.Version, "api", docker.APIVersion)
	return &dockerDriver{c: c, version: v}
}

// removeStaleContainers removes the containers of this node that a
// previous run of the agent left (it crashed, or the daemon was away when
// a task stopped). The agent has started none yet, so all of them are
// stale; see docs/RATIONALE.md for why they are not adopted.
func (a *Agent) removeStaleContainers(ctx context.Context) {
	if a.docker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := a.docker.c.ContainerList(ctx, labelNode+"="+a.nodeID)
	if err != nil {
		a.log.Warn("listing stale containers", "err", err)
		return
	}
	for _, c := range list {
		if err := a.docker.c.ContainerRemove(ctx, c.ID, true); err != nil && !docker.IsNotFound(err) {
			a.log.Warn("removing stale container", "container", c.ID, "err", err)
			continue
		}
		a.log.Info("removed stale container", "container", shortID(c.ID), "names", c.Names, "alloc_id", c.Labels[labelAllocID], "task", c.Labels[labelTask])
	}
}

// containerExitError is a container's end other than exit 0.
type containerExitError struct {
	Code      int
	OOMKilled bool
	MemoryMB  int
}

func (e *containerExitError) Error() string {
	if e.OOMKilled {
		return fmt.Sprintf("container exited with code %d: killed for exceeding its memory limit of %d MB", e.Code, e.MemoryMB)
	}
	return fmt.Sprintf("container exited with code %d", e.Code)
}

// runDockerTask runs one attempt of a docker task. It returns nil when
// the attempt was ended (the runner stopped, or a check_restart), or the
// container exited 0 and the runner then stopped; an error saying why
// otherwise.
func (r *allocRunner) runDockerTask(at attempt, t *spec.Task) error {
	d := r.a.docker
	if d == nil {
		return errors.New("driver docker is not available on this agent: no Docker Engine answered when it started")
	}
	ports := r.dockerPorts(t)
	// Runtime references may name any port of the group.
	t, err := r.resolveTask(t, r.alloc.Ports)
	if err != nil {
		return err
	}
	if err := d.ensureImage(at.ctx, t.Config.Image); err != nil {
		return err
	}
	stdout, stderr, err := r.taskLogs(t)
	if err != nil {
		return err
	}
	defer stdout.Close()
	defer stderr.Close()

	name := containerName(t.Name, r.alloc.ID)
	// A container of this name can only be left by an earlier attempt
	// whose removal failed: it goes, so the name is free.
	if err := d.remove(name); err != nil {
		return err
	}
	// Not cancelled with the runner: a create abandoned half-way could
	// still complete in the daemon after its removal was tried, and leak.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	created, err := d.c.ContainerCreate(ctx, name, r.containerConfig(t, ports))
	cancel()
	if err != nil {
		return fmt.Errorf("create container %s: %w", name, err)
	}
	for _, w := range created.Warnings {
		r.log.Warn("docker: "+w, "task", t.Name, "container", name)
	}
	defer func() {
		if err := d.remove(created.ID); err != nil {
			r.log.Error("removing container", "task", t.Name, "container", name, "err", err)
		}
	}()
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute) // likewise
	err = d.c.ContainerStart(ctx, created.ID)
	cancel()
	if err != nil {
		return fmt.Errorf("start container %s: %w", name, err)
	}
	r.log.Info("task started", "task", t.Name, "driver", "docker", "image", t.Config.Image, "container", shortID(created.ID))
	r.started(t.Name, fmt.Sprintf("Container %s started from image %s", shortID(created.ID), t.Config.Image))
	start := time.Now()
	exit, err := r.superviseContainer(at, t, created.ID, ports, stdout, stderr)
	switch {
	case at.ctx.Err() != nil:
		return nil
	case err != nil:
		return fmt.Errorf("container %s: %w", name, err)
	case exit.Code != 0 || exit.OOMKilled:
		return exit
	}
	// Removed before the task is reported complete, not after the runner
	// stops: nothing is left running or stored for a finished task.
	if err := d.remove(created.ID); err != nil {
		r.log.Error("removing container", "task", t.Name, "container", name, "err", err)
	}
	r.completeTask(t.Name, time.Since(start))
	<-r.ctx.Done() // complete: nothing to restart; wait to be stopped
	return nil
}

// superviseContainer follows a started container's logs, runs the task's
// checks and waits for the container to exit or the attempt to end (then
// it stops the container). It returns once the container is stopped and
// its logs are written; exit is nil when the attempt ended first.
func (r *allocRunner) superviseContainer(at attempt, t *spec.Task, id string, ports []wire.Port, stdout, stderr *wasmhost.LogFile) (exit *containerExitError, err error) {
	d := r.a.docker
	// The log stream ends by itself when the container stops; logCtx
	// ends it anyway if the daemon does not, so the goroutine always
	// returns before the files close.
	logCtx, stopLogs := context.WithCancel(context.Background())
	defer stopLogs()
	logsDone := make(chan error, 1)
	go func() { logsDone <- d.c.ContainerLogs(logCtx, id, stdout, stderr) }()
	defer func() {
		var err error
		select {
		case err = <-logsDone:
		case <-time.After(5 * time.Second):
			r.log.Warn("the container's log stream did not end with it", "task", t.Name, "container", shortID(id))
			stopLogs()
			<-logsDone
		}
		if err != nil {
			r.log.Warn("following the container's output", "task", t.Name, "container", shortID(id), "err", err)
		}
	}()

	checks := newTaskChecks(at, r, t, ports)
	checks.start()
	defer checks.stop()

	type waited struct {
		code int
		err  error
	}
	waitDone := make(chan waited, 1)
	go func() {
		code, err := d.c.ContainerWait(at.ctx, id)
		waitDone <- waited{code, err}
	}()
	select {
	case w := <-waitDone:
		if w.err != nil {
			return nil, w.err
		}
		exit := &containerExitError{Code: w.code, MemoryMB: t.Resources.MemoryMB}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if info, err := d.c.ContainerInspect(ctx, id); err == nil {
			exit.OOMKilled = info.State.OOMKilled
		}
		return exit, nil
	case <-at.ctx.Done():
		<-waitDone // its request ends with at.ctx
		checks.stop()
		d.stop(id, t.KillTimeout.D(), r.log.With("task", t.Name))
		return nil, nil
	}
}

// ensureImage makes sure image is on the node, pulling it if it is not.
func (d *dockerDriver) ensureImage(ctx context.Context, image string) error {
	_, err := d.c.ImageInspect(ctx, image)
	if err == nil {
		return nil
	}
	if !docker.IsNotFound(err) {
		return fmt.Errorf("image %s: %w", image, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := d.c.ImagePull(ctx, image); err != nil {
		return fmt.Errorf("image %s is not on this node and could not be pulled: %v; load it with docker load", image, err)
	}
	return nil
}

// stop stops a container, giving it killTimeout after its stop signal.
// A failure is logged: the removal that follows forces it.
func (d *dockerDriver) stop(id string, killTimeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout+30*time.Second)
	defer cancel()
	if err := d.c.ContainerStop(ctx, id, killTimeout); err != nil && !docker.IsNotFound(err) {
		log.Warn("stopping container", "container", shortID(id), "err", err)
	}
}

// remove force-removes a container by ID or name; an absent one is not an
// error.
func (d *dockerDriver) remove(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.c.ContainerRemove(ctx, id, true); err != nil && !docker.IsNotFound(err) {
		return err
	}
	return nil
}

// dockerPorts are the allocation's ports a docker task publishes: the
// task's own, then those its config.ports names (which may be the
// group's), each once.
func (r *allocRunner) dockerPorts(t *spec.Task) []wire.Port {
	var labels []string
	for _, p := range t.Ports() {
		labels = append(labels, p.Label)
	}
	for _, l := range t.Config.Ports {
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	var out []wire.Port
	for _, l := range labels {
		for _, ap := range r.alloc.Ports {
			if ap.Label == l {
				out = append(out, ap)
			}
		}
	}
	return out
}

// containerConfig is the container of one attempt of t (already resolved).
func (r *allocRunner) containerConfig(t *spec.Task, ports []wire.Port) *docker.ContainerConfig {
	env := r.taskEnv(t, r.alloc.Ports)
	cfg := &docker.ContainerConfig{
		Image: t.Config.Image,
		Labels: map[string]string{
			labelAllocID: r.alloc.ID, labelJob: r.alloc.JobID, labelGroup: r.alloc.Group,
			labelTask: t.Name, labelNode: r.a.nodeID,
		},
		HostConfig: docker.HostConfig{
			Memory:        int64(t.Resources.MemoryMB) << 20,
			MemorySwap:    int64(t.Resources.MemoryMB) << 20,
			CPUShares:     cpuShares(t.Resources.CPU),
			RestartPolicy: docker.RestartPolicy{Name: "no"},
		},
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cfg.Env = append(cfg.Env, k+"="+env[k])
	}
	if t.Config.Command != "" {
		cfg.Cmd = append([]string{t.Config.Command}, t.Config.Args...)
	} else if len(t.Config.Args) > 0 {
		cfg.Cmd = t.Config.Args
	}
	for _, p := range ports {
		to := p.To
		if to <= 0 {
			to = p.Value
		}
		key := strconv.Itoa(to) + "/tcp"
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
			cfg.HostConfig.PortBindings = map[string][]docker.PortBinding{}
		}
		cfg.ExposedPorts[key] = struct{}{}
		cfg.HostConfig.PortBindings[key] = append(cfg.HostConfig.PortBindings[key],
			docker.PortBinding{HostIP: r.a.cfg.BindAddr, HostPort: strconv.Itoa(p.Value)})
	}
	return cfg
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
