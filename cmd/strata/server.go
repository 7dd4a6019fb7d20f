package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
)

// serving is a coordinator with its HTTP API and DNS server.
type serving struct {
	srv      *coordinator.Server
	httpAddr string
	httpURL  string // http:// or https://
	dnsAddr  string
	httpDone chan error
	close    func()
	// startHTTP starts answering the API; dev calls it once its agent
	// has registered, so a client that sees the API up can deploy.
	startHTTP func()
}

// startServing starts a coordinator and its DNS server, and binds the
// HTTP API (serving starts with startHTTP), over TLS when tlsf says so.
// close stops them in reverse order.
func startServing(cfg coordinator.Config, httpAddr string, dnsf *dnsFlags, logger *slog.Logger, tlsf *httpTLSFlags) (*serving, error) {
	var own *tls.Certificate
	if tlsf.cert != "" {
		c, err := tls.LoadX509KeyPair(tlsf.cert, tlsf.key)
		if err != nil {
			return nil, fmt.Errorf("-http-cert/-http-key: %w", err)
		}
		own = &c
	}
	httpLn, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP API: %w", err)
	}
	cfg.HTTPAddr = httpLn.Addr().String()
	srv, err := coordinator.New(cfg)
	if err != nil {
		httpLn.Close()
		return nil, err
	}
	scheme := "http"
	if tlsf.enabled() {
		// Plain HTTP on this port gets Go's 400 ("Client sent an HTTP
		// request to an HTTPS server"): nothing is served in the clear.
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if own != nil {
			tc.Certificates = []tls.Certificate{*own}
		} else {
			host, _, _ := net.SplitHostPort(cfg.HTTPAddr)
			name, _ := os.Hostname()
			tc = srv.HTTPTLSConfig([]string{host, name})
		}
		httpLn = tls.NewListener(httpLn, tc)
		scheme = "https"
	}
	var closers []func()
	sv := &serving{srv: srv, httpAddr: httpLn.Addr().String(), httpURL: scheme + "://" + httpLn.Addr().String(), httpDone: make(chan error, 1)}
	sv.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	closers = append(closers, func() {
		ctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		srv.Shutdown(ctx)
	})
	dnsCfg := dnsf.config(srv.Catalog(), logger)
	dnsCfg.Observer = srv.DNSObserver()
	dns, err := registry.NewDNS(dnsCfg)
	if err != nil {
		httpLn.Close()
		sv.close()
		return nil, err
	}
	if err := dns.Listen(context.Background(), dnsf.addr); err != nil {
		httpLn.Close()
		sv.close()
		return nil, fmt.Errorf("DNS: %w", err)
	}
	sv.dnsAddr = dns.Addr()
	closers = append(closers, func() {
		ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		dns.Shutdown(ctx)
	})
	// Requests' contexts end at shutdown, so followed logs (which never
	// end on their own) do not hold Shutdown up.
	baseCtx, endRequests := context.WithCancel(context.Background())
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return baseCtx }}
	serve := func() {
		go func() { sv.httpDone <- hs.Serve(httpLn) }()
	}
	closers = append(closers, func() {
		endRequests()
		ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		if err := hs.Shutdown(ctx); errors.Is(err, http.ErrServerClosed) || err == nil {
			select {
			case <-sv.httpDone:
			case <-ctx.Done():
			}
		}
		httpLn.Close()
	})
	sv.startHTTP = serve
	return sv, nil
}

