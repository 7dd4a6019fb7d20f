package docker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/strata-run/strata/internal/docker"
)

// fakeEngine answers API version negotiation as a Docker Engine with the
// API range [min, max] does: /_ping names max in its Api-Version header,
// /version gives the range, and a versioned request outside the range is
// refused with HTTP 400 and the daemon's own words, /version included
// (as Docker 20.10 here does; Docker 29 refuses anything below 1.44 this
// way). It also lists containers (none), and
// records the path of every request it was sent.
type fakeEngine struct {
	engine, max, min string

	mu    sync.Mutex
	paths []string
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if r.URL.Path == "/_ping" {
		w.Header().Set("Api-Version", f.max)
		w.Header().Set("Ostype", "linux")
		w.Write([]byte("OK"))
		return
	}
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	ver, path, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v"), "/")
	switch {
	case !ok:
		reply(http.StatusNotFound, map[string]string{"message": "page not found"})
	case versions.LessThan(ver, f.min): // in plain text, as Docker 20.10 answers it
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version\n", ver, f.min)
	case versions.GreaterThan(ver, f.max):
		reply(http.StatusBadRequest, map[string]string{"message": fmt.Sprintf(
			"client version %s is too new. Maximum supported API version is %s", ver, f.max)})
	case path == "version":
		reply(http.StatusOK, map[string]string{"Version": f.engine, "ApiVersion": f.max, "MinAPIVersion": f.min, "Os": "linux", "Arch": "amd64"})
	case path == "containers/json" && r.Method == http.MethodGet:
		reply(http.StatusOK, []any{})
	default:
		reply(http.StatusNotFound, map[string]string{"message": "page not found"})
	}
}

func (f *fakeEngine) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

// The client settles on the API version each Engine speaks, within the
// official client's range, so the driver works with a current Docker as
// with the 20.10 its daemon tests run against: Docker 29, which refuses
// every version below 1.44 (the 1.41 Strata was pinned to), gets its own
// 1.52, and a request made after Negotiate uses it. An Engine outside
// the client's range, or a pinned version the Engine refuses (what the
// issue saw: 1.41 against Docker 29), fails Negotiate saying why, so the
// agent does not offer docker rather than fail every container.
func TestNegotiateWithEngines(t *testing.T) {
	for _, tc := range []struct {
		name, engine, max, min string
		pin                    string // DOCKER_API_VERSION
		want, err              string
	}{
		{name: "Docker 20.10", engine: "20.10.24", max: "1.41", min: "1.12", want: "1.41"},
		{name: "Docker 28", engine: "28.2.2", max: "1.50", min: "1.24", want: "1.50"},
		{name: "Docker 29", engine: "29.0.0", max: "1.52", min: "1.44", want: "1.52"},
		{name: "newer than the client", engine: "99.0.0", max: "1.99", min: "1.98",
			err: "docker: version of tcp://%s with API " + client.MaxAPIVersion + ": Error response from daemon: client version " +
				client.MaxAPIVersion + " is too old. Minimum supported API version is 1.98"},
		{name: "older than the client", engine: "18.09.9", max: "1.39", min: "1.12",
			err: "the minimum supported API version is " + client.MinAPIVersion},
		{name: "Docker 29 with the old pin", engine: "29.0.0", max: "1.52", min: "1.44", pin: "1.41",
			err: "docker: version of tcp://%s with API 1.41: Error response from daemon: client version 1.41 is too old. Minimum supported API version is 1.44"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEngine{engine: tc.engine, max: tc.max, min: tc.min}
			srv := httptest.NewServer(f)
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "http://")
			t.Setenv("DOCKER_API_VERSION", tc.pin)
			c, err := docker.New("tcp://" + addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			v, err := c.Negotiate(ctxT(t, 10*time.Second))
			if tc.err != "" {
				want := tc.err
				if strings.Contains(want, "%s") {
					want = fmt.Sprintf(want, addr)
				}
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Negotiate = %+v, %v; want an error with %q", v, err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Negotiated != tc.want || c.APIVersion() != tc.want || v.Version != tc.engine || v.MinAPIVersion != tc.min {
				t.Fatalf("Negotiate = %+v, client at %s; want %s", v, c.APIVersion(), tc.want)
			}
			if _, err := c.ContainerList(ctxT(t, 10*time.Second), "strata.node_id=n1"); err != nil {
				t.Fatalf("a request after negotiation: %v", err)
			}
			reqs := f.requests()
			if last := reqs[len(reqs)-1]; last != "GET /v"+tc.want+"/containers/json" {
				t.Fatalf("requests %q: want the list made with API %s", reqs, tc.want)
			}
		})
	}
}

// TLS to a tcp:// Engine is the official client's, from the environment
// the docker CLI reads: DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) and
// DOCKER_TLS_VERIFY. Against an Engine that requires a client certificate
// signed by its CA, the client with those files negotiates; one without
// them is refused.
func TestNegotiateOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	serverCert, serverKey := newCert(t, dir, "server", ca, caKey)
	newCert(t, dir, "client", ca, caKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv := httptest.NewUnstartedServer(&fakeEngine{engine: "29.0.0", max: "1.52", min: "1.44"})
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}},
		ClientCAs:    pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}
	srv.StartTLS()
	defer srv.Close()
	host := "tcp://" + strings.TrimPrefix(srv.URL, "https://")

	t.Setenv("DOCKER_API_VERSION", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	plain, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Negotiate(ctxT(t, 10*time.Second)); err == nil {
		t.Fatal("a client without TLS negotiated with an Engine that requires it")
	}

	// ca.pem, cert.pem, key.pem: the files DOCKER_CERT_PATH names.
	for from, to := range map[string]string{"ca.crt": "ca.pem", "client.crt": "cert.pem", "client.key": "key.pem"} {
		if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DOCKER_CERT_PATH", dir)
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	c, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Negotiate(ctxT(t, 10*time.Second))
	if err != nil || v.Negotiated != "1.52" {
		t.Fatalf("Negotiate over TLS = %+v, %v; want 1.52", v, err)
	}
}

// newCert writes name.crt and name.key in dir: a CA when parent is nil,
// else a certificate for 127.0.0.1 that parent signs.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for file, block := range map[string]*pem.Block{name + ".crt": {Type: "CERTIFICATE", Bytes: der}, name + ".key": {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
