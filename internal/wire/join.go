package wire

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
	"io"
	"strings"
)

// The agent's side of the link's security, shared by the agent (edge),
// the simulated agents of strata-bench and the coordinator's tests: the
// CA pin that identifies servers, and the Join exchange that turns a
// token into a client certificate.

// ParsePin parses "sha256:<64 hex digits>", the pin of the cluster CA.
func ParsePin(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(s, "sha256:")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("CA pin %q must be sha256:<64 hex digits>", s)
	}
	return b, nil
}

// VerifyPinned checks a server's certificate chain (as TLS hands it to
// VerifyPeerCertificate): its leaf must be a server certificate signed
// by a CA certificate of the chain whose SHA-256 is pin.
func VerifyPinned(raw [][]byte, pin []byte) error {
	if len(raw) == 0 {
		return errors.New("server sent no certificate")
	}
	var ca *x509.Certificate
	for _, r := range raw[1:] {
		if sum := sha256.Sum256(r); string(sum[:]) == string(pin) {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			ca = c
		}
	}
	if ca == nil {
		return fmt.Errorf("server certificate is not from the pinned cluster CA sha256:%s (wrong -ca-pin, or the wrong cluster)", hex.EncodeToString(pin))
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// RequestCertificate runs the agent's side of a join on rw, the first
// stream of a connection made without a client certificate: it makes a
// key, sends Join with a certificate request for nodeID, and returns the
// certificate the server signed, with the key, as PEM. A server's
// refusal is a *Refusal (Temporary says whether to retry). The caller
// bounds the exchange (a stream deadline).
func RequestCertificate(rw io.ReadWriter, token, nodeID, name string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeID}}, key)
	if err != nil {
		return nil, nil, err
	}
	if err := Write(rw, TypeJoin, Join{Token: token, NodeID: nodeID, Name: name, CSR: csr}); err != nil {
		return nil, nil, err
	}
	var j Joined
	if err := Expect(rw, TypeJoined, &j); err != nil {
		return nil, nil, fmt.Errorf("waiting for Joined: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(j.CertPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("the server sent a certificate that is not for this key: %w", err)
	}
	if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err != nil || leaf.Subject.CommonName != nodeID {
		return nil, nil, fmt.Errorf("the server sent a certificate that is not for node %s", nodeID)
	}
	return j.CertPEM, keyPEM, nil
}