func runServer(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "server")
	dataDir := fs.String("data-dir", "", "data directory (required)")
	bind := fs.String("bind", "127.0.0.1", "IP the server's listeners bind to unless given in full")
	httpAddr := fs.String("http-addr", "", "HTTP API address (default BIND:4700)")
	raftAddr := fs.String("raft-addr", "", "Raft and server RPC address (default BIND:4701)")
	agentAddr := fs.String("agent-addr", "", "QUIC address agents connect to (default BIND:4702)")
	agentAdvertise := fs.String("agent-advertise", "", "address agents are told to reach this server at (default: the agent address as bound, unless its IP is 0.0.0.0 or ::)")
	dnsf := addDNSFlags(fs, "", "DNS address, UDP and TCP (default BIND:8600)")
	expect := fs.Int("bootstrap-expect", 1, "bootstrap the cluster once this many servers know of each other")
	join := fs.String("join", "", "comma-separated Raft addresses of other servers")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	multiplier := fs.Int("raft-multiplier", 1, "scale Raft's heartbeat, election and leader-lease timeouts (1-10, as Consul's raft_multiplier): 1 is tuned for one host or a LAN, raise it on slow or busy networks")
	aclEnabled := fs.Bool("acl-enabled", false, "require an ACL token that grants what each API request needs (bootstrap one with `strata acl bootstrap`)")
	tlsf := addHTTPTLSFlags(fs)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("server takes no arguments, got %q", pos)
	}
	if err := tlsf.check(); err != nil {
		return err
	}
	if err := dnsf.check(); err != nil {
		return err
	}
	if *dataDir == "" {
		return usageError("server needs -data-dir")
	}
	if *expect < 1 {
		return usageError("-bootstrap-expect must be at least 1")
	}
	if *multiplier < 1 || *multiplier > 10 {
		return usageError("-raft-multiplier must be between 1 and 10, got %d", *multiplier)
	}
	logger, err := newLogger(env.Stderr, *logLevel)
	if err != nil {
		return err
	}
	orDefault := func(v *string, port string) string {
		if *v != "" {
			return *v
		}
		return net.JoinHostPort(*bind, port)
	}
	dnsf.addr = orDefault(&dnsf.addr, "8600")
	var joins []string
	for _, j := range strings.Split(*join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			joins = append(joins, j)
		}
	}
	sv, err := startServing(coordinator.Config{
		DataDir: *dataDir, RaftAddr: orDefault(raftAddr, "4701"), AgentAddr: orDefault(agentAddr, "4702"),
		AgentAdvertise: *agentAdvertise,
		Bootstrap:      *expect == 1 && len(joins) == 0, BootstrapExpect: *expect, Join: joins, Logger: logger,
		ACLEnabled: *aclEnabled, RaftMultiplier: *multiplier,
	}, orDefault(httpAddr, "4700"), dnsf, logger, tlsf)
	if err != nil {
		return err
	}
	defer sv.close()
	sv.startHTTP()
	fmt.Fprintf(env.Stdout, "==> Strata server started\n")
	fmt.Fprintf(env.Stdout, "    HTTP API:  %s\n", sv.httpURL)
	fmt.Fprintf(env.Stdout, "    Raft:      %s\n", sv.srv.RaftAddr())
	fmt.Fprintf(env.Stdout, "    DNS:       %s\n", sv.dnsAddr)
	// The CA pin exists once the cluster has a leader (it creates the CA).
	if err := waitLeader(ctx, sv.srv, 24*time.Hour); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "    Agents:    %s (quic), CA pin %s\n", sv.srv.AgentAddr(), sv.srv.CAPin())
	if err := announceSecurity(env, sv, *dataDir, *aclEnabled, tlsf); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(env.Stdout, "==> Strata server stopping")
		return nil
	case err := <-sv.httpDone:
		return fmt.Errorf("HTTP API stopped: %w", err)
	}
}

// dnsFlags are -dns-addr, -dns-domain and -dns-recursors, shared by the
// commands that serve DNS.
type dnsFlags struct {
	addr      string
	domain    string
	recursors string // comma-separated
}

func addDNSFlags(fs *flag.FlagSet, defaultAddr, addrUsage string) *dnsFlags {
	f := &dnsFlags{}
	fs.StringVar(&f.addr, "dns-addr", defaultAddr, addrUsage)
	fs.StringVar(&f.domain, "dns-domain", "strata", "the DNS zone served: <service>.service.DOMAIN; \"consul\" answers Consul's names unchanged")
	fs.StringVar(&f.recursors, "dns-recursors", "", "comma-separated resolvers (IP or IP:port) that names outside -dns-domain are forwarded to; without, such names are REFUSED")
	return f
}

// config is the DNS server's configuration over catalog.
func (f *dnsFlags) config(catalog *registry.Holder, logger *slog.Logger) registry.DNSConfig {
	var recursors []string
	for _, r := range strings.Split(f.recursors, ",") {
		if r = strings.TrimSpace(r); r != "" {
			recursors = append(recursors, r)
		}
	}
	return registry.DNSConfig{Domain: f.domain, Recursors: recursors, Snapshots: catalog, Logger: logger}
}

// check refuses a domain or recursor the DNS server would refuse, before
// anything starts.
func (f *dnsFlags) check() error {
	if _, err := registry.NewDNS(f.config(registry.NewHolder(nil), nil)); err != nil {
		return usageError("-dns-domain/-dns-recursors: %v", err)
	}
	return nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("-log-level: %v", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runRaftListPeers(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "operator raft list-peers")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	peers, err := client(*addr).RaftPeers(ctx)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, peers)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "ID\tAddress\tState\tVoter")
	for _, p := range peers {
		state := "follower"
		if p.Leader {
			state = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", p.ID, p.Address, state, p.Voter)
	}
	return nil
}

