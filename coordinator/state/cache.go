package state

import (
	"sync"

	"github.com/strata-run/strata/coordinator/structs"
)

// allocCacheMax bounds the allocation cache; past it, the oldest entries
// are dropped (they are read back from bbolt on the next miss). Picking a
// victim by map iteration cost 0.9 s of CPU over a million placements.
const allocCacheMax = 200_000

// allocCache holds committed allocations so Apply need not decode an
// allocation for every status update. Values are never mutated: Apply
// works on copies and publishes them after its transaction commits.
type allocCache struct {
	mu    sync.RWMutex
	m     map[string]*structs.Alloc
	order []string // IDs in the order they entered m: a ring, oldest at next once full
	next  int
}

func (c *allocCache) get(id string) *structs.Alloc {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[id]
}

func (c *allocCache) publish(pending map[string]pendingAlloc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, p := range pending {
		a := p.a
		if _, ok := c.m[id]; !ok {
			if len(c.order) < allocCacheMax {
				c.order = append(c.order, id)
			} else {
				delete(c.m, c.order[c.next])
				c.order[c.next] = id
				c.next = (c.next + 1) % allocCacheMax
			}
		}
		c.m[id] = a
	}
}

func (c *allocCache) clear() {
	c.mu.Lock()
	c.m, c.order, c.next = map[string]*structs.Alloc{}, nil, 0
	c.mu.Unlock()
}
