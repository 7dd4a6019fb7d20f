package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/acl"
	"github.com/strata-run/strata/coordinator/structs"
)

// plannedRoutes are entries of routeNeeds for routes other branches are
// adding (metrics, events, UI):
// the table says what they need before they land.
var plannedRoutes = []string{}

// Every route has an entry in the table (Handle panics otherwise), and
// every entry is a route, or one another branch is adding.
func TestRouteTable(t *testing.T) {
	s := startTestServer(t)
	mux := s.http.handler().(*routeMux)
	if len(mux.patterns) < 30 {
		t.Fatalf("only %d routes registered", len(mux.patterns))
	}
	for pattern := range routeNeeds {
		if !slices.Contains(mux.patterns, pattern) && !slices.Contains(plannedRoutes, pattern) {
			t.Errorf("routeNeeds has %q, which is neither a route nor planned", pattern)
		}
	}
	for _, p := range plannedRoutes {
		if slices.Contains(mux.patterns, p) {
			t.Errorf("%q is registered now: remove it from plannedRoutes", p)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a route without an entry did not panic")
		}
	}()
	mux.HandleFunc("GET /v1/unlisted", func(http.ResponseWriter, *http.Request) {})
}

// aclFixture is a server with ACLs on, bootstrapped, with a read-only and
// a read-write client token.
type aclFixture struct {
	s                 *Server
	url               string
	management        *structs.ACLToken
	readTok, writeTok *structs.ACLToken
}

const (
	readRules = `namespace "default" { policy = "read" }
node     { policy = "read" }
agent    { policy = "read" }
operator { policy = "read" }`
	writeRules = `namespace "default" { policy = "write" }
node     { policy = "write" }
agent    { policy = "write" }
operator { policy = "write" }`
)

