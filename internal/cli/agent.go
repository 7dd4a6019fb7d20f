package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/strata-run/strata/edge"
)

// metaFlag collects repeated -meta k=v.
type metaFlag map[string]string

func (m metaFlag) String() string { return fmt.Sprint(map[string]string(m)) }

func (m metaFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	m[k] = val
	return nil
}

func runAgent(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "agent")
	servers := fs.String("servers", "", "comma-separated agent (QUIC) addresses of the servers (required)")
	pin := fs.String("ca-pin", "", "sha256:<hex> of the cluster CA certificate, as `strata server` prints it (required)")
	dc := fs.String("datacenter", "dc1", "the node's datacenter")
	dataDir := fs.String("data-dir", "", "data directory (required)")
	name := fs.String("node-name", "", "node name (default: host name)")
	bind := fs.String("bind", "127.0.0.1", "IP its tasks listen on and advertise")
	cacheMB := fs.Int("module-cache-mb", edge.DefaultModuleCacheMB, "disk budget of downloaded modules, MiB: past it the least recently used ones no allocation needs are removed")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	meta := metaFlag{}
	fs.Var(meta, "meta", "node metadata key=value, repeatable")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("agent takes no arguments, got %q", pos)
	}
	if *servers == "" || *pin == "" || *dataDir == "" {
		return usageError("agent needs -servers, -ca-pin and -data-dir")
	}
	if *cacheMB <= 0 {
		return usageError("-module-cache-mb must be positive, got %d", *cacheMB)
	}
	logger, err := newLogger(env.Stderr, *logLevel)
	if err != nil {
		return err
	}
	var addrs []string
	for _, a := range strings.Split(*servers, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	agent, err := edge.New(ctx, edge.Config{
		Servers: addrs, CAPin: *pin, DataDir: *dataDir, NodeName: *name,
		Datacenter: *dc, BindAddr: *bind, Meta: meta, ModuleCacheMB: *cacheMB, Logger: logger,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "==> Strata agent %s starting (node %s, datacenter %s, servers %s)\n", *name, agent.NodeID(), *dc, strings.Join(addrs, ","))
	return agent.Run(ctx)
}
