package edge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/registry"
)

// newDNS prepares the agent's DNS server over its catalog replica when
// Config.DNSAddr asks for one, validating the DNS settings: a domain or
// recursors without an address would not be served, so they are refused.
func (a *Agent) newDNS() error {
	cfg := a.cfg
	if cfg.DNSAddr == "" {
		if cfg.DNSDomain != "" || len(cfg.DNSRecursors) > 0 {
			return errors.New("edge: a DNS domain or recursors need a DNS address to serve on (-dns-addr)")
		}
		return nil
	}
	a.replica = newReplica(a.local, cfg.NodeName, a.log.With("part", "replica"))
	dns, err := registry.NewDNS(registry.DNSConfig{
		Snapshots: a.replica.holder,
		Domain:    cfg.DNSDomain,
		Recursors: cfg.DNSRecursors,
		// registry.DefaultTTL (5 s): a client re-asks soon after a change.
		Logger: cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	a.dns = dns
	return nil
}

// report is the runners' status report: to the servers (the outbox), and
// to the replica's overlay of the agent's own instances.
func (a *Agent) report(st wire.AllocStatus) {
	a.outbox.report(st)
	if a.replica != nil {
		a.replica.observe(st)
	}
}

// DNSAddr is the bound address of the agent's DNS server (UDP and TCP),
// "" when it serves none or has not started.
func (a *Agent) DNSAddr() string {
	if a.dns == nil {
		return ""
	}
	return a.dns.Addr()
}

func (a *Agent) stopDNS() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.dns.Shutdown(ctx); err != nil {
		a.log.Warn("stopping the DNS server", "err", err)
	}
}
