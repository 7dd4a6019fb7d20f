package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/strata-run/strata/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if len(os.Args) < 2 || os.Args[1] != "deploy" {
		fmt.Fprintln(os.Stderr, "usage: strata-bench deploy [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("deploy", flag.ExitOnError)
	cfg := bench.DeployConfig{Out: os.Stdout}
	fs.StringVar(&cfg.Strata, "strata", "bin/strata", "strata binary")
	fs.StringVar(&cfg.Address, "address", "http://127.0.0.1:4700", "HTTP API of a running strata dev")
	fs.StringVar(&cfg.DNS, "dns", "127.0.0.1:8600", "its DNS server")
	fs.StringVar(&cfg.JobFile, "job", "examples/hello/hello.hcl", "job file")
	fs.StringVar(&cfg.JobID, "job-id", "hello", "the job's ID")
	fs.StringVar(&cfg.Service, "service", "hello-web-hello.service.strata", "service name to resolve")
	fs.StringVar(&cfg.Path, "path", "/x", "path to request")
	fs.IntVar(&cfg.Runs, "runs", 6, "number of deploys (the first is reported apart: it may compile the module)")
	fs.Parse(os.Args[2:])
	if _, err := bench.Deploy(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(1)
	}
}
