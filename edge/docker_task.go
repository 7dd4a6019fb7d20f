package edge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/strata-run/strata/internal/docker"
	"github.com/strata-run/strata/internal/wire"
)

// containerTask is one running container of a task. It owns two
// goroutines: one follows the container's log stream into the task's
// files, one waits for the container to exit. stop ends both.
type containerTask struct {
	d        *dockerDriver
	id, name string
	started  string // the Started event's message
	memoryMB int
	log      *slog.Logger

	waitDone   chan struct{} // closed when ContainerWait returned
	code       int           // exit code, once waitDone
	waitErr    error
	stopWait   context.CancelFunc
	logsDone   chan error
	stopLogs   context.CancelFunc
	stopOnce   sync.Once
	stopResult error
}

// follow starts following container id of t: its log stream from since
// (zero: its start) into t's log files, and its exit.
func (d *dockerDriver) follow(t *taskSpec, id, name string, since time.Time, started string) *containerTask {
	h := &containerTask{d: d, id: id, name: name, started: started, memoryMB: t.Task.Resources.MemoryMB,
		log: d.log.With("task", t.Task.Name, "container", shortID(id)), waitDone: make(chan struct{}), logsDone: make(chan error, 1)}
	// The log stream ends by itself when the container stops; stopLogs
	// ends it anyway if the daemon does not, so the goroutine always
	// returns before the runner closes the files.
	logCtx, stopLogs := context.WithCancel(context.Background())
	h.stopLogs = stopLogs
	go func() { h.logsDone <- d.c.ContainerLogs(logCtx, id, since, t.Stdout, t.Stderr) }()
	waitCtx, stopWait := context.WithCancel(context.Background())
	h.stopWait = stopWait
	go func() {
		defer close(h.waitDone)
		h.code, h.waitErr = d.c.ContainerWait(waitCtx, id)
	}()
	return h
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

func (h *containerTask) describe() string { return h.started }

func (h *containerTask) wait(ctx context.Context) error {
	select {
	case <-h.waitDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	if h.waitErr != nil {
		return h.waitErr
	}
	exit := &containerExitError{Code: h.code, MemoryMB: h.memoryMB}
	ictx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if info, err := h.d.c.ContainerInspect(ictx, h.id); err == nil && info.State != nil {
		exit.OOMKilled = info.State.OOMKilled
	}
	if exit.Code == 0 && !exit.OOMKilled {
		return nil
	}
	return exit
}

// stop stops the container if it runs (its stop signal, then SIGKILL
// after killTimeout), waits for its log stream to end (5 s at most) and
// removes it.
func (h *containerTask) stop(killTimeout time.Duration) error {
	h.stopOnce.Do(func() {
		select {
		case <-h.waitDone:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), killTimeout+30*time.Second)
			if err := h.d.c.ContainerStop(ctx, h.id, killTimeout); err != nil && !cerrdefs.IsNotFound(err) {
				h.log.Warn("stopping container", "err", err) // the removal below forces it
			}
			cancel()
		}
		h.stopWait()
		<-h.waitDone
		var err error
		t := time.NewTimer(5 * time.Second)
		select {
		case err = <-h.logsDone:
		case <-t.C:
			h.log.Warn("the container's log stream did not end with it")
			h.stopLogs()
			err = <-h.logsDone
		}
		t.Stop()
		h.stopLogs()
		if err != nil {
			h.log.Warn("following the container's output", "err", err)
		}
		if err := h.d.remove(h.id); err != nil {
			h.stopResult = fmt.Errorf("removing container %s: %w", h.name, err)
		}
	})
	return h.stopResult
}

func (h *containerTask) signal(ctx context.Context, sig string) error {
	err := h.d.c.ContainerKill(ctx, h.id, sig)
	if cerrdefs.IsConflict(err) {
		return fmt.Errorf("%w: container %s is not running", errSignalRefused, h.name)
	}
	return err
}

func (h *containerTask) stats(ctx context.Context) (wire.TaskStats, error) {
	s, err := h.d.c.ContainerStats(ctx, h.id)
	if err != nil {
		return wire.TaskStats{}, err
	}
	return wire.TaskStats{
		Measured:    []string{wire.MeasuredMemory, wire.MeasuredCPU},
		MemoryBytes: int64(docker.MemoryInUse(s)), MemoryLimitBytes: int64(s.MemoryStats.Limit),
		CPUPercent: docker.CPUPercent(s), CPUTotalNanos: s.CPUStats.CPUUsage.TotalUsage,
	}, nil
}