func runRaftRemovePeer(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "operator raft remove-peer")
	addr := addressFlag(fs, env)
	id := fs.String("peer-id", "", "ID of the server to remove")
	paddr := fs.String("peer-address", "", "Raft address of the server to remove")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	target := *id
	if target == "" {
		target = *paddr
	}
	if target == "" {
		return usageError("remove-peer needs -peer-id or -peer-address")
	}
	if err := client(*addr).RemoveRaftPeer(ctx, target); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Removed peer %s\n", target)
	return nil
}

func runNodeStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "node status")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	nodes, err := client(*addr).Nodes(ctx)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, nodes)
	}
	if len(nodes) == 0 {
		fmt.Fprintln(env.Stdout, "No nodes.")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "ID\tName\tDatacenter\tAddress\tStatus\tEligibility\tDrain\tDrivers\tHost volumes")
	for _, n := range nodes {
		elig, drain := "eligible", "false"
		if !n.Eligible {
			elig = "ineligible"
		}
		if n.Drain != nil {
			drain = "true"
		}
		var drivers []string
		for d, healthy := range n.Drivers {
			if healthy {
				drivers = append(drivers, d)
			}
		}
		slices.Sort(drivers)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", short(n.ID), n.Name, n.Datacenter, n.Address, n.Status, elig, drain, strings.Join(drivers, ","), hostVolumes(n.HostVolumes))
	}
	return nil
}

func runNodeDrain(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "node drain")
	addr := addressFlag(fs, env)
	enable := fs.Bool("enable", false, "start draining the node")
	disable := fs.Bool("disable", false, "stop draining and make the node eligible again")
	deadline := fs.Duration("deadline", 0, "stop whatever is left after this long (0: no deadline)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *enable == *disable {
		return usageError("usage: strata node drain -enable [-deadline 1h] NODE | -disable NODE")
	}
	n, err := client(*addr).DrainNode(ctx, pos[0], *enable, *deadline)
	if err != nil {
		return err
	}
	if *enable {
		fmt.Fprintf(env.Stdout, "Node %s (%s) is draining: its allocations move to other nodes, max_parallel at a time\n", n.Name, short(n.ID))
	} else {
		fmt.Fprintf(env.Stdout, "Node %s (%s) is no longer draining and is eligible again\n", n.Name, short(n.ID))
	}
	return nil
}

// httpTLSFlags are -http-tls, -http-cert and -http-key.
type httpTLSFlags struct {
	tls       bool
	cert, key string
}

func addHTTPTLSFlags(fs *flag.FlagSet) *httpTLSFlags {
	f := &httpTLSFlags{}
	fs.BoolVar(&f.tls, "http-tls", false, "serve the HTTP API over HTTPS only, with a certificate from the cluster CA (clients verify it with -ca-cert or -ca-pin)")
	fs.StringVar(&f.cert, "http-cert", "", "PEM certificate (chain) of the HTTPS API, instead of one from the cluster CA (with -http-key)")
	fs.StringVar(&f.key, "http-key", "", "PEM private key of -http-cert")
	return f
}

func (f *httpTLSFlags) enabled() bool { return f != nil && (f.tls || f.cert != "") }

func (f *httpTLSFlags) check() error {
	if (f.cert == "") != (f.key == "") {
		return usageError("-http-cert and -http-key go together")
	}
	return nil
}

// announceSecurity says how to reach a server with ACLs or TLS on, and
// writes the cluster CA certificate where -ca-cert can read it.
func announceSecurity(env *Env, sv *serving, dataDir string, aclEnabled bool, tlsf *httpTLSFlags) error {
	if tlsf.enabled() && tlsf.cert == "" {
		path := filepath.Join(dataDir, "ca.pem")
		if err := os.WriteFile(path, sv.srv.CACertPEM(), 0o644); err != nil {
			return fmt.Errorf("writing the cluster CA certificate: %w", err)
		}
		fmt.Fprintf(env.Stdout, "    HTTPS:     the cluster CA's certificate is %s: clients take -ca-cert %s (or -ca-pin %s)\n", path, path, sv.srv.CAPin())
	}
	if aclEnabled {
		fmt.Fprintf(env.Stdout, "    ACLs:      enabled; `strata acl bootstrap` creates the first management token\n")
	}
	return nil
}

// hostVolumes shows a node's host volumes: "data=/srv/data(ro),logs=/var/log/app".
func hostVolumes(vols map[string]sched.HostVolume) string {
	if len(vols) == 0 {
		return "-"
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(vols)) {
		v := name + "=" + vols[name].Path
		if vols[name].ReadOnly {
			v += "(ro)"
		}
		out = append(out, v)
	}
	return strings.Join(out, ",")
}
