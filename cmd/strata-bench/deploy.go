package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// DeployConfig measures `strata run` to first successful request.
type DeployConfig struct {
	Strata  string // path of the strata binary
	Address string // HTTP API of a running `strata dev`
	DNS     string // its DNS server
	JobFile string
	JobID   string
	Service string // e.g. hello-web-hello.service.strata
	Path    string // requested path, e.g. /x
	Runs    int    // the first run is reported apart; the median is over the others
	Out     io.Writer
}

// Deploy stops the job, then Runs times: runs `strata run JOB` as a
// child process and measures until the service, resolved through DNS,
// answers 200; then stops the job and waits until DNS forgets it.
func Deploy(ctx context.Context, cfg DeployConfig) ([]time.Duration, error) {
	var times []time.Duration
	for i := range cfg.Runs {
		stop(ctx, cfg)
		if err := waitGone(ctx, cfg); err != nil {
			return nil, err
		}
		start := time.Now()
		cmd := exec.CommandContext(ctx, cfg.Strata, "run", "-address", cfg.Address, cfg.JobFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("strata run: %v\n%s", err, out)
		}
		ran := time.Since(start)
		if err := waitServing(ctx, cfg); err != nil {
			return nil, err
		}
		d := time.Since(start)
		times = append(times, d)
		fmt.Fprintf(cfg.Out, "run %d: strata run exited after %s, first 200 after %s\n", i+1, ran.Round(time.Microsecond), d.Round(time.Microsecond))
	}
	// The first run may include compiling the module (a cold agent);
	// the figure is the median of the runs after it.
	fmt.Fprintf(cfg.Out, "first run (may include the module's cold compile): %s\n", times[0].Round(time.Microsecond))
	warm := times
	if len(times) > 1 {
		warm = times[1:]
	}
	sorted := slices.Clone(warm)
	slices.Sort(sorted)
	med := sorted[len(sorted)/2]
	fmt.Fprintf(cfg.Out, "later runs=%d min=%s median=%s max=%s\n", len(sorted), sorted[0].Round(time.Microsecond),
		med.Round(time.Microsecond), sorted[len(sorted)-1].Round(time.Microsecond))
	fmt.Fprintf(cfg.Out, "run_to_first_request_ms=%.1f\n", float64(med.Microseconds())/1000)
	return times, nil
}

func stop(ctx context.Context, cfg DeployConfig) {
	exec.CommandContext(ctx, cfg.Strata, "stop", "-address", cfg.Address, cfg.JobID).Run()
}

func resolve(cfg DeployConfig) (string, error) {
	c := &dns.Client{Timeout: time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(cfg.Service), dns.TypeSRV)
	r, _, err := c.Exchange(m, cfg.DNS)
	if err != nil {
		return "", err
	}
	for _, rr := range r.Answer {
		srv, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		for _, ex := range r.Extra {
			if a, ok := ex.(*dns.A); ok && a.Hdr.Name == srv.Target {
				return net.JoinHostPort(a.A.String(), strconv.Itoa(int(srv.Port))), nil
			}
		}
	}
	return "", errors.New("no SRV answer")
}

// poll calls fn every 2ms until it reports done, for at most 60s.
func poll(ctx context.Context, what string, fn func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for !fn() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

func waitServing(ctx context.Context, cfg DeployConfig) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return poll(ctx, "waiting for the service to answer", func() bool {
		addr, err := resolve(cfg)
		if err != nil {
			return false
		}
		resp, err := client.Get("http://" + addr + cfg.Path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func waitGone(ctx context.Context, cfg DeployConfig) error {
	return poll(ctx, "waiting for the stopped service to leave DNS", func() bool {
		_, err := resolve(cfg)
		return err != nil
	})
}
