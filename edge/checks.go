package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// taskChecks runs a task's service health checks and publishes the
// task's endpoints with their health. A service without checks is
// healthy while its task runs; one with checks is healthy once all its
// checks last passed. One goroutine per check, owned here. It reports
// through two functions: publish (the endpoints changed) and restart (a
// check failed check_restart.limit times in a row: end the attempt).
type taskChecks struct {
	task    *wire.Task
	addr    string
	log     *slog.Logger
	publish func(eps []wire.Endpoint)
	restart func(reason string)
	// probe runs one check against a port; netProbe unless a test sets it.
	probe   func(ctx context.Context, chk *wire.Check, port int) error
	ctx     context.Context
	cancel  context.CancelFunc
	started time.Time // check_restart.grace counts from here
	wg      sync.WaitGroup

	mu      sync.Mutex
	eps     []wire.Endpoint
	passing [][]bool // [service][check]
	client  *http.Client
}

// newTaskChecks prepares t's checks against addr; a service's port is the
// allocation's port of its label.
func newTaskChecks(ctx context.Context, t *wire.Task, addr string, ports []wire.Port, log *slog.Logger,
	publish func([]wire.Endpoint), restart func(reason string)) *taskChecks {
	ctx, cancel := context.WithCancel(ctx)
	c := &taskChecks{task: t, addr: addr, log: log, publish: publish, restart: restart, ctx: ctx, cancel: cancel,
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	c.probe = c.netProbe
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

// start publishes the endpoints (the task runs) and starts the checks.
func (c *taskChecks) start() {
	c.started = time.Now()
	c.publishNow()
	for si, s := range c.task.Services {
		for ci := range s.Checks {
			c.wg.Go(func() { c.loop(si, ci, &s.Checks[ci], c.eps[si].Port) })
		}
	}
}

func (c *taskChecks) stop() {
	c.cancel()
	c.wg.Wait()
}

func (c *taskChecks) publishNow() {
	c.mu.Lock()
	eps := append([]wire.Endpoint(nil), c.eps...)
	c.mu.Unlock()
	c.publish(eps)
}

// loop runs one check now and then every interval, publishing on change.
func (c *taskChecks) loop(si, ci int, chk *wire.Check, port int) {
	interval := chk.Interval
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
		timeout := chk.Timeout
		if timeout <= 0 {
			timeout = 2 * time.Second
		}
		pctx, cancel := context.WithTimeout(c.ctx, timeout)
		err := c.probe(pctx, chk, port)
		cancel()
		if err != nil && c.ctx.Err() == nil {
			c.log.Debug("check failing", "task", c.task.Name, "service", c.eps[si].Service, "err", err)
		}
		if err == nil {
			failures = 0
		} else if cr := chk.CheckRestart; cr != nil && cr.Limit > 0 && time.Since(c.started) >= cr.Grace {
			// Failures during the grace period do not count (Nomad's rule).
			failures++
			if failures >= cr.Limit && c.ctx.Err() == nil {
				c.restart(fmt.Sprintf("healthcheck: %s check %d of service %q failed %d times in a row: %v", chk.Type, ci+1, c.eps[si].Service, failures, err))
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
			c.publishNow()
		}
		t.Reset(interval)
	}
}

// netProbe runs a tcp or http check against the task's port.
func (c *taskChecks) netProbe(ctx context.Context, chk *wire.Check, port int) error {
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
