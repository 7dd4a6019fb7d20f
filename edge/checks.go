package edge

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

// taskChecks runs a task's service health checks and publishes the
// task's endpoints with their health. A service without checks is
// healthy while its task runs; one with checks is healthy once all its
// checks last passed. One goroutine per check, owned here.
type taskChecks struct {
	r       *allocRunner
	task    *spec.Task
	addr    string
	ctx     context.Context
	cancel  context.CancelFunc
	restart context.CancelCauseFunc // ends the attempt (check_restart)
	started time.Time               // check_restart.grace counts from here
	wg      sync.WaitGroup

	mu      sync.Mutex
	eps     []wire.Endpoint
	passing [][]bool // [service][check]
	client  *http.Client
}

func newTaskChecks(at attempt, r *allocRunner, t *spec.Task, ports []wire.Port) *taskChecks {
	ctx, cancel := context.WithCancel(at.ctx)
	c := &taskChecks{r: r, task: t, addr: r.a.cfg.BindAddr, ctx: ctx, cancel: cancel, restart: at.restart, started: time.Now(),
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	for _, s := range t.Services {
		port := 0
		for _, p := range ports {
			if p.Label == s.Port {
				port = p.Value
			}
		}
		c.eps = append(c.eps, wire.Endpoint{Service: s.Name, Tags: s.Tags, Port: port, Healthy: len(s.Checks) == 0})
		c.passing = append(c.passing, make([]bool, len(s.Checks)))
	}
	return c
}

func (c *taskChecks) start() {
	c.publish()
	for si, s := range c.task.Services {
		for ci, chk := range s.Checks {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.loop(si, ci, chk, c.eps[si].Port)
			}()
		}
	}
}

func (c *taskChecks) stop() {
	c.cancel()
	c.wg.Wait()
}

func (c *taskChecks) publish() {
	c.mu.Lock()
	eps := append([]wire.Endpoint(nil), c.eps...)
	c.mu.Unlock()
	c.r.setTask(c.task.Name, "running", "", eps)
}

// loop runs one check now and then every interval, publishing on change.
func (c *taskChecks) loop(si, ci int, chk *spec.Check, port int) {
	interval := chk.Interval.D()
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTimer(0)
	defer t.Stop()
	failures := 0 // in a row
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		err := c.probe(chk, port)
		if err != nil && c.ctx.Err() == nil {
			c.r.log.Debug("check failing", "task", c.task.Name, "service", c.eps[si].Service, "err", err)
		}
		if err == nil {
			failures = 0
		} else if cr := chk.CheckRestart; cr != nil && cr.Limit > 0 && time.Since(c.started) >= cr.Grace.D() {
			// Failures during the grace period do not count (Nomad's rule).
			failures++
			if failures >= cr.Limit && c.ctx.Err() == nil {
				reason := fmt.Sprintf("healthcheck: %s check %d of service %q failed %d times in a row: %v", chk.Type, ci+1, c.eps[si].Service, failures, err)
				c.r.log.Warn("restarting task", "task", c.task.Name, "reason", reason)
				c.r.record(c.task.Name, "", "", func(h *wire.TaskState, now time.Time) { taskRestartSignaled(h, now, reason) })
				c.restart(&checkRestartError{reason: reason})
				return
			}
		}
		c.mu.Lock()
		changed := c.passing[si][ci] != (err == nil)
		c.passing[si][ci] = err == nil
		healthy := true
		for _, p := range c.passing[si] {
			healthy = healthy && p
		}
		c.eps[si].Healthy = healthy
		c.mu.Unlock()
		if changed && c.ctx.Err() == nil {
			c.publish()
		}
		t.Reset(interval)
	}
}

func (c *taskChecks) probe(chk *spec.Check, port int) error {
	timeout := chk.Timeout.D()
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	hostport := net.JoinHostPort(c.addr, strconv.Itoa(port))
	switch chk.Type {
	case "tcp":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", hostport)
		if err != nil {
			return err
		}
		return conn.Close()
	case "http":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+chk.Path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "strata-health-check")
		resp, err := c.client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	return fmt.Errorf("unknown check type %q", chk.Type)
}
