package api

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/spec"
)

// Client calls one Strata server's HTTP API.
type Client struct {
	Address string // e.g. http://127.0.0.1:4700
	HTTP    *http.Client
	// Token is the ACL token's secret, sent as X-Strata-Token ("": none).
	Token string
}

// NewClient returns a client for address ("host:port" or a URL).
func NewClient(address string) *Client {
	if !strings.Contains(address, "://") {
		address = "http://" + address
	}
	return &Client{Address: strings.TrimRight(address, "/"), HTTP: &http.Client{}}
}

// StatusError is a non-2xx answer from the API.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// send sends a request with the client's token.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Address+path, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("X-Strata-Token", c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		var unknownCA x509.UnknownAuthorityError
		var badHost x509.HostnameError
		switch {
		case errors.As(err, &unknownCA), errors.As(err, &badHost):
			return nil, fmt.Errorf("the Strata API at %s presented a certificate this client does not trust (give the CA with -ca-cert or STRATA_CACERT, or its pin with -ca-pin or STRATA_CAPIN): %w", c.Address, err)
		case errors.As(err, &ue) && ctx.Err() == nil:
			return nil, fmt.Errorf("cannot reach the Strata API at %s (is `strata dev` or a server running? set -address or STRATA_ADDR): %w", c.Address, ue.Err)
		}
		return nil, err
	}
	return resp, nil
}

// statusError is a non-2xx answer's error: the API's message, or a hint
// when a plain HTTP request reached an HTTPS server.
func (c *Client) statusError(resp *http.Response, raw []byte, method, path string) error {
	var e structs.APIError
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return &StatusError{Status: resp.StatusCode, Message: e.Error}
	}
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(string(raw), "HTTP request to an HTTPS server") {
		return &StatusError{Status: resp.StatusCode, Message: fmt.Sprintf("the Strata API at %s serves HTTPS only: use an https:// address, with -ca-cert or -ca-pin", c.Address)}
	}
	return &StatusError{Status: resp.StatusCode, Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status)}
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) (uint64, error) {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Strata-Index"), 10, 64)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		return idx, c.statusError(resp, raw, method, path)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return 0, fmt.Errorf("decoding %s %s: %w", method, path, err)
		}
	}
	return idx, nil
}

// Leader returns the leader's address.
func (c *Client) Leader(ctx context.Context) (string, error) {
	var s string
	_, err := c.do(ctx, http.MethodGet, "/v1/status/leader", nil, &s)
	return s, err
}

// HeartbeatStats returns what the server saw of agents' heartbeats while
// it led.
func (c *Client) HeartbeatStats(ctx context.Context) (*structs.HeartbeatStats, error) {
	var s structs.HeartbeatStats
	_, err := c.do(ctx, http.MethodGet, "/v1/status/heartbeats", nil, &s)
	return &s, err
}

// PushModule uploads a module version.
func (c *Client) PushModule(ctx context.Context, name, version string, b []byte) (*structs.Module, error) {
	var m structs.Module
	_, err := c.do(ctx, http.MethodPut, "/v1/module/"+url.PathEscape(name)+"/"+url.PathEscape(version), bytes.NewReader(b), &m)
	return &m, err
}

// Modules lists module versions.
func (c *Client) Modules(ctx context.Context) ([]*structs.Module, error) {
	var ms []*structs.Module
	_, err := c.do(ctx, http.MethodGet, "/v1/modules", nil, &ms)
	return ms, err
}

// RegisterJob submits a job.
func (c *Client) RegisterJob(ctx context.Context, job *spec.Job) (*structs.JobRegisterResponse, error) {
	body, err := json.Marshal(structs.JobRegisterRequest{Job: job})
	if err != nil {
		return nil, err
	}
	var r structs.JobRegisterResponse
	_, err = c.do(ctx, http.MethodPut, "/v1/jobs", bytes.NewReader(body), &r)
	return &r, err
}

// Jobs lists jobs.
func (c *Client) Jobs(ctx context.Context) ([]structs.JobListEntry, error) {
	var js []structs.JobListEntry
	_, err := c.do(ctx, http.MethodGet, "/v1/jobs", nil, &js)
	return js, err
}

// JobAllocs returns a job's allocations; with index > 0 it blocks until
// the state passes index or wait elapses.
func (c *Client) JobAllocs(ctx context.Context, id string, index uint64, wait time.Duration) (*structs.JobAllocsResponse, uint64, error) {
	path := "/v1/job/" + url.PathEscape(id) + "/allocations"
	if index > 0 {
		path += fmt.Sprintf("?index=%d&wait=%s", index, wait)
	}
	var r structs.JobAllocsResponse
	idx, err := c.do(ctx, http.MethodGet, path, nil, &r)
	return &r, idx, err
}

