package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// quicPair returns a client connection to a QUIC listener whose accepted
// streams are handed to serve, one at a time.
func quicPair(t *testing.T, serve func(*quic.Stream)) *quic.Conn {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{wire.ALPN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		defer conn.CloseWithError(0, "")
		for {
			st, err := conn.AcceptStream(ctx)
			if err != nil {
				return
			}
			serve(st)
		}
	}()
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	conn, err := quic.DialAddr(dctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{wire.ALPN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

// A server that predates the catalog stream resets it (code 1, as it does
// any stream it cannot read): the agent takes that as "no replication
// here" and does not retry; a current server's reset on a failure (code
// 2) is retried.
func TestReplicaWatchTellsAnOldServerFromAFailure(t *testing.T) {
	for _, tc := range []struct {
		code    quic.StreamErrorCode
		refused bool
	}{{1, true}, {catalogRetryCode, false}} {
		conn := quicPair(t, func(st *quic.Stream) {
			wire.Read(st) // CatalogWatch
			st.CancelWrite(tc.code)
		})
		l := openTestState(t, t.TempDir())
		r := newReplica(l, "edge-1", testLogger(t))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.watchStream(ctx, conn, 0)
		cancel()
		l.close()
		if got := errors.Is(err, errCatalogRefused); got != tc.refused {
			t.Errorf("reset with code %d: %v; refused = %v, want %v", tc.code, err, got, tc.refused)
		}
	}
}
