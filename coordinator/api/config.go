package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// Config configures a Client.
type Config struct {
	// Address is "host:port" or a URL (http:// or https://); "host:port"
	// is http:// unless a CA is given, then https://. Several servers are
	// separated by commas ("a:4700,b:4700,c:4700", as STRATA_ADDR): the
	// client asks the first and moves on when one cannot answer.
	Address string
	// RetryFor bounds a call's retries on other servers and through an
	// election (0: DefaultRetryFor; negative: none).
	RetryFor time.Duration
	// Token is the ACL token's secret, sent as X-Strata-Token.
	Token string
	// CACertPEM verifies an HTTPS server: the CA (PEM) that signed its
	// certificate, as with -ca-cert; host names are checked.
	CACertPEM []byte
	// CAPin verifies an HTTPS server by the SHA-256 of the cluster CA
	// certificate ("sha256:<hex>", as `strata server` prints it): the
	// server's certificate must chain to that CA. No host name is
	// checked: the pin names the cluster.
	CAPin string
}

// New returns a client for cfg; a CA that does not parse or a malformed
// pin is an error.
func New(cfg Config) (*Client, error) {
	secure := len(cfg.CACertPEM) > 0 || cfg.CAPin != ""
	addrs := splitAddresses(cfg.Address, secure)
	c := &Client{Address: addrs[0], Addresses: addrs, HTTP: &http.Client{}, Token: cfg.Token, RetryFor: cfg.RetryFor}
	if !secure {
		return c, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CACertPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CACertPEM) {
			return nil, errors.New("api: the CA certificate has no PEM certificate in it")
		}
		tc.RootCAs = pool
	}
	if cfg.CAPin != "" {
		pin, err := wire.ParsePin(cfg.CAPin)
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		if tc.RootCAs == nil {
			// The pin replaces the usual checks: verified below.
			tc.InsecureSkipVerify = true
		}
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			return wire.VerifyPinned(raw, pin)
		}
	}
	c.HTTP.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	return c, nil
}
