package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/internal/wire"
)

// An agent's identity is a client certificate for its node ID, signed by
// the cluster CA. It gets one by joining once with a token; the key is
// made here and never leaves the data dir.

const (
	certFile = "agent.crt"
	keyFile  = "agent.key"
)

// HasJoined reports whether the agent with this data dir holds a client
// certificate, i.e. needs no join token to start.
func HasJoined(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, certFile))
	return err == nil
}

// loadIdentity reads the agent's certificate and key; nil if it has
// none yet. A damaged pair is an error naming the file.
func loadIdentity(dataDir string) (*tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dataDir, certFile), filepath.Join(dataDir, keyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("edge: %s exists but its key cannot be read: %w", certPath, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("edge: agent certificate %s / key %s: %w (remove both and join again with -join-token)", certPath, keyPath, err)
	}
	return &cert, nil
}

// joinRefusedError is a server's final refusal to let this agent join
// (bad, used, expired or revoked token). The agent stops: retrying the
// same token cannot succeed.
type joinRefusedError struct{ msg string }

func (e *joinRefusedError) Error() string {
	return "the cluster refused to let this agent join: " + e.msg
}

// pinMismatchError: the server's certificate is not from the pinned CA.
type pinMismatchError struct{ err error }

func (e *pinMismatchError) Error() string { return e.err.Error() }
func (e *pinMismatchError) Unwrap() error { return e.err }

// join asks server for a client certificate with the join token and
// stores it. It returns a *joinRefusedError or *pinMismatchError when
// retrying cannot help.
func (l *link) join(ctx context.Context, server string) (*tls.Certificate, error) {
	tc, pinErr := l.tlsConfig(nil)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, release, err := dialServer(dctx, server, tc, &quic.Config{MaxIdleTimeout: 30 * time.Second})
	cancel()
	if err != nil {
		if *pinErr != nil {
			return nil, &pinMismatchError{*pinErr}
		}
		return nil, fmt.Errorf("dial %s: %w", server, err)
	}
	defer release()
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	st.SetReadDeadline(time.Now().Add(30 * time.Second))
	id := l.identity
	certPEM, keyPEM, err := wire.RequestCertificate(st, l.joinToken, id.nodeID, id.nodeName)
	var refusal *wire.Refusal
	switch {
	case errors.As(err, &refusal) && refusal.Temporary:
		return nil, fmt.Errorf("server %s cannot take the join now: %s", server, refusal.Message)
	case errors.As(err, &refusal):
		return nil, &joinRefusedError{msg: refusal.Message}
	case err != nil:
		return nil, fmt.Errorf("joining through %s: %w", server, err)
	}
	// Key first: a certificate on disk always has its key beside it.
	if err := fsutil.WriteFileSync(filepath.Join(id.dataDir, keyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("edge: saving the agent key: %w", err)
	}
	if err := fsutil.WriteFileSync(filepath.Join(id.dataDir, certFile), certPEM, 0o600); err != nil {
		return nil, fmt.Errorf("edge: saving the agent certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	l.log.Info("joined the cluster", "server", server, "node_id", id.nodeID)
	return &cert, nil
}
