package coordinator

import (
	"fmt"
	"log/slog"

	"github.com/strata-run/strata/coordinator/state"
	"github.com/strata-run/strata/registry"
)

// catalogFeed keeps the registry catalog this server serves (DNS, the
// Consul-compatible HTTP API, agents' replicas) in step with the state:
// it is handed each batch's catalog delta on the FSM goroutine, on every
// server (followers serve DNS too), and rebuilds the catalog whole at
// start and after a snapshot restore. Readers use the Holder and never
// touch the state store.
type catalogFeed struct {
	store  *state.Store
	holder *registry.Holder
	log    *slog.Logger
}

// newCatalogFeed builds the catalog from the state as it is.
func newCatalogFeed(store *state.Store, log *slog.Logger) (*catalogFeed, error) {
	snap, err := store.CatalogSnapshot()
	if err != nil {
		return nil, fmt.Errorf("coordinator: building the service catalog: %w", err)
	}
	return &catalogFeed{store: store, holder: registry.NewHolder(snap), log: log}, nil
}

// applied publishes a batch's delta. A delta the catalog refuses means
// the catalog and the state disagree (it cannot happen if every change
// goes through here): the catalog is rebuilt from the state.
func (c *catalogFeed) applied(d *registry.Delta) {
	if d == nil {
		return
	}
	if _, err := c.holder.Apply(*d); err != nil {
		c.log.Error("service catalog delta refused; rebuilding it from the state", "index", d.Index, "err", err)
		c.rebuild()
	}
}

// rebuild replaces the catalog with the state's (after a snapshot
// restore). Every blocking query and agent stream watching it wakes,
// even when the index did not move.
func (c *catalogFeed) rebuild() {
	snap, err := c.store.CatalogSnapshot()
	if err != nil {
		c.log.Error("rebuilding the service catalog", "err", err)
		return
	}
	if snap.Index() > c.holder.Index() {
		err = c.holder.Set(snap)
	} else {
		err = c.holder.Replace(snap)
	}
	if err != nil {
		c.log.Error("publishing the rebuilt service catalog", "err", err)
	}
}
