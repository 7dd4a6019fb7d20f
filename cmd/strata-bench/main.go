package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"
)

// subcommands maps a name to its flag parsing and run.
var subcommands = map[string]func(ctx context.Context, args []string) error{
	"deploy":  runDeploy,
	"place":   runPlace,
	"c1m":     runC1M,
	"wasm":    runWasm,
	"agents":  runAgents,
	"rollout": runRollout,
	"dns":     runDNS,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var run func(context.Context, []string) error
	if len(os.Args) >= 2 {
		run = subcommands[os.Args[1]]
	}
	if run == nil {
		var names []string
		for n := range subcommands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: strata-bench %v [flags]\n", names)
		os.Exit(2)
	}
	if err := run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(1)
	}
}

func runDeploy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("deploy", flag.ExitOnError)
	cfg := DeployConfig{Out: os.Stdout}
	fs.StringVar(&cfg.Strata, "strata", "bin/strata", "strata binary")
	fs.StringVar(&cfg.Address, "address", "http://127.0.0.1:4700", "HTTP API of a running strata dev")
	fs.StringVar(&cfg.DNS, "dns", "127.0.0.1:8600", "its DNS server")
	fs.StringVar(&cfg.JobFile, "job", "examples/hello/hello.hcl", "job file")
	fs.StringVar(&cfg.JobID, "job-id", "hello", "the job's ID")
	fs.StringVar(&cfg.Service, "service", "hello-web-hello.service.strata", "service name to resolve")
	fs.StringVar(&cfg.Path, "path", "/x", "path to request")
	fs.IntVar(&cfg.Runs, "runs", 6, "number of deploys (the first is reported apart: it may compile the module)")
	fs.Parse(args)
	_, err := Deploy(ctx, cfg)
	return err
}

func runPlace(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("place", flag.ExitOnError)
	cfg := PlaceConfig{Out: os.Stdout}
	fs.IntVar(&cfg.Nodes, "nodes", 5000, "simulated nodes")
	fs.IntVar(&cfg.Allocs, "allocs", 100000, "allocations to place (in jobs of at most 1000)")
	fs.Parse(args)
	return Place(cfg)
}

func runC1M(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("c1m", flag.ExitOnError)
	cfg := C1MConfig{Out: os.Stdout}
	fs.IntVar(&cfg.Nodes, "nodes", 5000, "simulated nodes registered through Raft")
	fs.IntVar(&cfg.Jobs, "jobs", 1000, "jobs submitted through the HTTP API")
	fs.IntVar(&cfg.Count, "count", 1000, "allocations per job")
	fs.IntVar(&cfg.Submitters, "submitters", 8, "concurrent API clients")
	fs.IntVar(&cfg.Workers, "workers", 0, "scheduler workers (default: the coordinator's)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "data directory (default: a temporary one, removed after)")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the run to this file")
	fs.Parse(args)
	if *memProfile != "" {
		runtime.MemProfileRate = 64 << 10
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return C1M(ctx, cfg)
}

// runWasm is `strata-bench wasm`: see Wasm.
func runWasm(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wasm", flag.ExitOnError)
	cfg := WasmConfig{Out: os.Stdout, Concurrency: []int{2, 32}}
	fs.StringVar(&cfg.Tiny, "tiny", "examples/tiny/tiny.wasm", "the tiny WAGI module")
	fs.StringVar(&cfg.Hello, "hello", "examples/hello/hello.wasm", "the Go WAGI module")
	fs.StringVar(&cfg.Server, "server", "examples/server/server.wasm", "the Go listener module")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "measured time per load point")
	fs.Int64Var(&cfg.Budget, "budget", 4<<30, "RSS budget for the density figures, bytes")
	fs.IntVar(&cfg.MaxListeners, "max-listeners", 300, "listener instances to start at most for density")
	fs.IntVar(&cfg.MaxHTTPTasks, "max-http-tasks", 2000, "idle http tasks to start at most for density")
	fs.IntVar(&cfg.DistinctModules, "distinct-modules", 4, "distinct Go modules to compile for the per-module cost")
	fs.DurationVar(&cfg.MaxTime, "max-time", 3*time.Minute, "time bound of each density measurement")
	fs.StringVar(&cfg.Skip, "skip", "", "parts to skip: compile,http,listener,density")
	fs.Parse(args)
	return Wasm(ctx, cfg)
}

