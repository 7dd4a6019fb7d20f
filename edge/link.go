package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// link is the agent's connection to the servers: it dials them in turn
// over QUIC (TLS 1.3, the server's certificate chained to the pinned
// cluster CA, the agent's client certificate, resumed TLS sessions on a
// reconnect), joins the cluster once with the token, backs off between
// failed attempts, and runs a session on each connection it gets. It
// knows nothing of allocations or of what a session says: that is the
// control protocol's (control.go).
type link struct {
	pin       []byte
	identity  identity
	joinToken string
	log       *slog.Logger
	// remember keeps servers learned from the cluster (local state).
	remember func(addrs []string) error
	// tickets keeps TLS session tickets across reconnects, so a
	// reconnect resumes the TLS session (no certificate exchange).
	tickets tls.ClientSessionCache
	cert    *tls.Certificate // client certificate; nil until joined (run's goroutine only)

	serversMu sync.Mutex
	servers   []string // the flags' servers, then those learned from the cluster

	connMu sync.Mutex
	conn   *quic.Conn    // the session that is up, nil otherwise
	connCh chan struct{} // closed when conn changes

	// sessions and resumed count sessions that came up and those on a
	// resumed TLS session.
	sessions, resumed atomic.Int64
	up                chan struct{} // closed when a session first came up
	upOnce            sync.Once
}

// identity names the agent to the cluster.
type identity struct {
	nodeID, nodeName, dataDir string
}

// session is what the link runs on each connection: the control
// protocol. It calls up once the server accepted the agent, and returns
// when the session ends.
type session func(ctx context.Context, conn *quic.Conn, up func()) error

func newLink(pin []byte, id identity, joinToken string, cert *tls.Certificate, servers []string, remember func([]string) error, log *slog.Logger) *link {
	l := &link{pin: pin, identity: id, joinToken: joinToken, cert: cert, remember: remember, log: log,
		tickets: tls.NewLRUClientSessionCache(8), connCh: make(chan struct{}), up: make(chan struct{})}
	l.learn(servers, false)
	return l
}

// errSessionWasUp marks a session that came up before it ended.
var errSessionWasUp = errors.New("session ended")

// incompatibleError is a server's refusal that another server may not
// make (one of another version, during an upgrade): the link tries the
// next server, and gives up only when every server refused in a row.
type incompatibleError struct{ err error }

func (e *incompatibleError) Error() string { return e.err.Error() }
func (e *incompatibleError) Unwrap() error { return e.err }

// run dials the servers in turn and runs s on each connection until ctx
// ends (then it returns nil) or retrying cannot help: a join refused, a
// server that is not the pinned cluster's at join, every server
// incompatible. offline is told, after each failed attempt, how long no
// session has been up.
func (l *link) run(ctx context.Context, s session, offline func(time.Duration)) error {
	return l.runWith(ctx, func(ctx context.Context, server string) error {
		if l.cert == nil {
			cert, err := l.join(ctx, server)
			var refused *joinRefusedError
			var pin *pinMismatchError
			if errors.As(err, &refused) || errors.As(err, &pin) {
				return &permanentError{err} // the same token or pin cannot succeed later
			}
			if err != nil {
				return err
			}
			l.cert = cert
		}
		return l.session(ctx, server, s)
	}, offline)
}

// permanentError is an attempt's failure that retrying cannot mend.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// runWith makes attempts on the servers in turn, backing off between
// failed ones, until ctx ends, an attempt fails for good, or every server
// refused the agent as incompatible in a row.
func (l *link) runWith(ctx context.Context, attempt func(ctx context.Context, server string) error, offline func(time.Duration)) error {
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	offlineSince := time.Now()
	incompatible := 0 // servers in a row that refused this agent's protocol
	for i := 0; ; i++ {
		servers := l.serverList()
		server := servers[i%len(servers)]
		err := attempt(ctx, server)
		if ctx.Err() != nil {
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		var inc *incompatibleError
		if errors.As(err, &inc) {
			if incompatible++; incompatible >= len(servers) {
				return inc.err
			}
		} else {
			incompatible = 0
		}
		if errors.Is(err, errSessionWasUp) {
			offlineSince = time.Now()
		}
		offline(time.Since(offlineSince))
		var refused *wire.Refusal
		if errors.As(err, &refused) || inc != nil {
			l.log.Error("server refused this agent", "server", server, "err", err)
		} else {
			l.log.Warn("link to server lost", "server", server, "err", err)
		}
		if err == nil || errors.Is(err, errSessionWasUp) {
			backoff.reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff.next()):
		}
	}
}

