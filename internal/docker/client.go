package docker

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Client is the official Engine client (github.com/moby/moby/client) of
// one daemon, with the calls the driver makes shaped as it makes them. It
// is safe for concurrent use. It has no timeouts of its own: every call
// takes a context, and the streaming ones (logs, wait, pull) last as long
// as it does.
type Client struct {
	api *client.Client
}

// New returns a client of the daemon at host: "unix:///path" or
// "tcp://host:port". An empty host means $DOCKER_HOST, and the official
// client's default (unix:///var/run/docker.sock) when that is empty too.
// The rest of the environment the docker CLI reads is honoured by the
// official client as it is there (client.FromEnv): DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH for TLS to a tcp:// daemon, and DOCKER_API_VERSION,
// which pins the API version and so turns negotiation off.
//
// New does not connect; Negotiate does.
func New(host string) (*Client, error) {
	opts := []client.Opt{client.FromEnv} // API version negotiation is the client's default
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	api, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: host %q: %w", host, err)
	}
	// The official client would also take npipe:// (Windows) and try any
	// other scheme as TCP; the agent runs where the Engine has a unix
	// socket or listens on TCP.
	if u, err := client.ParseHostURL(api.DaemonHost()); err != nil || (u.Scheme != "unix" && u.Scheme != "tcp") {
		api.Close()
		return nil, fmt.Errorf("docker: host %q: only unix:// and tcp:// are supported", api.DaemonHost())
	}
	return &Client{api: api}, nil
}

// Host is the daemon address the client was made for.
func (c *Client) Host() string { return c.api.DaemonHost() }

// APIVersion is the Engine API version the client makes its requests
// with: the one Negotiate settled on (or DOCKER_API_VERSION's).
func (c *Client) APIVersion() string { return c.api.ClientVersion() }

// API is the official client itself, for what this package does not
// wrap (the tests' image build).
func (c *Client) API() *client.Client { return c.api }

// Close releases the client's idle connections.
func (c *Client) Close() error { return c.api.Close() }

// Version is what Negotiate learned of the daemon.
type Version struct {
	Version       string // the Engine's, "20.10.24"
	Negotiated    string // the API version every request is made with
	APIVersion    string // the highest API version the daemon speaks
	MinAPIVersion string // the lowest it accepts
	Os, Arch      string
}

// Negotiate pings the daemon, which settles the API version every later
// request uses (the official client's negotiation: the lower of the
// daemon's highest version and client.MaxAPIVersion, refused below
// client.MinAPIVersion), then asks the daemon its version with it. An
// Engine that does not accept that version (its minimum is above what
// this client speaks, or DOCKER_API_VERSION pins one it refuses) refuses
// that request in its own words, which the error carries: the agent
// learns it at start, not at its first container.
func (c *Client) Negotiate(ctx context.Context) (Version, error) {
	if _, err := c.api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return Version{}, fmt.Errorf("docker: ping %s: %w", c.Host(), err)
	}
	sv, err := c.api.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return Version{}, fmt.Errorf("docker: version of %s with API %s: %w", c.Host(), c.api.ClientVersion(), err)
	}
	return Version{Version: sv.Version, Negotiated: c.api.ClientVersion(), APIVersion: sv.APIVersion,
		MinAPIVersion: sv.MinAPIVersion, Os: sv.Os, Arch: sv.Arch}, nil
}
