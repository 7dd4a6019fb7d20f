package coordinator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-run/strata/internal/fsutil"
)

// clusterTLS is the cluster's certificate authority and this server's
// certificate for the agent endpoint. Agents pin the CA by its SHA-256.
//
// The CA is kept in the server's data dir; sharing it across servers (and
// agent client certificates signed by it) comes with multi-server
// clusters and join tokens.
type clusterTLS struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	server tls.Certificate
}

func loadClusterTLS(dir string) (*clusterTLS, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	c := &clusterTLS{}
	certPEM, err := os.ReadFile(certPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := c.generateCA(certPath, keyPath); err != nil {
			return nil, fmt.Errorf("coordinator: create cluster CA: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("coordinator: read %s: %w", certPath, err)
	default:
		if err := c.parseCA(certPEM, keyPath); err != nil {
			return nil, fmt.Errorf("coordinator: cluster CA in %s: %w", dir, err)
		}
	}
	if err := c.issueServerCert(); err != nil {
		return nil, fmt.Errorf("coordinator: server certificate: %w", err)
	}
	return c, nil
}

func (c *clusterTLS) generateCA(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "Strata cluster CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileSync(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := fsutil.WriteFileSync(certPath, certPEM, 0o644); err != nil {
		return err
	}
	return c.parseCA(certPEM, keyPath)
}

func (c *clusterTLS) parseCA(certPEM []byte, keyPath string) error {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return errors.New("ca.pem holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("ca.pem: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return errors.New("ca-key.pem holds no PEM key")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return fmt.Errorf("ca-key.pem: %w", err)
	}
	c.caCert, c.caKey, c.caPEM = cert, key, certPEM
	return nil
}

// issueServerCert signs a fresh short-lived certificate for this process.
func (c *clusterTLS) issueServerCert() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: "server.strata"},
		DNSNames:     []string{"server.strata", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &key.PublicKey, c.caKey)
	if err != nil {
		return err
	}
	c.server = tls.Certificate{Certificate: [][]byte{der, c.caCert.Raw}, PrivateKey: key}
	return nil
}

// pin is "sha256:<hex>" of the CA certificate's DER bytes.
func (c *clusterTLS) pin() string {
	sum := sha256.Sum256(c.caCert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func randSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
