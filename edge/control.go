package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// control is the agent's side of the control protocol, run as the link's
// session on each connection: it opens the control stream, registers the
// node with the protocol versions it speaks, then beats at the interval
// the server gives, sends the status outbox (in full after each
// reconnect), and hands on the allocation sets the server pushes. The
// other streams of the connection are the server's (log reads, signals,
// stats): it hands them on too; and it runs watch, the stream the agent
// opens to follow the service catalog, for as long as the session.
type control struct {
	registration func() wire.Register
	outbox       *outbox
	// allocs is told each allocation set the server wants on the node.
	allocs func(ctx context.Context, m wire.Allocs)
	// serve answers a stream the server opened; it returns once it is done.
	serve func(ctx context.Context, st *quic.Stream)
	// learn is told the servers' addresses the cluster knows.
	learn func(addrs []string)
	// watch, if set, runs on each connection once the agent registered,
	// until ctx ends: the catalog stream (replica_stream.go).
	watch func(ctx context.Context, conn *quic.Conn)
	log   *slog.Logger

	// beatEvery is the heartbeat interval the server last asked for;
	// beats counts heartbeats written. events is notified of both.
	beatEvery atomic.Int64
	beats     atomic.Int64
	events    notifier
}

// ctrlStream is the control stream (a *quic.Stream).
type ctrlStream interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
	CancelRead(quic.StreamErrorCode)
	Close() error
}

// session runs the control protocol on one connection (a link session).
func (c *control) session(ctx context.Context, conn *quic.Conn, up func()) error {
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	return c.run(ctx, ctrl, up, func(ctx context.Context) {
		var wg sync.WaitGroup
		if c.watch != nil {
			wg.Go(func() { c.watch(ctx, conn) })
		}
		c.acceptStreams(ctx, conn)
		wg.Wait()
	})
}

// run speaks the control protocol on ctrl: it registers, calls up, then
// reads and writes the stream, and runs streams (which serves what the
// server opens) until ctx ends or the stream fails.
func (c *control) run(ctx context.Context, ctrl ctrlStream, up func(), streams func(ctx context.Context)) error {
	ack, err := c.register(ctrl)
	if err != nil {
		return err
	}
	up()
	c.learn(ack.Servers)
	c.outbox.markAllDirty()

	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	errc := make(chan error, 2)
	retune := make(chan time.Duration, 1) // the server's new heartbeat interval, latest only
	go func() { errc <- c.read(sctx, ctrl, retune) }()
	go func() { errc <- c.write(sctx, ctrl, time.Duration(ack.HeartbeatMillis)*time.Millisecond, retune) }()
	streamsDone := make(chan struct{})
	go func() {
		defer close(streamsDone)
		streams(sctx)
	}()
	err = <-errc
	scancel()
	ctrl.CancelRead(0)
	ctrl.Close()
	<-errc
	<-streamsDone
	return err
}

// register registers the node on the control stream. A server that
// shares no protocol version with the agent is an *incompatibleError; any
// other refusal a *wire.Refusal.
func (c *control) register(ctrl ctrlStream) (*wire.Registered, error) {
	reg := c.registration()
	reg.Versions = wire.Versions()
	if err := wire.Write(ctrl, wire.TypeRegister, reg); err != nil {
		return nil, err
	}
	ctrl.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ack wire.Registered
	err := wire.Expect(ctrl, wire.TypeRegistered, &ack)
	var refusal *wire.Refusal
	switch {
	case errors.As(err, &refusal) && refusal.Versions != nil:
		return nil, &incompatibleError{fmt.Errorf("edge: the server refused this agent's protocol: %w", refusal.Versions)}
	case errors.As(err, &refusal):
		return nil, fmt.Errorf("refused by server: %w", refusal)
	case err != nil:
		return nil, fmt.Errorf("waiting for Registered: %w", err)
	}
	ctrl.SetReadDeadline(time.Time{})
	if ack.Version == 0 {
		ack.Version = 1 // a server that predates negotiation speaks the first version
	}
	if !slices.Contains(reg.Versions, ack.Version) {
		return nil, &incompatibleError{fmt.Errorf("edge: the server picked protocol version %d; this agent speaks %v", ack.Version, reg.Versions)}
	}
	return &ack, nil
}

