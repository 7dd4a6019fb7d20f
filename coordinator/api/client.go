package api

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/spec"
)

// Client calls a Strata cluster's HTTP API. It knows one or several
// servers (Addresses) and moves to the next when one cannot answer:
// see do for what it retries.
type Client struct {
	// Address is the server the client asks first, e.g.
	// http://127.0.0.1:4700; Addresses, when set, are all the servers it
	// may ask (Address among them).
	Address   string
	Addresses []string
	HTTP      *http.Client
	// Token is the ACL token's secret, sent as X-Strata-Token ("": none).
	Token string
	// RetryFor bounds how long a call keeps retrying on other servers and
	// through an election (0: DefaultRetryFor; negative: never retry).
	RetryFor time.Duration

	next atomic.Int32 // index in addrs() of the server that answered last
}

// NotAppliedHeader marks a 503 whose write the server refused before
// proposing it: the client sends any such write again.
const NotAppliedHeader = structs.NotAppliedHeader

// DefaultRetryFor is how long a call retries by default: longer than a
// leader election on a healthy network, short enough for a person
// waiting on the command line.
const DefaultRetryFor = 10 * time.Second

// NewClient returns a client for address ("host:port" or a URL), or for
// several separated by commas ("a:4700,b:4700,c:4700", as STRATA_ADDR).
func NewClient(address string) *Client {
	addrs := splitAddresses(address, false)
	return &Client{Address: addrs[0], Addresses: addrs, HTTP: &http.Client{}}
}

// splitAddresses splits a comma-separated address list and gives each a
// scheme (https when secure). It never returns an empty list.
func splitAddresses(list string, secure bool) []string {
	var out []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			if secure {
				a = "https://" + a
			} else {
				a = "http://" + a
			}
		}
		out = append(out, strings.TrimRight(a, "/"))
	}
	if len(out) == 0 {
		out = []string{strings.TrimRight(list, "/")}
	}
	return out
}

func (c *Client) addrs() []string {
	if len(c.Addresses) > 0 {
		return c.Addresses
	}
	return []string{c.Address}
}

// StatusError is a non-2xx answer from the API.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// sendOnce sends a request to the server at base with the client's token.
// sent reports whether the request may have reached the server (false
// when the connection could not even be opened).
func (c *Client) sendOnce(ctx context.Context, base, method, path string, body []byte) (resp *http.Response, sent bool, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, false, err
	}
	if c.Token != "" {
		req.Header.Set("X-Strata-Token", c.Token)
	}
	resp, err = c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		var unknownCA x509.UnknownAuthorityError
		var badHost x509.HostnameError
		var op *net.OpError
		sent = !(errors.As(err, &op) && op.Op == "dial")
		switch {
		case errors.As(err, &unknownCA), errors.As(err, &badHost):
			return nil, false, fmt.Errorf("the Strata API at %s presented a certificate this client does not trust (give the CA with -ca-cert or STRATA_CACERT, or its pin with -ca-pin or STRATA_CAPIN): %w", base, err)
		case errors.As(err, &ue) && ctx.Err() == nil:
			return nil, sent, &unreachableError{addr: base, err: ue.Err}
		}
		return nil, sent, err
	}
	return resp, true, nil
}

// unreachableError is a server that could not be asked, or did not
// answer.
type unreachableError struct {
	addr string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Strata API at %s (is `strata dev` or a server running? set -address or STRATA_ADDR): %v", e.addr, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// send sends a request, moving to the next server and backing off as do
// says; the caller closes the answer's body.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	return c.sendRetry(ctx, method, path, body, method == http.MethodGet)
}

// sendRetry is the client's one way to the servers. It tries the server
// that answered last, then the others in turn, then again after an
// exponential backoff (50 ms doubling to 1 s), until RetryFor has passed:
//   - a server that cannot be connected to is skipped for every call: the
//     request never left (when none of them can be, the call fails at
//     once: no server is up);
//   - a 503 the server marks NotAppliedHeader (it refused a write before
//     proposing it: no leader, not the leader) is retried for any call;
//   - another 503 (a leader lost while committing, a server still
//     catching up) and a connection lost after sending are retried only
//     for an idempotent call: a read, or a write that does the same when
//     applied twice (a job registered with the same spec, without
//     -check-index). A write that may have been applied is never sent
//     again otherwise: the server's answer or the error says so.
func (c *Client) sendRetry(ctx context.Context, method, path string, body io.Reader, idempotent bool) (*http.Response, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = io.ReadAll(body); err != nil {
			return nil, err
		}
	}
	addrs := c.addrs()
	limit := c.RetryFor
	if limit == 0 {
		limit = DefaultRetryFor
	}
	deadline := time.Now().Add(limit)
	backoff := 50 * time.Millisecond
	first := int(c.next.Load())
	refused := 0 // servers of this pass that could not be connected to
	for attempt := 0; ; attempt++ {
		if attempt%len(addrs) == 0 {
			refused = 0
		}
		i := (first + attempt) % len(addrs)
		resp, sent, err := c.sendOnce(ctx, addrs[i], method, path, raw)
		retry := false
		switch {
		case err == nil && resp.StatusCode == http.StatusServiceUnavailable:
			// The server says whether a refused write was certainly not
			// applied (no leader, not the leader): then any call may go
			// again.
			retry = idempotent || resp.Header.Get(NotAppliedHeader) == "true"
		case err == nil:
			c.next.Store(int32(i))
			return resp, nil
		case ctx.Err() != nil:
			return nil, err
		case !sent:
			refused++
			// When no server of a pass could be connected to, none is
			// up: that is not an election, and waiting would not help.
			retry = refused < len(addrs)
		default:
			var ue *unreachableError
			retry = idempotent && errors.As(err, &ue)
			if !retry && errors.As(err, &ue) {
				err = fmt.Errorf("%w; the request may have been applied, so it was not sent again", err)
			}
		}
		endOfPass := (attempt+1)%len(addrs) == 0
		wait := min(backoff, time.Until(deadline))
		if !retry || limit < 0 || (endOfPass && wait <= 0) {
			if resp != nil {
				return resp, nil // the last server's own answer
			}
			if retry {
				err = fmt.Errorf("%w (retried on %d servers for %s)", err, len(addrs), limit)
			}
			return nil, err
		}
		if resp != nil {
			resp.Body.Close() // a retried 503: the next answer is wanted
		}
		if !endOfPass {
			continue // the next server at once
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
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

// do calls the API and decodes a 2xx answer into out; a read is
// retried on other servers (sendRetry), a write only if it was not sent.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) (uint64, error) {
	return c.doRetry(ctx, method, path, body, out, method == http.MethodGet)
}

// doRetry is do for a call the caller knows to be idempotent or not.
func (c *Client) doRetry(ctx context.Context, method, path string, body io.Reader, out any, idempotent bool) (uint64, error) {
	resp, err := c.sendRetry(ctx, method, path, body, idempotent)
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
	// Registering the same spec twice changes nothing the second time:
	// retried through an election like a read.
	_, err = c.doRetry(ctx, http.MethodPut, "/v1/jobs", bytes.NewReader(body), &r, true)
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
