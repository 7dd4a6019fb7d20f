package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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
func (a *Agent) join(ctx context.Context, server string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: a.nodeID},
	}, key)
	if err != nil {
		return nil, err
	}
	tc, pinErr := a.tlsConfig(nil)
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
	if err := wire.Write(st, wire.TypeJoin, wire.Join{Token: a.cfg.JoinToken, NodeID: a.nodeID, Name: a.cfg.NodeName, CSR: csr}); err != nil {
		return nil, err
	}
	st.SetReadDeadline(time.Now().Add(30 * time.Second))
	t, payload, err := wire.Read(st)
	if err != nil {
		return nil, fmt.Errorf("waiting for Joined from %s: %w", server, err)
	}
	switch t {
	case wire.TypeError:
		var e wire.Error
		wire.Decode(t, payload, &e)
		if e.Temporary {
			return nil, fmt.Errorf("server %s cannot take the join now: %s", server, e.Message)
		}
		return nil, &joinRefusedError{msg: e.Message}
	case wire.TypeJoined:
	default:
		return nil, fmt.Errorf("expected Joined from %s, got %s", server, t)
	}
	var j wire.Joined
	if err := wire.Decode(t, payload, &j); err != nil {
		return nil, err
	}
	block, _ := pem.Decode(j.CertPEM)
	if block == nil {
		return nil, fmt.Errorf("server %s sent no PEM certificate", server)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("server %s sent a bad certificate: %w", server, err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) || leaf.Subject.CommonName != a.nodeID {
		return nil, fmt.Errorf("server %s sent a certificate that is not for this agent's key and node ID", server)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	// Key first: a certificate on disk always has its key beside it.
	if err := fsutil.WriteFileSync(filepath.Join(a.cfg.DataDir, keyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("edge: saving the agent key: %w", err)
	}
	if err := fsutil.WriteFileSync(filepath.Join(a.cfg.DataDir, certFile), j.CertPEM, 0o600); err != nil {
		return nil, fmt.Errorf("edge: saving the agent certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(j.CertPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	a.log.Info("joined the cluster", "server", server, "node_id", a.nodeID, "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
	return &cert, nil
}
