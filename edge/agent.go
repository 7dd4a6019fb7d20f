package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/wasmhost"
)

// Config configures an agent.
type Config struct {
	// Servers are the coordinators' agent (QUIC) addresses; tried in turn.
	Servers []string
	// CAPin is "sha256:<hex>" of the cluster CA certificate. The agent
	// refuses a server whose certificate chain does not end in it.
	CAPin string
	// JoinToken ("<id>.<secret>") is spent once to get the agent's client
	// certificate; an agent that has one (in DataDir) needs no token.
	JoinToken string
	// DataDir holds node-id, modules/ (downloaded modules) and
	// wasm-cache/ (compiled code).
	DataDir    string
	NodeName   string // default: host name
	Datacenter string // default "dc1"
	// BindAddr is the IP tasks listen on and advertise; default 127.0.0.1.
	BindAddr string
	// DockerHost is the Docker Engine's address for the docker driver
	// ("unix:///var/run/docker.sock", "tcp://host:2375"); "" means
	// $DOCKER_HOST, else the default socket. The driver is offered when the
	// Engine answers at start.
	DockerHost string
	Meta       map[string]string
	// ModuleCacheMB bounds the downloaded modules kept on disk (default
	// 1024): past it, the least recently used ones that no current
	// allocation references are removed.
	ModuleCacheMB int
	// HostVolumes are the directories jobs may mount, by name (strata
	// agent -host-volume NAME=PATH[:ro]): registered with the node, so the
	// servers place a job that asks for one only here. A job can mount
	// nothing else of the host.
	HostVolumes map[string]HostVolume
	// DNSAddr, if set, is where the agent serves DNS (UDP and TCP) for
	// the cluster's services, from its replica of the servers' catalog
	// (replica.go), which it keeps only then. It answers while the link
	// is down, and from agent.db after a restart.
	DNSAddr string
	// DNSDomain is the zone served (default "strata"; "consul" answers
	// Consul's names unchanged). Only with DNSAddr.
	DNSDomain string
	// DNSRecursors are resolvers ("ip" or "ip:port") that names outside
	// DNSDomain are forwarded to; with none they are REFUSED. Only with
	// DNSAddr.
	DNSRecursors []string
	// RestoreWait is how long a restarted agent waits for a server's
	// allocation set before it starts the allocations kept in local state
	// (default DefaultRestoreWait; restore.go).
	RestoreWait time.Duration
	Logger      *slog.Logger
}

// HostVolume is a directory of the host offered to jobs under a name.
type HostVolume struct {
	Path     string // absolute, an existing directory
	ReadOnly bool   // mounted read-only whatever the job asks
}

// DefaultModuleCacheMB is Config.ModuleCacheMB's default.
const DefaultModuleCacheMB = 1024

// Agent is an edge agent. It wires its parts together and holds what
// they share; each part reaches the others only through the functions it
// was given:
//
//   - link (link.go, identity.go): dialling, TLS and the CA pin, joining,
//     backoff and reconnecting; it runs a session on each connection;
//   - control (control.go): the control protocol run as that session,
//     with the status outbox;
//   - allocs (allocs.go): the allocation runners (runner.go, task.go,
//     checks.go) kept in the state the servers ask for;
//   - drivers (driver.go, wasm_driver.go, docker_driver.go), by name;
//   - modules (download.go, modules.go): fetching and caching modules;
//   - streams (logs.go): the log, signal and stats requests the servers
//     open streams for;
//   - local (state.go): agent.db;
//   - replica and dns (replica.go, replica_stream.go, dns.go): the
//     cluster's names, served from a replica of the servers' catalog.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	nodeID string
	host   *wasmhost.Host
	mods   *moduleCache
	local  *localState
	fp     fingerprint

	link    *link
	control *control
	outbox  *outbox
	allocs  *allocSet
	streams *streamServer
	drivers map[string]driver
	// unavailable says why a driver the agent knows is not offered.
	unavailable map[string]string
	docker      *dockerDriver // also in drivers; nil when no Docker Engine answered at start
	// replica and dns serve the cluster's names (Config.DNSAddr); nil without.
	replica *replica
	dns     *registry.DNSServer
	// restore holds the allocations of local state until a server's set
	// or RestoreWait decides (restore.go); set by Run before the link runs.
	restore *restoreGate
	metrics *agentMetrics // served by MetricsHandler
}