// read reads what the server sends on the control stream.
func (c *control) read(ctx context.Context, ctrl ctrlStream, retune chan time.Duration) error {
	for {
		t, payload, err := wire.Read(ctrl)
		if err != nil {
			return err
		}
		switch t {
		case wire.TypeAllocs:
			var m wire.Allocs
			if err := wire.Decode(t, payload, &m); err != nil {
				return err
			}
			c.log.Debug("allocations received", "index", m.Index, "allocs", len(m.Allocs))
			c.allocs(ctx, m)
		case wire.TypeHeartbeatInterval:
			var hi wire.HeartbeatInterval
			if err := wire.Decode(t, payload, &hi); err != nil {
				return err
			}
			if hi.Millis <= 0 {
				return fmt.Errorf("server sent a heartbeat interval of %dms", hi.Millis)
			}
			select { // keep only the latest
			case <-retune:
			default:
			}
			retune <- time.Duration(hi.Millis) * time.Millisecond
		case wire.TypeError:
			var e wire.Error
			if err := wire.Decode(t, payload, &e); err != nil {
				return err
			}
			return fmt.Errorf("refused by server: %w", (*wire.Refusal)(&e))
		default:
			return fmt.Errorf("unexpected %s frame from server", t)
		}
	}
}

// write is the only writer of the control stream: heartbeats on a
// ticker, status reports as they change.
func (c *control) write(ctx context.Context, ctrl ctrlStream, every time.Duration, retune <-chan time.Duration) error {
	if every <= 0 {
		every = time.Second
	}
	c.setInterval(every)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		for _, st := range c.outbox.take() {
			if err := wire.Write(ctrl, wire.TypeAllocStatus, st); err != nil {
				c.outbox.markDirty(st.AllocID)
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := c.beat(ctrl); err != nil {
				return err
			}
		case d := <-retune:
			// Beat now, then at the new pace: a reset ticker would
			// otherwise add the new interval to the time already waited.
			c.log.Debug("heartbeat interval changed", "from", time.Duration(c.beatEvery.Load()), "to", d)
			if err := c.beat(ctrl); err != nil {
				return err
			}
			c.setInterval(d)
			tick.Reset(d)
		case <-c.outbox.ready:
		}
	}
}

func (c *control) beat(ctrl ctrlStream) error {
	if err := wire.Write(ctrl, wire.TypeHeartbeat, wire.Heartbeat{}); err != nil {
		return err
	}
	c.beats.Add(1)
	c.events.notify()
	return nil
}

func (c *control) setInterval(d time.Duration) {
	c.beatEvery.Store(int64(d))
	c.events.notify()
}

// acceptStreams serves the streams the server opens on conn until ctx
// ends or the connection closes; it returns once every one has ended.
func (c *control) acceptStreams(ctx context.Context, conn *quic.Conn) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Go(func() { c.serve(ctx, st) })
	}
}

// outbox holds each allocation's latest status until the control stream
// has sent it; a reconnect marks them all to be sent again.
type outbox struct {
	mu       sync.Mutex
	statuses map[string]wire.AllocStatus // latest per alloc
	dirty    map[string]bool             // not yet sent on the current session
	ready    chan struct{}               // 1-buffered wake-up for the writer
}

func newOutbox() *outbox {
	return &outbox{statuses: map[string]wire.AllocStatus{}, dirty: map[string]bool{}, ready: make(chan struct{}, 1)}
}

// report records an allocation's status to be sent (now, or on reconnect).
func (o *outbox) report(st wire.AllocStatus) {
	o.mu.Lock()
	o.statuses[st.AllocID] = st
	o.dirty[st.AllocID] = true
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

func (o *outbox) markDirty(id string) {
	o.mu.Lock()
	o.dirty[id] = true
	o.mu.Unlock()
}

func (o *outbox) markAllDirty() {
	o.mu.Lock()
	for id := range o.statuses {
		o.dirty[id] = true
	}
	o.mu.Unlock()
}

func (o *outbox) take() []wire.AllocStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]wire.AllocStatus, 0, len(o.dirty))
	for id := range o.dirty {
		out = append(out, o.statuses[id])
	}
	clear(o.dirty)
	return out
}

// last is the latest status reported for an allocation.
func (o *outbox) last(id string) (wire.AllocStatus, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.statuses[id]
	return st, ok
}

// finished reports whether the latest status of id is complete or failed.
func (o *outbox) finished(id string) bool {
	st, ok := o.last(id)
	return ok && (st.ClientStatus == "complete" || st.ClientStatus == "failed")
}

func (o *outbox) forget(id string) {
	o.mu.Lock()
	delete(o.statuses, id)
	delete(o.dirty, id)
	o.mu.Unlock()
}

// notifier tells waiters that something changed: wait's channel is closed
// at the next notify.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}