func startACLServer(t *testing.T) *aclFixture {
	t.Helper()
	s, err := New(Config{DataDir: t.TempDir(), Bootstrap: true, DevMode: true, ACLEnabled: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	waitLeading(t, s)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	f := &aclFixture{s: s, url: ts.URL}
	f.management = new(structs.ACLToken)
	if code, body := f.call(t, "", "PUT", "/v1/acl/bootstrap", nil, f.management); code != 200 {
		t.Fatalf("bootstrap: %d %s", code, body)
	}
	for name, rules := range map[string]string{"readers": readRules, "writers": writeRules} {
		if code, body := f.call(t, f.management.SecretID, "PUT", "/v1/acl/policy/"+name, structs.ACLPolicy{Rules: rules}, nil); code != 200 {
			t.Fatalf("policy %s: %d %s", name, code, body)
		}
	}
	f.readTok, f.writeTok = new(structs.ACLToken), new(structs.ACLToken)
	for tok, policy := range map[*structs.ACLToken]string{f.readTok: "readers", f.writeTok: "writers"} {
		if code, body := f.call(t, f.management.SecretID, "PUT", "/v1/acl/token", structs.ACLTokenRequest{Name: policy, Policies: []string{policy}}, tok); code != 200 {
			t.Fatalf("token %s: %d %s", policy, code, body)
		}
	}
	return f
}

// call sends a request with secret (none if ""), JSON-encoding in, and
// decodes a 2xx answer into out; an error answer's body is its message.
func (f *aclFixture) call(t *testing.T, secret, method, path string, in, out any) (int, string) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.url+path, body)
	if secret != "" {
		req.Header.Set("X-Strata-Token", secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		var e structs.APIError
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return resp.StatusCode, e.Error
		}
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

// Point 1 of issue 17: every route against an anonymous request, an
// unknown token, a read-only token, a read-write token and a management
// token. A denied request gets 403 naming what it needs and nothing
// else; an allowed one gets whatever its handler answers, never 403.
func TestACLEveryRouteEveryToken(t *testing.T) {
	f := startACLServer(t)
	mux := f.s.http.handler().(*routeMux)
	secrets := map[string]string{
		"anonymous": "", "unknown": "2b8e0e38-3c6f-4a44-9d0e-6ad1ef51e7a1",
		"read": f.readTok.SecretID, "write": f.writeTok.SecretID, "management": f.management.SecretID,
	}
	kinds := []string{"anonymous", "unknown", "read", "write", "management"}
	// wantAllowed is the table's meaning, written out independently of
	// package acl: read grants list-jobs, read-job and read levels; write
	// grants every capability and level; only management manages ACLs.
	wantAllowed := func(kind string, n acl.Need) bool {
		switch n.Scope {
		case acl.ScopeOpen:
			return true
		case acl.ScopeToken:
			return kind == "read" || kind == "write" || kind == "management"
		case acl.ScopeManagement:
			return kind == "management"
		}
		switch kind {
		case "management", "write":
			return true
		case "read":
			return n.What == acl.CapListJobs || n.What == acl.CapReadJob || n.What == acl.PolicyRead
		}
		return false
	}
	param := regexp.MustCompile(`\{[a-z]+\}`)
	leaks := []string{f.readTok.SecretID, f.writeTok.SecretID, f.management.SecretID,
		f.readTok.AccessorID, f.writeTok.AccessorID, f.management.AccessorID, hashSecret(f.readTok.SecretID)}
	n := 0
	for _, pattern := range mux.patterns {
		need := routeNeeds[pattern]
		method, path, _ := strings.Cut(pattern, " ")
		path = param.ReplaceAllStringFunc(path, func(p string) string {
			if pattern == "GET /v1/acl/policy/{name}" {
				return "readers" // the read token's own policy
			}
			return "x"
		})
		if pattern == "GET /v1/event/stream" {
			// The stream never ends: an unknown topic makes an allowed
			// request a 400 from the handler, after the ACL check.
			path += "?topic=x"
		}
		for _, kind := range kinds {
			t.Run(pattern+"/"+kind, func(t *testing.T) {
				n++
				var in any
				if method != "GET" && method != "DELETE" {
					in = map[string]any{}
				}
				code, body := f.call(t, secrets[kind], method, path, in, nil)
				want := wantAllowed(kind, need)
				if pattern == "GET /v1/acl/policy/{name}" && kind == "write" {
					want = false // a token reads the policies it names, not others
				}
				if want {
					if code == http.StatusForbidden {
						t.Fatalf("%s token: 403, want it allowed: %s", kind, body)
					}
					return
				}
				if code != http.StatusForbidden {
					t.Fatalf("%s token: %d, want 403: %s", kind, code, body)
				}
				switch kind {
				case "unknown":
					if !strings.Contains(body, "ACL token not found") || !strings.Contains(body, need.String()) {
						t.Errorf("unknown token's 403 = %s", body)
					}
				case "anonymous":
					if !strings.Contains(body, need.String()) || !strings.Contains(body, "no ACL token") {
						t.Errorf("anonymous 403 does not name %q: %s", need, body)
					}
				default:
					if pattern != "GET /v1/acl/policy/{name}" && !strings.Contains(body, need.String()) {
						t.Errorf("403 does not name %q: %s", need, body)
					}
				}
				for _, l := range leaks {
					if strings.Contains(body, l) {
						t.Errorf("403 body leaks %q: %s", l, body)
					}
				}
			})
		}
	}
	if n != len(mux.patterns)*len(kinds) {
		t.Fatalf("checked %d requests, want %d", n, len(mux.patterns)*len(kinds))
	}
}

// Point 1 of issue 17 as a story: anonymous reads and writes are refused;
// bootstrap works once; a read-only token reads and cannot stop a job or
// create a join token; a management token does everything.
func TestACLStory(t *testing.T) {
	f := startACLServer(t)
	job := dockerJob("web", nil)
	for _, c := range []struct{ method, path string }{{"GET", "/v1/jobs"}, {"PUT", "/v1/jobs"}, {"DELETE", "/v1/job/web"}} {
		var in any
		if c.method == "PUT" {
			in = structs.JobRegisterRequest{Job: job}
		}
		if code, body := f.call(t, "", c.method, c.path, in, nil); code != 403 {
			t.Fatalf("anonymous %s %s = %d %s", c.method, c.path, code, body)
		}
	}
	if code, body := f.call(t, "", "PUT", "/v1/acl/bootstrap", nil, nil); code != 400 || !strings.Contains(body, "already done") {
		t.Fatalf("second bootstrap = %d %s", code, body)
	}
	if code, body := f.call(t, f.management.SecretID, "PUT", "/v1/jobs", structs.JobRegisterRequest{Job: job}, nil); code != 200 {
		t.Fatalf("management registers a job: %d %s", code, body)
	}
	var jobs []structs.JobListEntry
	if code, body := f.call(t, f.readTok.SecretID, "GET", "/v1/jobs", nil, &jobs); code != 200 || len(jobs) != 1 {
		t.Fatalf("read token lists jobs: %d %s", code, body)
	}
	if code, body := f.call(t, f.readTok.SecretID, "DELETE", "/v1/job/web", nil, nil); code != 403 || !strings.Contains(body, `"submit-job"`) {
		t.Fatalf("read token stops a job: %d %s", code, body)
	}
	if code, body := f.call(t, f.readTok.SecretID, "POST", "/v1/agent/tokens", structs.JoinTokenRequest{}, nil); code != 403 || !strings.Contains(body, "agent:write") {
		t.Fatalf("read token creates a join token: %d %s", code, body)
	}
	if rec, _ := f.s.store.Job("web"); rec == nil || rec.Stopped {
		t.Fatal("the read token's refused stop changed the job")
	}
	if code, body := f.call(t, f.management.SecretID, "POST", "/v1/agent/tokens", structs.JoinTokenRequest{}, nil); code != 200 {
		t.Fatalf("management creates a join token: %d %s", code, body)
	}
	if code, body := f.call(t, f.management.SecretID, "DELETE", "/v1/job/web", nil, nil); code != 200 {
		t.Fatalf("management stops the job: %d %s", code, body)
	}
	// The token's header forms: Authorization: Bearer works as X-Strata-Token.
	req, _ := http.NewRequest("GET", f.url+"/v1/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+f.readTok.SecretID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("Bearer token: %s", resp.Status)
	}
	// A deleted token is unknown at once.
	if code, body := f.call(t, f.management.SecretID, "DELETE", "/v1/acl/token/"+f.readTok.AccessorID, nil, nil); code != 200 {
		t.Fatalf("delete token: %d %s", code, body)
	}
	if code, body := f.call(t, f.readTok.SecretID, "GET", "/v1/jobs", nil, nil); code != 403 || !strings.Contains(body, "ACL token not found") {
		t.Fatalf("deleted token: %d %s", code, body)
	}
}

// The secret is stored only as its hash, and no answer shows the hash;
// the secret is shown once, when the token is created.
func TestACLSecretsNotShown(t *testing.T) {
	f := startACLServer(t)
	hash := hashSecret(f.readTok.SecretID)
	stored, _ := f.s.store.ACLToken(f.readTok.AccessorID)
	if stored.SecretHash != hash || stored.SecretID != "" {
		t.Fatalf("stored token = %+v, want its hash only", stored)
	}
	for _, path := range []string{"/v1/acl/tokens", "/v1/acl/token/" + f.readTok.AccessorID, "/v1/acl/token/self"} {
		code, body := f.call(t, f.management.SecretID, "GET", path, nil, nil)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		if strings.Contains(body, hash) || strings.Contains(body, f.readTok.SecretID) || strings.Contains(body, "SecretHash") {
			t.Fatalf("GET %s shows a secret or its hash: %s", path, body)
		}
	}
}

// A token's TTL is bounded, and an expired token is refused.
func TestACLTokenTTL(t *testing.T) {
	f := startACLServer(t)
	for _, ttl := range []string{"1ns", "30s", "25h", "soon"} {
		code, body := f.call(t, f.management.SecretID, "PUT", "/v1/acl/token", structs.ACLTokenRequest{Policies: []string{"readers"}, ExpirationTTL: ttl}, nil)
		if code != 400 {
			t.Errorf("TTL %s: %d %s, want 400", ttl, code, body)
		}
	}
	var tok structs.ACLToken
	if code, body := f.call(t, f.management.SecretID, "PUT", "/v1/acl/token", structs.ACLTokenRequest{Policies: []string{"readers"}, ExpirationTTL: "1h"}, &tok); code != 200 {
		t.Fatalf("TTL 1h: %d %s", code, body)
	}
	if d := time.Duration(tok.ExpirationTime - tok.CreateTime); d != time.Hour {
		t.Fatalf("expiration is %s after creation, want 1h", d)
	}
	if code, _ := f.call(t, tok.SecretID, "GET", "/v1/jobs", nil, nil); code != 200 {
		t.Fatalf("fresh token refused: %d", code)
	}
	f.s.http.acls.now = func() time.Time { return time.Unix(0, tok.ExpirationTime) }
	if code, body := f.call(t, tok.SecretID, "GET", "/v1/jobs", nil, nil); code != 403 || !strings.Contains(body, "ACL token expired") {
		t.Fatalf("expired token: %d %s", code, body)
	}
}

// Policies: problems come back with their positions; a token may only
// name policies that exist; the "anonymous" policy opens what it grants
// to requests without a token, as in Nomad.
func TestACLPolicies(t *testing.T) {
	f := startACLServer(t)
	code, body := f.call(t, f.management.SecretID, "PUT", "/v1/acl/policy/bad", structs.ACLPolicy{Rules: "node {\n  policy = \"root\"\n}"}, nil)
	if code != 400 || !strings.Contains(body, "bad.hcl:2:12: Invalid policy") {
		t.Fatalf("bad policy: %d %s", code, body)
	}
	code, body = f.call(t, f.management.SecretID, "PUT", "/v1/acl/token", structs.ACLTokenRequest{Policies: []string{"nope"}}, nil)
	if code != 400 || !strings.Contains(body, `"nope"`) {
		t.Fatalf("token with a missing policy: %d %s", code, body)
	}
	if code, _ := f.call(t, "", "GET", "/v1/nodes", nil, nil); code != 403 {
		t.Fatalf("anonymous node read before the anonymous policy: %d", code)
	}
	if code, body := f.call(t, f.management.SecretID, "PUT", "/v1/acl/policy/anonymous", structs.ACLPolicy{Rules: `node { policy = "read" }`}, nil); code != 200 {
		t.Fatalf("anonymous policy: %d %s", code, body)
	}
	if code, body := f.call(t, "", "GET", "/v1/nodes", nil, nil); code != 200 {
		t.Fatalf("anonymous node read with the anonymous policy: %d %s", code, body)
	}
	if code, _ := f.call(t, "", "GET", "/v1/jobs", nil, nil); code != 403 {
		t.Fatalf("anonymous job list with a node-only anonymous policy: %d", code)
	}
	var stubs []structs.ACLPolicyListStub
	if code, _ := f.call(t, f.management.SecretID, "GET", "/v1/acl/policies", nil, &stubs); code != 200 || len(stubs) != 3 {
		t.Fatalf("policies: %d %+v", code, stubs)
	}
}

// With ACLs off the ACL routes say so, and every other route is open.
func TestACLDisabled(t *testing.T) {
	s := startTestServer(t)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp, err := http.Post(ts.URL+"/v1/acl/bootstrap", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "-acl-enabled") {
		t.Fatalf("bootstrap with ACLs off: %s %s", resp.Status, b)
	}
	resp, err = http.Get(ts.URL + "/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/jobs with ACLs off: %s", resp.Status)
	}
}

// A write sent to a follower is forwarded to the leader with its token,
// and checked there: the bootstrap, a policy and a job registered through
// a follower work with the token, and are refused without it.
func TestACLForwardedWritesKeepTheirToken(t *testing.T) {
	servers := startInProcessCluster(t, 3, func(c *Config) { c.ACLEnabled = true })
	var follower *Server
	for _, s := range servers {
		if !s.IsLeader() {
			follower = s
			break
		}
	}
	ts := httptest.NewServer(follower.Handler())
	defer ts.Close()
	f := &aclFixture{s: follower, url: ts.URL, management: new(structs.ACLToken)}
	if code, body := f.call(t, "", "PUT", "/v1/acl/bootstrap", nil, f.management); code != 200 {
		t.Fatalf("bootstrap through a follower: %d %s", code, body)
	}
	// Read on the follower at once: the forwarded write waited for it.
	if tok, _ := follower.store.ACLToken(f.management.AccessorID); tok == nil {
		t.Fatal("the follower has not applied the bootstrap it forwarded")
	}
	job := dockerJob("fwd", nil)
	if code, body := f.call(t, "", "PUT", "/v1/jobs", structs.JobRegisterRequest{Job: job}, nil); code != 403 {
		t.Fatalf("anonymous write through a follower: %d %s", code, body)
	}
	if code, body := f.call(t, f.management.SecretID, "PUT", "/v1/jobs", structs.JobRegisterRequest{Job: job}, nil); code != 200 {
		t.Fatalf("write through a follower with the token: %d %s", code, body)
	}
	// A consistent read through the follower goes to the leader, token included.
	if code, body := f.call(t, f.management.SecretID, "GET", "/v1/jobs?consistent", nil, nil); code != 200 || !strings.Contains(body, `"fwd"`) {
		t.Fatalf("consistent read through a follower: %d %s", code, body)
	}
	if code, body := f.call(t, "", "GET", "/v1/jobs?consistent", nil, nil); code != 403 {
		t.Fatalf("anonymous consistent read: %d %s", code, body)
	}
}

func TestSecretOf(t *testing.T) {
	for _, tc := range []struct {
		header map[string]string
		want   string
	}{
		{map[string]string{}, ""},
		{map[string]string{"X-Strata-Token": " s1 "}, "s1"},
		{map[string]string{"Authorization": "Bearer s2"}, "s2"},
		{map[string]string{"Authorization": "bearer s2"}, "s2"},
		{map[string]string{"Authorization": "Basic czI="}, ""},
		{map[string]string{"X-Consul-Token": "s3"}, "s3"},
		{map[string]string{"X-Strata-Token": "s1", "Authorization": "Bearer s2"}, "s1"},
	} {
		h := http.Header{}
		for k, v := range tc.header {
			h.Set(k, v)
		}
		if got := secretOf(h); got != tc.want {
			t.Errorf("secretOf(%v) = %q, want %q", tc.header, got, tc.want)
		}
	}
}
