//go:build !linux

package wasmhost

import (
	"context"
	"time"
)

// poller: without epoll, there is nothing to keep between polls.
type poller struct{}

func (*poller) close()     {}
func (*poller) forget(int) {}

// pollSockets, where there is no epoll: sockets count as ready after a short
// wait, so a server polling in a loop does not spin.
func (st *instState) pollSockets(ctx context.Context, events []pollEvent, wait time.Duration) uint64 {
	st.sleep(ctx, min(wait, fallbackPollWait))
	for i := range events {
		if events[i].host >= 0 {
			events[i].ready = true
		}
	}
	return errnoSuccess
}
