package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/strata-run/strata/coordinator/structs"
)

// The ACL system's routes (/v1/acl, Nomad's paths).

// jsonBody encodes v for a request body.
func jsonBody(v any) (*bytes.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// ACLBootstrap creates the cluster's first management token; its
// SecretID is shown only in this answer. A second bootstrap is refused.
func (c *Client) ACLBootstrap(ctx context.Context) (*structs.ACLToken, error) {
	var t structs.ACLToken
	_, err := c.do(ctx, http.MethodPut, "/v1/acl/bootstrap", nil, &t)
	return &t, err
}

// ACLPolicies lists the policies, without their rules.
func (c *Client) ACLPolicies(ctx context.Context) ([]structs.ACLPolicyListStub, error) {
	var out []structs.ACLPolicyListStub
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/policies", nil, &out)
	return out, err
}

// ACLPolicy returns a policy with its rules.
func (c *Client) ACLPolicy(ctx context.Context, name string) (*structs.ACLPolicy, error) {
	var p structs.ACLPolicy
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/policy/"+url.PathEscape(name), nil, &p)
	return &p, err
}

// ApplyACLPolicy creates or replaces a policy.
func (c *Client) ApplyACLPolicy(ctx context.Context, p structs.ACLPolicy) (*structs.ACLPolicy, error) {
	body, err := jsonBody(p)
	if err != nil {
		return nil, err
	}
	var out structs.ACLPolicy
	_, err = c.do(ctx, http.MethodPut, "/v1/acl/policy/"+url.PathEscape(p.Name), body, &out)
	return &out, err
}

// DeleteACLPolicy deletes a policy.
func (c *Client) DeleteACLPolicy(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/acl/policy/"+url.PathEscape(name), nil, nil)
	return err
}

// CreateACLToken creates a token; its SecretID is shown only in this answer.
func (c *Client) CreateACLToken(ctx context.Context, req structs.ACLTokenRequest) (*structs.ACLToken, error) {
	body, err := jsonBody(req)
	if err != nil {
		return nil, err
	}
	var t structs.ACLToken
	_, err = c.do(ctx, http.MethodPut, "/v1/acl/token", body, &t)
	return &t, err
}

// ACLTokens lists the tokens (without secrets).
func (c *Client) ACLTokens(ctx context.Context) ([]structs.ACLToken, error) {
	var out []structs.ACLToken
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/tokens", nil, &out)
	return out, err
}

// ACLToken returns a token by accessor ID (without its secret).
func (c *Client) ACLToken(ctx context.Context, accessor string) (*structs.ACLToken, error) {
	var t structs.ACLToken
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/token/"+url.PathEscape(accessor), nil, &t)
	return &t, err
}

// ACLTokenSelf returns the client's own token.
func (c *Client) ACLTokenSelf(ctx context.Context) (*structs.ACLToken, error) {
	var t structs.ACLToken
	_, err := c.do(ctx, http.MethodGet, "/v1/acl/token/self", nil, &t)
	return &t, err
}

// DeleteACLToken deletes a token by accessor ID.
func (c *Client) DeleteACLToken(ctx context.Context, accessor string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/acl/token/"+url.PathEscape(accessor), nil, nil)
	return err
}