// session dials server and runs s on the connection until it ends.
func (l *link) session(ctx context.Context, server string, s session) error {
	tc, pinErr := l.tlsConfig(l.cert)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, release, err := dialServer(dctx, server, tc, &quic.Config{
		// The agent gives up on a silent server after 15 s (the server
		// allows 30): after a partition heals, a session the server has
		// already closed is noticed that much sooner, so the agent
		// reconnects and stops what the cluster replaced.
		MaxIdleTimeout:  15 * time.Second,
		KeepAlivePeriod: 5 * time.Second,
	})
	cancel()
	if err != nil {
		if *pinErr != nil {
			return &pinMismatchError{*pinErr}
		}
		return fmt.Errorf("dial %s: %w", server, err)
	}
	defer release()
	wasUp := false
	err = s(ctx, conn, func() {
		wasUp = true
		l.sessions.Add(1)
		resumed := conn.ConnectionState().TLS.DidResume
		if resumed {
			l.resumed.Add(1)
		}
		l.log.Info("registered", "server", server, "node_id", l.identity.nodeID, "resumed", resumed)
		l.setConn(conn)
		l.upOnce.Do(func() { close(l.up) })
	})
	if wasUp {
		l.setConn(nil)
		if ctx.Err() == nil {
			err = fmt.Errorf("%w: %v", errSessionWasUp, err)
		}
	}
	return err
}

// learn adds server addresses to the dial list (and, when they come from
// the cluster, to local state).
func (l *link) learn(addrs []string, persist bool) {
	l.serversMu.Lock()
	var added []string
	for _, s := range addrs {
		if s != "" && !slices.Contains(l.servers, s) {
			l.servers = append(l.servers, s)
			added = append(added, s)
		}
	}
	l.serversMu.Unlock()
	if persist && len(added) > 0 && l.remember != nil {
		if err := l.remember(added); err != nil {
			l.log.Warn("saving learned servers", "err", err)
		}
	}
}

func (l *link) serverList() []string {
	l.serversMu.Lock()
	defer l.serversMu.Unlock()
	return slices.Clone(l.servers)
}

func (l *link) setConn(c *quic.Conn) {
	l.connMu.Lock()
	l.conn = c
	close(l.connCh)
	l.connCh = make(chan struct{})
	l.connMu.Unlock()
}

// changed is closed when the session that is up changes (one comes up or
// goes down).
func (l *link) changed() <-chan struct{} {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	return l.connCh
}

// liveConn waits for a session that is up and whose connection is not
// closed.
func (l *link) liveConn(ctx context.Context) (*quic.Conn, error) {
	for {
		l.connMu.Lock()
		c, ch := l.conn, l.connCh
		l.connMu.Unlock()
		if c != nil && c.Context().Err() == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// tlsConfig is the client side of the link: the server must chain to the
// pinned CA; cert, if any, is presented for mutual TLS. The returned
// error pointer holds the pin check's failure after a failed dial, which
// quic-go reports only as a TLS alert.
func (l *link) tlsConfig(cert *tls.Certificate) (*tls.Config, *error) {
	pinErr := new(error)
	tc := &tls.Config{
		NextProtos: []string{wire.ALPN},
		MinVersion: tls.VersionTLS13,
		// The server's name is not checked: servers are identified by the
		// pinned cluster CA, which VerifyPeerCertificate enforces.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			err := wire.VerifyPinned(raw, l.pin)
			*pinErr = err
			return err
		},
	}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
		tc.ClientSessionCache = l.tickets
	}
	return tc, pinErr
}

// dialServer dials one QUIC connection on its own UDP socket and
// transport. The transport uses 8-byte connection IDs: quic-go's DialAddr
// gives clients zero-length ones, and then a server has no connection ID
// to validate a new path with, so a NAT rebinding or a change of network
// would kill the connection instead of migrating it. release closes the
// connection, the transport and the socket.
func dialServer(ctx context.Context, server string, tc *tls.Config, qc *quic.Config) (*quic.Conn, func(), error) {
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, nil, err
	}
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, nil, err
	}
	tr := &quic.Transport{Conn: udp, ConnectionIDLength: 8}
	closeAll := func() {
		tr.Close()
		udp.Close()
	}
	conn, err := tr.Dial(ctx, raddr, tc, qc)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return conn, func() {
		conn.CloseWithError(0, "")
		closeAll()
	}, nil
}

// backoff is a capped exponential backoff with full jitter.
type backoff struct {
	base, max, cur time.Duration
}

func newBackoff(base, max time.Duration) *backoff { return &backoff{base: base, max: max, cur: base} }

func (b *backoff) next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(b.cur*2, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.base }