// New prepares an agent: data dir, node identity, wasm host, drivers,
// fingerprint.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("edge: no servers to connect to")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("edge: DataDir is required")
	}
	pin, err := wire.ParsePin(cfg.CAPin)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	if cfg.Datacenter == "" {
		cfg.Datacenter = "dc1"
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1"
	}
	if net.ParseIP(cfg.BindAddr) == nil {
		return nil, fmt.Errorf("edge: bind address %q is not an IP", cfg.BindAddr)
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ModuleCacheMB == 0 {
		cfg.ModuleCacheMB = DefaultModuleCacheMB
	}
	if cfg.RestoreWait < 0 {
		return nil, fmt.Errorf("edge: restore wait %s is negative", cfg.RestoreWait)
	}
	if cfg.RestoreWait == 0 {
		cfg.RestoreWait = DefaultRestoreWait
	}
	if cfg.ModuleCacheMB < 0 {
		return nil, fmt.Errorf("edge: module cache size %d MB is negative", cfg.ModuleCacheMB)
	}
	vols, err := checkHostVolumes(cfg.HostVolumes)
	if err != nil {
		return nil, err
	}
	cfg.HostVolumes = vols
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	id, err := fsutil.PersistentID(filepath.Join(cfg.DataDir, "node-id"))
	if err != nil {
		return nil, fmt.Errorf("edge: node identity: %w", err)
	}
	log := cfg.Logger.With("component", "agent")
	mods, err := newModuleCache(filepath.Join(cfg.DataDir, "modules"), int64(cfg.ModuleCacheMB)<<20, log.With("part", "modules"))
	if err != nil {
		return nil, err
	}
	cert, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if cert == nil && cfg.JoinToken == "" {
		return nil, errors.New("edge: this agent has not joined the cluster yet: start it with -join-token (create one on a server with `strata agent token create`)")
	}
	local, err := openLocalStateOrReset(filepath.Join(cfg.DataDir, "agent.db"), log)
	if err != nil {
		return nil, err
	}
	host, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: filepath.Join(cfg.DataDir, "wasm-cache"), Logger: cfg.Logger})
	if err != nil {
		local.close()
		return nil, fmt.Errorf("edge: wasm host: %w", err)
	}
	a := &Agent{cfg: cfg, log: log, nodeID: id, host: host, mods: mods, local: local, fp: fingerprintHost(), outbox: newOutbox(),
		drivers: map[string]driver{}, unavailable: map[string]string{}}
	servers := slices.Clone(cfg.Servers)
	if known, err := local.servers(); err == nil {
		servers = append(servers, known...)
	}
	a.link = newLink(pin, identity{nodeID: id, nodeName: cfg.NodeName, dataDir: cfg.DataDir}, cfg.JoinToken, cert, servers,
		local.addServers, log.With("part", "link"))
	src := &moduleSource{cache: mods, conn: a.link.liveConn}
	wasm := &wasmDriver{host: host, fetch: src.fetch, bindAddr: cfg.BindAddr, log: log.With("part", "wasm")}
	a.drivers[wire.DriverWasm] = wasm
	if c, v, err := connectDocker(ctx, cfg.DockerHost); err != nil {
		log.Info("docker driver not offered", "err", err)
		a.unavailable[wire.DriverDocker] = "no Docker Engine answered when it started"
	} else {
		log.Info("docker driver available", "host", c.Host(), "engine", v.Version, "api", v.Negotiated)
		a.docker = &dockerDriver{c: c, nodeID: id, bindAddr: cfg.BindAddr, log: log.With("part", "docker")}
		a.drivers[wire.DriverDocker] = a.docker
		a.fp.addDriver(wire.DriverDocker, v.Version)
	}
	if err := a.newDNS(); err != nil {
		local.close()
		host.Close(ctx)
		return nil, err
	}
	deps := &runnerDeps{
		report: a.report, saveStates: local.saveTaskStates, driver: a.driver, dataDir: cfg.DataDir, log: log,
		node: nodeInfo{id: id, name: cfg.NodeName, datacenter: cfg.Datacenter, bindAddr: cfg.BindAddr, attributes: a.fp.attributes, meta: cfg.Meta,
			volumes: cfg.HostVolumes},
	}
	a.allocs = newAllocSet(deps, a.outbox, local, mods.setInUse, log)
	a.streams = &streamServer{dataDir: cfg.DataDir, nodeName: cfg.NodeName, signal: a.allocs.signal, stats: a.allocs.stats, restart: a.allocs.restart, log: log.With("part", "streams")}
	a.control = &control{
		registration: a.registration, outbox: a.outbox, log: log.With("part", "control"),
		allocs: func(_ context.Context, m wire.Allocs) {
			if err := local.save(m.Allocs); err != nil {
				log.Error("saving local state", "err", err)
			}
			if a.replica != nil {
				a.replica.retain(m.Allocs)
			}
			a.restore.serverSet(m.Allocs)
		},
		serve: func(ctx context.Context, st *quic.Stream) { a.streams.serve(ctx, st) },
		learn: func(addrs []string) { a.link.learn(addrs, true) },
	}
	if a.replica != nil {
		a.control.watch = a.replica.watch
	}
	a.metrics = newAgentMetrics(a)
	deps.metrics, wasm.metrics = a.metrics, a.metrics
	return a, nil
}

