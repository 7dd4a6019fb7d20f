package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-run/strata/coordinator/structs"

	"github.com/strata-run/strata/coordinator"
	"github.com/strata-run/strata/edge"
)

// runDev starts a single-node coordinator, an agent connected to it over
// QUIC on loopback, the HTTP API and the DNS server, in one process.
func runDev(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "dev")
	dataDir := fs.String("data-dir", "", "data directory (default: a fresh temporary directory)")
	httpAddr := fs.String("http-addr", "127.0.0.1:4700", "HTTP API address")
	dnsf := addDNSFlags(fs, "127.0.0.1:8600", "DNS address (UDP and TCP)")
	agentAddr := fs.String("agent-addr", "127.0.0.1:0", "QUIC address the agent connects to")
	nodeName := fs.String("node-name", "dev", "the agent's node name")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	agentMetrics := fs.String("agent-http-addr", "", "serve the dev agent's Prometheus metrics at http://ADDR/v1/metrics?format=prometheus (the server's are on the HTTP API)")
	vols := hostVolumeFlag{}
	fs.Var(vols, "host-volume", hostVolumesUsage)
	aclEnabled := fs.Bool("acl-enabled", false, "require ACL tokens on the API (dev is open by default); `strata acl bootstrap` creates the first")
	tlsf := addHTTPTLSFlags(fs)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("dev takes no arguments, got %q", pos)
	}
	if err := tlsf.check(); err != nil {
		return err
	}
	if err := dnsf.check(); err != nil {
		return err
	}
	logger, err := newLogger(env.Stderr, *logLevel)
	if err != nil {
		return err
	}
	if *dataDir == "" {
		d, err := os.MkdirTemp("", "strata-dev-")
		if err != nil {
			return err
		}
		*dataDir = d
	}
	var metricsLn net.Listener
	if *agentMetrics != "" {
		if metricsLn, err = net.Listen("tcp", *agentMetrics); err != nil {
			return fmt.Errorf("-agent-http-addr: %w", err)
		}
		defer metricsLn.Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	sv, err := startServing(coordinator.Config{
		DataDir: filepath.Join(*dataDir, "server"), AgentAddr: *agentAddr,
		Bootstrap: true, DevMode: true, Logger: logger, ACLEnabled: *aclEnabled,
	}, *httpAddr, dnsf, logger, tlsf)
	if err != nil {
		return err
	}
	defer sv.close()
	srv := sv.srv
	if err := waitLeader(ctx, srv, 30*time.Second); err != nil {
		return err
	}

	// The dev agent joins like any other, with a one-time token, the
	// first time its data dir is used.
	agentDir := filepath.Join(*dataDir, "agent")
	var token string
	if !edge.HasJoined(agentDir) {
		tok, err := srv.CreateJoinToken(structs.JoinTokenRequest{Description: "strata dev agent"})
		if err != nil {
			return fmt.Errorf("creating the dev agent's join token: %w", err)
		}
		token = tok.Secret
	}
	agent, err := edge.New(ctx, edge.Config{
		Servers: []string{srv.AgentAddr()}, CAPin: srv.CAPin(), JoinToken: token,
		DataDir: agentDir, NodeName: *nodeName, HostVolumes: vols, Logger: logger,
	})
	if err != nil {
		return err
	}
	if metricsLn != nil {
		defer serveAgentMetrics(agent, metricsLn)()
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(ctx) }()
	defer func() {
		cancel()
		<-agentDone
	}()
	select {
	case <-agent.Registered():
	case err := <-agentDone:
		agentDone <- err
		return fmt.Errorf("agent stopped before registering: %v", err)
	case <-time.After(30 * time.Second):
		return errors.New("the agent did not register with the coordinator within 30s")
	}

	// The API answers only now, so a client that sees it up can deploy.
	sv.startHTTP()
	httpDone := sv.httpDone

	fmt.Fprintf(env.Stdout, "==> Strata dev agent started\n")
	fmt.Fprintf(env.Stdout, "    HTTP API:  %s\n", sv.httpURL)
	fmt.Fprintf(env.Stdout, "    DNS:       %s (udp, tcp)\n", sv.dnsAddr)
	fmt.Fprintf(env.Stdout, "    Agents:    %s (quic), CA pin %s\n", srv.AgentAddr(), srv.CAPin())
	fmt.Fprintf(env.Stdout, "    Data dir:  %s\n", *dataDir)
	if metricsLn != nil {
		fmt.Fprintf(env.Stdout, "    Metrics:   %s/v1/metrics?format=prometheus (server), http://%s/v1/metrics?format=prometheus (agent)\n", sv.httpURL, metricsLn.Addr())
	}
	if err := announceSecurity(env, sv, *dataDir, *aclEnabled, tlsf); err != nil {
		return err
	}

	select {
	case <-ctx.Done():
		fmt.Fprintln(env.Stdout, "==> Strata dev agent stopping")
		return nil
	case err := <-httpDone:
		return fmt.Errorf("HTTP API stopped: %w", err)
	case err := <-agentDone:
		agentDone <- err
		return fmt.Errorf("agent stopped: %v", err)
	}
}

func waitLeader(ctx context.Context, srv *coordinator.Server, max time.Duration) error {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	// Ready: a leader, and the cluster CA it creates (agents pin it).
	for srv.Leader() == "" || srv.CAPin() == "" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("no Raft leader (and cluster CA) after %s", max)
		case <-tick.C:
		}
	}
	return nil
}
