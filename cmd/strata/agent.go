package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-run/strata/coordinator/structs"

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

// hostVolumeFlag collects repeated -host-volume NAME=PATH[:ro].
type hostVolumeFlag map[string]edge.HostVolume

func (h hostVolumeFlag) String() string { return fmt.Sprint(map[string]edge.HostVolume(h)) }

func (h hostVolumeFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH or NAME=PATH:ro, got %q", v)
	}
	if _, dup := h[name]; dup {
		return fmt.Errorf("host volume %q is declared twice", name)
	}
	hv := edge.HostVolume{Path: path}
	if p, ro := strings.CutSuffix(path, ":ro"); ro {
		hv = edge.HostVolume{Path: p, ReadOnly: true}
	} else if p, rw := strings.CutSuffix(path, ":rw"); rw {
		hv.Path = p
	}
	h[name] = hv
	return nil
}

// hostVolumesUsage is the -host-volume flag's help.
const hostVolumesUsage = "a directory jobs may mount as a host volume, NAME=PATH or NAME=PATH:ro (read-only whatever the job asks); repeatable. A job can mount nothing else of the host"

func runAgent(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "agent")
	servers := fs.String("servers", "", "comma-separated agent (QUIC) addresses of the servers (required)")
	pin := fs.String("ca-pin", "", "sha256:<hex> of the cluster CA certificate, as `strata server` prints it (required)")
	token := fs.String("join-token", "", "join token from `strata agent token create` (needed until the agent has joined once)")
	dc := fs.String("datacenter", "dc1", "the node's datacenter")
	dataDir := fs.String("data-dir", "", "data directory (required)")
	name := fs.String("node-name", "", "node name (default: host name)")
	bind := fs.String("bind", "127.0.0.1", "IP its tasks listen on and advertise")
	cacheMB := fs.Int("module-cache-mb", edge.DefaultModuleCacheMB, "disk budget of downloaded modules, MiB: past it the least recently used ones no allocation needs are removed")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	dnsAddr := fs.String("dns-addr", "", "serve the cluster's names over DNS (UDP and TCP) at this address, from a replica of the servers' catalog kept in the data directory: answers while the servers are unreachable (default: no DNS)")
	dnsDomain := fs.String("dns-domain", "", "the DNS zone served with -dns-addr (default strata; consul answers Consul's names unchanged)")
	dnsRecursors := fs.String("dns-recursors", "", "comma-separated resolvers (ip or ip:port) that -dns-addr forwards other names to (default: such names are REFUSED)")
	httpAddr := fs.String("http-addr", "", "serve the agent's Prometheus metrics at http://ADDR/v1/metrics?format=prometheus (nothing else; no ACLs: bind it where only scrapers reach)")
	meta := metaFlag{}
	fs.Var(meta, "meta", "node metadata key=value, repeatable")
	vols := hostVolumeFlag{}
	fs.Var(vols, "host-volume", hostVolumesUsage)
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
	addrs := splitList(*servers)
	if *dnsAddr == "" && (*dnsDomain != "" || *dnsRecursors != "") {
		return usageError("-dns-domain and -dns-recursors need -dns-addr")
	}
	var metricsLn net.Listener
	if *httpAddr != "" { // bound first: a taken address stops the agent before it starts anything
		if metricsLn, err = net.Listen("tcp", *httpAddr); err != nil {
			return fmt.Errorf("-http-addr: %w", err)
		}
		defer metricsLn.Close()
	}
	agent, err := edge.New(ctx, edge.Config{
		Servers: addrs, CAPin: *pin, JoinToken: *token, DataDir: *dataDir, NodeName: *name,
		Datacenter: *dc, BindAddr: *bind, Meta: meta, ModuleCacheMB: *cacheMB, HostVolumes: vols, Logger: logger,
		DNSAddr: *dnsAddr, DNSDomain: *dnsDomain, DNSRecursors: splitList(*dnsRecursors),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "==> Strata agent %s starting (node %s, datacenter %s, servers %s)\n", *name, agent.NodeID(), *dc, strings.Join(addrs, ","))
	if metricsLn != nil {
		defer serveAgentMetrics(agent, metricsLn)()
		fmt.Fprintf(env.Stdout, "    Metrics:   http://%s/v1/metrics?format=prometheus\n", metricsLn.Addr())
	}
	return agent.Run(ctx)
}

// serveAgentMetrics serves the agent's metrics on ln until stop.
func serveAgentMetrics(agent *edge.Agent, ln net.Listener) (stop func()) {
	hs := &http.Server{Handler: agent.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		hs.Serve(ln)
	}()
	return func() {
		hs.Close()
		<-done
	}
}

func runTokenCreate(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "agent token create")
	addr := addressFlag(fs, env)
	reusable := fs.Bool("reusable", false, "the token may join any number of agents (default: one agent)")
	ttl := fs.Duration("ttl", 0, "the token expires after this long (0: never)")
	desc := fs.String("description", "", "a note shown by `strata agent token list`")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("usage: strata agent token create [-reusable] [-ttl 24h] [-description TEXT]")
	}
	req := structs.JoinTokenRequest{Reusable: *reusable, Description: *desc}
	if *ttl > 0 {
		req.TTL = ttl.String()
	}
	tok, err := client(*addr).CreateJoinToken(ctx, req)
	if err != nil {
		return err
	}
	kind := "one-time"
	if tok.Reusable {
		kind = "reusable"
	}
	expires := "never"
	if tok.ExpireTime != 0 {
		expires = time.Unix(0, tok.ExpireTime).UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(env.Stdout, "Token ID:  %s (%s, expires %s)\n", tok.ID, kind, expires)
	fmt.Fprintf(env.Stdout, "The secret is shown only now. On the edge host, run:\n\n")
	fmt.Fprintf(env.Stdout, "  strata agent -servers %s -join-token %s -ca-pin %s -data-dir /var/lib/strata -node-name NAME -bind IP\n",
		strings.Join(tok.Servers, ","), tok.Secret, tok.CAPin)
	return nil
}

func runTokenList(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "agent token list")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("agent token list takes no arguments")
	}
	toks, err := client(*addr).JoinTokens(ctx)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, toks)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tType\tUses\tLast Node\tCreated\tExpires\tDescription")
	for _, t := range toks {
		kind, expires, last := "one-time", "never", "-"
		if t.Reusable {
			kind = "reusable"
		}
		if t.ExpireTime != 0 {
			expires = time.Unix(0, t.ExpireTime).UTC().Format(time.RFC3339)
		}
		if t.LastNodeID != "" {
			last = short(t.LastNodeID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", t.ID, kind, t.Uses, last,
			time.Unix(0, t.CreateTime).UTC().Format(time.RFC3339), expires, t.Description)
	}
	return tw.Flush()
}

func runTokenRevoke(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "agent token revoke")
	addr := addressFlag(fs, env)
	arg, err := parseOne(fs, args, "usage: strata agent token revoke TOKEN_ID")
	if err != nil {
		return err
	}
	id, _, _ := strings.Cut(arg, ".") // accept the whole token too
	if err := client(*addr).RevokeJoinToken(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Join token %s revoked: no agent can join with it. Agents that joined with it keep their certificates.\n", id)
	return nil
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
