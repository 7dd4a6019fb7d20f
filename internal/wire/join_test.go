package wire

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

func makeCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func makeLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestVerifyPinned(t *testing.T) {
	ca, caKey := makeCA(t, "cluster")
	other, otherKey := makeCA(t, "other")
	pin := sha256.Sum256(ca.Raw)

	if err := VerifyPinned([][]byte{makeLeaf(t, ca, caKey), ca.Raw}, pin[:]); err != nil {
		t.Fatalf("chain from the pinned CA refused: %v", err)
	}
	err := VerifyPinned([][]byte{makeLeaf(t, other, otherKey), other.Raw}, pin[:])
	if err == nil || !strings.Contains(err.Error(), "pinned cluster CA") {
		t.Fatalf("chain from another CA: %v, want refusal naming the pin", err)
	}
	// A leaf not signed by the pinned CA, even if the CA is sent along.
	err = VerifyPinned([][]byte{makeLeaf(t, other, otherKey), ca.Raw}, pin[:])
	if err == nil {
		t.Fatal("leaf signed by another CA accepted because the pinned CA was in the chain")
	}
	if err := VerifyPinned(nil, pin[:]); err == nil {
		t.Fatal("empty chain accepted")
	}
	for _, bad := range []string{"", "sha256:xyz", "md5:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("a", 10)} {
		if _, err := ParsePin(bad); err == nil {
			t.Errorf("ParsePin(%q) accepted", bad)
		}
	}
}