// driver returns the driver of that name, or why this agent has none.
func (a *Agent) driver(name string) (driver, error) {
	if d, ok := a.drivers[name]; ok {
		return d, nil
	}
	if why, ok := a.unavailable[name]; ok {
		return nil, fmt.Errorf("driver %s is not available on this agent: %s", name, why)
	}
	return nil, fmt.Errorf("driver %q is not available on this agent", name)
}

// registration is the node as the control protocol registers it.
func (a *Agent) registration() wire.Register {
	reg := wire.Register{
		NodeID: a.nodeID, Name: a.cfg.NodeName, Datacenter: a.cfg.Datacenter, Address: a.cfg.BindAddr,
		CPU: a.fp.cpuMHz, MemoryMB: a.fp.memoryMB, Drivers: a.fp.drivers, Attributes: a.fp.attributes, Meta: a.cfg.Meta,
	}
	for name, hv := range a.cfg.HostVolumes {
		if reg.HostVolumes == nil {
			reg.HostVolumes = map[string]wire.HostVolume{}
		}
		reg.HostVolumes[name] = wire.HostVolume{Path: hv.Path, ReadOnly: hv.ReadOnly}
	}
	return reg
}

// Registered is closed once the agent has first registered with a server.
func (a *Agent) Registered() <-chan struct{} { return a.link.up }

// NodeID is the agent's persistent identity.
func (a *Agent) NodeID() string { return a.nodeID }

// ActiveLogStreams is how many log streams the agent is serving now.
func (a *Agent) ActiveLogStreams() int { return int(a.streams.logStreams.Load()) }

// Run connects to the servers and keeps the agent's allocations in the
// state the servers ask for, until ctx ends; then it stops every task.
// Tasks keep running while the link is down. It returns an error when
// retrying cannot help: the join token or the CA pin refused, or no
// server speaking this agent's protocol version.
func (a *Agent) Run(ctx context.Context) error {
	defer a.shutdown()
	if a.dns != nil {
		// Before anything else: a restarted agent answers from its
		// replica on disk at once, with or without a server.
		if err := a.dns.Listen(ctx, a.cfg.DNSAddr); err != nil {
			return fmt.Errorf("edge: %w", err)
		}
		a.log.Info("serving DNS", "addr", a.dns.Addr(), "domain", a.dns.Domain(), "index", a.replica.index())
		defer a.stopDNS()
	}
	// What the servers last asked for, from local state, runs only if no
	// server sends its set within RestoreWait (restore.go): an edge host
	// rebooted offline serves again a moment later, and one that reaches a
	// server never starts what the servers stopped or replaced meanwhile.
	// Containers the previous run left are re-attached to.
	stored, err := a.local.load()
	switch {
	case errors.Is(err, errStaleLocalState):
		a.log.Info("not running the allocations in local state: waiting for the servers to send them again", "reason", err)
	case err != nil:
		a.log.Error("reading local state", "err", err)
	}
	a.restore = newRestoreGate(stored,
		func(stored []wire.Alloc) {
			a.log.Info("no server answered: restoring allocations from local state", "allocs", len(stored), "waited", a.cfg.RestoreWait)
			a.pruneContainers(ctx, stored)
			a.allocs.reconcile(stored, true)
		},
		func(set []wire.Alloc, first bool) {
			if first {
				// What the previous run left is the servers' to decide:
				// containers of allocations they stopped or replaced go;
				// the others are re-attached to.
				a.log.Info("a server answered: running its allocation set, not local state's", "allocs", len(set), "stored", len(stored))
				a.pruneContainers(ctx, set)
			}
			a.allocs.reconcile(set, first)
		})
	if len(stored) > 0 {
		a.log.Info("allocations in local state: waiting for a server's set before starting them", "allocs", len(stored), "wait", a.cfg.RestoreWait)
		var wg sync.WaitGroup
		gctx, stop := context.WithCancel(ctx)
		wg.Go(func() { a.restore.run(gctx, a.cfg.RestoreWait) })
		defer wg.Wait()
		defer stop()
	} else {
		a.pruneContainers(ctx, nil)
	}
	if err := a.link.run(ctx, a.control.session, a.allocs.stopOffline); err != nil {
		a.log.Error("agent stopping", "err", err)
		return err
	}
	return nil
}

// pruneContainers removes the containers of this node that no allocation
// of set, desired to run, owns.
func (a *Agent) pruneContainers(ctx context.Context, set []wire.Alloc) {
	if a.docker == nil {
		return
	}
	a.docker.prune(ctx, func(allocID, task string) bool {
		return slices.ContainsFunc(set, func(al wire.Alloc) bool {
			return al.ID == allocID && al.DesiredStatus == "run" &&
				slices.ContainsFunc(al.Tasks, func(t wire.Task) bool { return t.Name == task && t.Driver == wire.DriverDocker })
		})
	})
}

func (a *Agent) shutdown() {
	a.allocs.stopAll("the agent is shutting down")
	a.host.Close(context.Background())
	a.local.close()
}