// runAgents is `strata-bench agents`: see Agents.
func runAgents(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agents", flag.ExitOnError)
	cfg := AgentsConfig{Out: os.Stdout}
	fs.StringVar(&cfg.Strata, "strata", "bin/strata", "strata binary, run as the server")
	fs.IntVar(&cfg.Agents, "agents", 1000, "simulated agents, each on its own QUIC connection")
	fs.DurationVar(&cfg.Steady, "steady", 30*time.Second, "how long steady heartbeating is measured")
	fs.StringVar(&cfg.Tiny, "tiny", "examples/tiny/tiny.wasm", "the job's module")
	fs.IntVar(&cfg.ModuleMB, "module-mb", 0, "pad the module to this many MiB and have every agent download and verify it")
	fs.Parse(args)
	return Agents(ctx, cfg)
}

// runDNS is `strata-bench dns`: see DNS.
func runDNS(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dns", flag.ExitOnError)
	cfg := DNSConfig{Out: os.Stdout}
	fs.StringVar(&cfg.DNSPerf, "dnsperf", "dnsperf", "dnsperf binary")
	fs.IntVar(&cfg.Instances, "instances", 10000, "instances in the generated catalog")
	fs.IntVar(&cfg.PerService, "per-service", 4, "instances per service")
	fs.DurationVar(&cfg.Duration, "duration", 15*time.Second, "dnsperf run time per server")
	fs.IntVar(&cfg.InFlight, "inflight", 50, "queries in flight (dnsperf -q)")
	fs.IntVar(&cfg.Queries, "queries", 100000, "lines in the query file (dnsperf loops over it)")
	fs.IntVar(&cfg.Rounds, "rounds", 1, "runs of each server, alternating which goes first; the best of each is reported")
	fs.StringVar(&cfg.Serve, "serve", "", "only serve this server (strata or ceiling) on -addr until interrupted")
	fs.StringVar(&cfg.ServeAddr, "addr", "127.0.0.1:8600", "address for -serve")
	fs.StringVar(&cfg.Target, "target", "", "measure the running Strata DNS server at this address (e.g. strata dev's 127.0.0.1:8600) instead of a generated catalog, beside a ceiling that answers what it answers")
	services := fs.String("service", "", "with -target: comma-separated services to ask about (each must answer A and SRV)")
	fs.StringVar(&cfg.Domain, "domain", "strata", "with -target: the server's -dns-domain")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	fs.Parse(args)
	for _, svc := range strings.Split(*services, ",") {
		if svc = strings.TrimSpace(svc); svc != "" {
			cfg.Services = append(cfg.Services, svc)
		}
	}
	var conflict []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "instances", "per-service", "serve", "addr":
			if cfg.Target != "" {
				conflict = append(conflict, "-"+f.Name)
			}
		case "service", "domain":
			if cfg.Target == "" {
				conflict = append(conflict, "-"+f.Name)
			}
		}
	})
	if len(conflict) > 0 {
		if cfg.Target != "" {
			return fmt.Errorf("dns: %s describe the generated catalog, not -target's server", strings.Join(conflict, ", "))
		}
		return fmt.Errorf("dns: %s apply only with -target", strings.Join(conflict, ", "))
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return DNS(ctx, cfg)
}

// runRollout is `strata-bench rollout`: see Rollout.
func runRollout(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rollout", flag.ExitOnError)
	cfg := RolloutConfig{Out: os.Stdout}
	fs.StringVar(&cfg.Strata, "strata", "bin/strata", "strata binary, run as the server")
	fs.IntVar(&cfg.Agents, "agents", 100, "simulated agents, each on its own QUIC connection")
	fs.IntVar(&cfg.Count, "count", 1000, "the job's allocations")
	fs.IntVar(&cfg.MaxParallel, "max-parallel", 100, "update.max_parallel of the job")
	fs.StringVar(&cfg.Tiny, "tiny", "examples/tiny/tiny.wasm", "the job's module")
	fs.Parse(args)
	return Rollout(ctx, cfg)
}