// Allocs lists the allocations whose ID starts with prefix.
func (c *Client) Allocs(ctx context.Context, prefix string) ([]*structs.Alloc, error) {
	var as []*structs.Alloc
	_, err := c.do(ctx, http.MethodGet, "/v1/allocations?prefix="+url.QueryEscape(prefix), nil, &as)
	return as, err
}

// Alloc returns an allocation by its full ID.
func (c *Client) Alloc(ctx context.Context, id string) (*structs.Alloc, error) {
	var a structs.Alloc
	_, err := c.do(ctx, http.MethodGet, "/v1/allocation/"+url.PathEscape(id), nil, &a)
	return &a, err
}

// AllocLogs opens a task's log (see Server.AllocLogs); close the reader
// to stop a followed log.
func (c *Client) AllocLogs(ctx context.Context, req structs.LogRequest) (io.ReadCloser, error) {
	q := url.Values{}
	if req.Task != "" {
		q.Set("task", req.Task)
	}
	if req.Type != "" {
		q.Set("type", req.Type)
	}
	if req.Follow {
		q.Set("follow", "true")
	}
	if req.TailLines > 0 {
		q.Set("tail", strconv.Itoa(req.TailLines))
	}
	path := "/v1/client/allocation/" + url.PathEscape(req.AllocID) + "/logs?" + q.Encode()
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, c.statusError(resp, raw, http.MethodGet, path)
	}
	return resp.Body, nil
}

// StopJob stops a job.
func (c *Client) StopJob(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/job/"+url.PathEscape(id), nil, nil)
	return err
}

// Nodes lists nodes.
func (c *Client) Nodes(ctx context.Context) ([]*structs.NodeRecord, error) {
	var ns []*structs.NodeRecord
	_, err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, &ns)
	return ns, err
}

// Service returns a service's endpoints.
func (c *Client) Service(ctx context.Context, name string) ([]registry.Endpoint, error) {
	var eps []registry.Endpoint
	_, err := c.do(ctx, http.MethodGet, "/v1/service/"+url.PathEscape(name), nil, &eps)
	return eps, err
}

// RaftPeers lists the Raft configuration.
func (c *Client) RaftPeers(ctx context.Context) ([]structs.Peer, error) {
	var ps []structs.Peer
	_, err := c.do(ctx, http.MethodGet, "/v1/operator/raft/configuration", nil, &ps)
	return ps, err
}

// RemoveRaftPeer removes a server by ID or Raft address.
func (c *Client) RemoveRaftPeer(ctx context.Context, idOrAddr string) error {
	key := "id"
	if strings.Contains(idOrAddr, ":") {
		key = "address"
	}
	_, err := c.do(ctx, http.MethodDelete, "/v1/operator/raft/peer?"+key+"="+url.QueryEscape(idOrAddr), nil, nil)
	return err
}

// DrainNode starts or ends a node drain.
func (c *Client) DrainNode(ctx context.Context, node string, enable bool, deadline time.Duration) (*structs.NodeRecord, error) {
	req := structs.DrainRequest{Enable: enable}
	if deadline > 0 {
		req.Deadline = deadline.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var n structs.NodeRecord
	_, err = c.do(ctx, http.MethodPut, "/v1/node/"+url.PathEscape(node)+"/drain", bytes.NewReader(body), &n)
	return &n, err
}

// CreateJoinToken creates an agent join token; its Secret is shown only
// in this answer.
func (c *Client) CreateJoinToken(ctx context.Context, req structs.JoinTokenRequest) (*structs.NewJoinToken, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out structs.NewJoinToken
	_, err = c.do(ctx, http.MethodPost, "/v1/agent/tokens", bytes.NewReader(b), &out)
	return &out, err
}

// JoinTokens lists the join tokens (without secrets).
func (c *Client) JoinTokens(ctx context.Context) ([]structs.JoinToken, error) {
	var out []structs.JoinToken
	_, err := c.do(ctx, http.MethodGet, "/v1/agent/tokens", nil, &out)
	return out, err
}

// RevokeJoinToken deletes a join token.
func (c *Client) RevokeJoinToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/agent/token/"+url.PathEscape(id), nil, nil)
	return err
}
