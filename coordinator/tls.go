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
	"sync"
	"time"

	"github.com/strata-run/strata/coordinator/state"
)

// The cluster CA lives in the replicated state: the first leader creates
// it and commits it through Raft, so every server issues its agent
// endpoint certificate from the same CA and agents pin one fingerprint
// for the whole cluster. (Consul keeps its Connect CA in Raft the same
// way; the key is as protected as the servers' data dirs.)

// errNoCA: no leader has created the cluster CA yet.
var errNoCA = errors.New("coordinator: the cluster CA does not exist yet (no leader has been elected)")

// newClusterCA generates a CA key and self-signed certificate.
func newClusterCA() (*state.ClusterCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &state.ClusterCA{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// parseCA reads the CA's certificate and key.
func parseCA(ca *state.ClusterCA) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(ca.CertPEM)
	if block == nil {
		return nil, nil, errors.New("cluster CA: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster CA certificate: %w", err)
	}
	kb, _ := pem.Decode(ca.KeyPEM)
	if kb == nil {
		return nil, nil, errors.New("cluster CA: no PEM key")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster CA key: %w", err)
	}
	return cert, key, nil
}

// caPin is "sha256:<hex>" of the CA certificate, which agents pin.
func caPin(ca *state.ClusterCA) string {
	block, _ := pem.Decode(ca.CertPEM)
	if block == nil {
		return ""
	}
	sum := sha256.Sum256(block.Bytes)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// serverCerts issues a server certificate from the cluster CA in the
// state, once per CA: for the agent endpoint (server.strata, loopback),
// or for the HTTP API with its host names too (Server.HTTPTLSConfig).
type serverCerts struct {
	store *state.Store
	hosts []string // names and IPs besides server.strata and loopback
	mu    sync.Mutex
	pin   string
	cert  *tls.Certificate
}

// get is the endpoint's tls.Config.GetCertificate.
func (c *serverCerts) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	ca, err := c.store.CA()
	if err != nil {
		return nil, err
	}
	if ca == nil {
		return nil, errNoCA
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && c.pin == caPin(ca) {
		return c.cert, nil
	}
	caCert, caKey, err := parseCA(ca)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
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
	for _, h := range c.hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	c.cert = &tls.Certificate{Certificate: [][]byte{der, caCert.Raw}, PrivateKey: key}
	c.pin = caPin(ca)
	return c.cert, nil
}

// ensureCA is a leader duty: create and commit the cluster CA if the
// cluster has none.
func (c *serverCerts) ensureCA(apply applyFunc) error {
	if ca, err := c.store.CA(); err != nil || ca != nil {
		return err
	}
	ca, err := newClusterCA()
	if err != nil {
		return err
	}
	_, _, err = apply(&state.CASet{CA: *ca})
	return err
}

// caPinOf is the cluster CA's pin, "" until a leader has created the CA.
func caPinOf(store *state.Store) string {
	if ca, err := store.CA(); err == nil && ca != nil {
		return caPin(ca)
	}
	return ""
}

func randSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
