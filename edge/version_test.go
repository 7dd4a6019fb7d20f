package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// testCA issues the certificates of a fake cluster.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pin() string {
	sum := sha256.Sum256(ca.cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// issue returns a certificate for name with the CA in its chain, and its
// key as PEM.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}, certPEM, keyPEM
}

// An agent whose servers all speak another protocol version stops, with
// an error naming both sides' versions, instead of retrying forever.
func TestAgentStopsWithoutACommonVersion(t *testing.T) {
	ca := newTestCA(t)
	serverCert, _, _ := ca.issue(t, "server.strata", x509.ExtKeyUsageServerAuth)
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}, NextProtos: []string{wire.ALPN},
		ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13}, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The fake server speaks version 99 only, and says so.
	served := make(chan wire.Register, 1)
	go func() {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		st, err := conn.AcceptStream(context.Background())
		if err != nil {
			return
		}
		var reg wire.Register
		if wire.Expect(st, wire.TypeRegister, &reg) != nil {
			return
		}
		served <- reg
		_, nerr := wire.Negotiate(reg.Versions, []int{99})
		vm, _ := nerr.(*wire.VersionMismatch)
		wire.Write(st, wire.TypeError, wire.Error{Message: nerr.Error(), Versions: vm})
		st.Close()
		<-conn.Context().Done()
	}()

	// The agent joined before: it has its certificate.
	dir := t.TempDir()
	_, certPEM, keyPEM := ca.issue(t, "node", x509.ExtKeyUsageClientAuth)
	os.WriteFile(filepath.Join(dir, certFile), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, keyFile), keyPEM, 0o600)
	a, err := New(context.Background(), Config{Servers: []string{ln.Addr().String()}, CAPin: ca.pin(), DataDir: dir, NodeName: "t",
		DockerHost: "unix://" + dir + "/no-docker.sock", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = a.Run(ctx)
	var speaks []string
	for _, v := range wire.Versions() {
		speaks = append(speaks, fmt.Sprint(v))
	}
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the agent speaks %s, the server speaks 99", strings.Join(speaks, ", "))) {
		t.Fatalf("Run = %v, want it to stop naming both sides' versions", err)
	}
	if reg := <-served; len(reg.Versions) == 0 || reg.Versions[0] != wire.Version {
		t.Fatalf("the agent registered with versions %v", reg.Versions)
	}
	select {
	case <-a.Registered():
		t.Fatal("a refused agent counts as registered")
	default:
	}
}
