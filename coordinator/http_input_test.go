package coordinator

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
)

// badInput is one bad request to a route: the path with its query (""
// for the route's pattern with its wildcards filled), the body, and what
// the answer must be: its status and a word that names the field.
type badInput struct {
	name   string
	path   string
	body   string
	status int
	field  string
	header map[string]string
}

// badInputs are the bad requests each route must refuse, by route
// pattern (routeNeeds' keys). Every route has an entry: a new route
// without one fails TestBadInputsEveryRoute, so add its cases with it
// (nil: it takes nothing but the query parameters every route checks,
// commonBadQueries, which run on every route too).
var badInputs = map[string][]badInput{
	"GET /v1/status/leader":     nil,
	"GET /v1/status/peers":      nil,
	"GET /v1/status/heartbeats": nil,
	"GET /v1/jobs":              nil,
	"PUT /v1/jobs":              jobBodyCases,
	"POST /v1/jobs":             jobBodyCases,
	"GET /v1/job/{id}":          nil,
	"DELETE /v1/job/{id}": {
		{name: "purge not a boolean", path: "/v1/job/web?purge=maybe", status: 400, field: "purge"},
	},
	"GET /v1/job/{id}/allocations": nil,
	"GET /v1/job/{id}/versions":    nil,
	"GET /v1/job/{id}/deployments": nil,
	"GET /v1/job/{id}/deployment":  nil,
	"PUT /v1/job/{id}/plan": {
		unknownField("Bogus"),
		{name: "job of the wrong type", body: `{"Job":"web"}`, status: 400, field: "Job"},
		{name: "no body", body: "", status: 400, field: "no body"},
	},
	"PUT /v1/job/{id}/revert": {
		unknownField("Bogus"),
		{name: "version of the wrong type", body: `{"JobVersion":"one"}`, status: 400, field: "JobVersion"},
	},
	"GET /v1/deployments":     nil,
	"GET /v1/deployment/{id}": nil,
	"PUT /v1/deployment/promote/{id}": {
		unknownField("Bogus"),
		{name: "groups of the wrong type", body: `{"Groups":"web"}`, status: 400, field: "Groups"},
	},
	"PUT /v1/deployment/fail/{id}": nil,
	"GET /v1/evaluation/{id}":      nil,
	"GET /v1/allocations":          nil,
	"GET /v1/allocation/{id}":      nil,
	"GET /v1/client/allocation/{id}/logs": {
		{name: "tail not a number", path: "/v1/client/allocation/x/logs?tail=many", status: 400, field: "tail"},
		{name: "negative tail", path: "/v1/client/allocation/x/logs?tail=-1", status: 400, field: "tail"},
		{name: "follow not a boolean", path: "/v1/client/allocation/x/logs?follow=maybe", status: 400, field: "follow"},
	},
	"PUT /v1/module/{name}/{version}": {
		{name: "name with a leading dash", path: "/v1/module/-tiny/1.0.0", body: "\x00asm", status: 400, field: "-tiny"},
		{name: "name with a slash", path: "/v1/module/ti%2Fny/1.0.0", body: "\x00asm", status: 400, field: "ti/ny"},
		{name: "version not semver", path: "/v1/module/tiny/one", body: "\x00asm", status: 400, field: "one"},
		{name: "declared larger than the limit", path: "/v1/module/tiny/1.0.0", body: "\x00asm",
			header: map[string]string{"Content-Length-Claim": "70000000"}, status: 413, field: "64 MiB"},
	},
	"GET /v1/modules":                nil,
	"GET /v1/nodes":                  nil,
	"GET /v1/services":               nil,
	"GET /v1/service/{name}":         nil,
	"GET /v1/catalog/services":       nil,
	"GET /v1/catalog/service/{name}": nil,
	"GET /v1/health/service/{name}": {
		{name: "passing not a boolean", path: "/v1/health/service/web?passing=maybe", status: 400, field: "passing"},
	},
	"GET /v1/catalog/nodes":       nil,
	"GET /v1/catalog/node/{name}": nil,
	"GET /v1/catalog/datacenters": nil,
	"GET /v1/agent/self":          nil,
	"GET /v1/event/stream": {
		{name: "unknown topic", path: "/v1/event/stream?topic=Bogus", status: 400, field: "topic"},
	},
	"GET /ui/": nil,
	"GET /v1/metrics": {
		{name: "no format", path: "/v1/metrics", status: 400, field: "format"},
		{name: "unknown format", path: "/v1/metrics?format=json", status: 400, field: "format"},
	},
	"PUT /v1/node/{id}/drain": {
		unknownField("Bogus"),
		{name: "negative deadline", body: `{"Enable":true,"Deadline":"-1h"}`, status: 400, field: "Deadline"},
		{name: "deadline over 30 days", body: `{"Enable":true,"Deadline":"10000h"}`, status: 400, field: "Deadline"},
		{name: "enable of the wrong type", body: `{"Enable":"yes"}`, status: 400, field: "Enable"},
		{name: "no body", body: "", status: 400, field: "no body"},
	},
	"POST /v1/node/{id}/eligibility": {
		unknownField("Bogus"),
		{name: "eligibility not a word it knows", body: `{"Eligibility":"maybe"}`, status: 400, field: "maybe"},
	},
	"POST /v1/agent/tokens": {
		unknownField("Bogus"),
		{name: "TTL of 1ns", body: `{"TTL":"1ns"}`, status: 400, field: "TTL"},
		{name: "TTL over a year", body: `{"TTL":"9000h"}`, status: 400, field: "TTL"},
		{name: "description too long", body: `{"Description":"` + strings.Repeat("d", 300) + `"}`, status: 400, field: "description"},
		{name: "body over 64 KiB", body: `{"Description":"` + strings.Repeat("d", 70<<10) + `"}`, status: 413, field: "64 KiB"},
		{name: "data after the object", body: `{} {}`, status: 400, field: "after the JSON object"},
	},
	"GET /v1/agent/tokens":                nil,
	"DELETE /v1/agent/token/{id}":         nil,
	"GET /v1/operator/raft/configuration": nil,
	"DELETE /v1/operator/raft/peer": {
		{name: "no server named", path: "/v1/operator/raft/peer", status: 400, field: "id"},
	},
	"GET /v1/job/{id}/summary": nil,
	"POST /v1/job/{id}/scale": {
		unknownField("Bogus"),
		{name: "count over the limit", body: `{"Count":10000000}`, status: 400, field: "Count"},
		{name: "negative count", body: `{"Count":-1}`, status: 400, field: "Count"},
		{name: "count of the wrong type", body: `{"Count":"ten"}`, status: 400, field: "Count"},
	},
	"PUT /v1/job/{id}/periodic/force": {
		unknownField("Bogus"),
		{name: "body not an object", body: `[1]`, status: 400, field: "periodic force request"},
	},
	"POST /v1/job/{id}/dispatch": {
		unknownField("Bogus"),
		{name: "payload not base64", body: `{"Payload":"%%%"}`, status: 400, field: "Payload"},
		{name: "meta of the wrong type", body: `{"Meta":["a"]}`, status: 400, field: "Meta"},
		{name: "body over 64 KiB", body: `{"Payload":"` + strings.Repeat("A", 70<<10) + `"}`, status: 413, field: "64 KiB"},
	},
	"POST /v1/allocation/{id}/stop": nil,
	"POST /v1/client/allocation/{id}/signal": {
		unknownField("Bogus"),
		{name: "signal of the wrong type", body: `{"Signal":9}`, status: 400, field: "Signal"},
	},
	"POST /v1/client/allocation/{id}/restart": {
		unknownField("Bogus"),
	},
	"GET /v1/client/allocation/{id}/stats": nil,
	"GET /v1/agent/members":                nil,
	"PUT /v1/system/gc":                    nil,
	"DELETE /v1/module/{name}/{version}": {
		{name: "name with a leading dash", path: "/v1/module/-tiny/1.0.0", status: 400, field: "-tiny"},
		{name: "version not semver", path: "/v1/module/tiny/one", status: 400, field: "one"},
	},
	"PUT /v1/acl/bootstrap":  nil,
	"POST /v1/acl/bootstrap": nil,
	"GET /v1/acl/policies":   nil,
	"GET /v1/acl/policy/{name}": {
		{name: "name no policy can have", path: "/v1/acl/policy/-ops", status: 404, field: "-ops"},
	},
	"PUT /v1/acl/policy/{name}":       policyBodyCases,
	"POST /v1/acl/policy/{name}":      policyBodyCases,
	"DELETE /v1/acl/policy/{name}":    nil,
	"GET /v1/acl/tokens":              nil,
	"PUT /v1/acl/token":               aclTokenBodyCases,
	"POST /v1/acl/token":              aclTokenBodyCases,
	"GET /v1/acl/token/self":          nil,
	"GET /v1/acl/token/{accessor}":    nil,
	"DELETE /v1/acl/token/{accessor}": nil,
}

// commonBadQueries run on every route: the parameters any route may
// take (checkQuery).
var commonBadQueries = []badInput{
	{name: "index not a number", path: "?index=abc", status: 400, field: "index"},
	{name: "negative index", path: "?index=-1", status: 400, field: "index"},
	{name: "wait over 10 minutes", path: "?index=1&wait=11m", status: 400, field: "wait"},
	{name: "wait not a duration", path: "?index=1&wait=soon", status: 400, field: "wait"},
	{name: "stale not a boolean", path: "?stale=maybe", status: 400, field: "stale"},
	{name: "stale and consistent", path: "?stale&consistent", status: 400, field: "consistent"},
}

func unknownField(f string) badInput {
	return badInput{name: "unknown field", body: `{"` + f + `":1}`, status: 400, field: `unknown field "` + f + `"`}
}

var (
	okJobBody    = `{"Job":{"ID":"web","Type":"service","Priority":50,"Groups":[{"Name":"g","Count":1,"Tasks":[{"Name":"t","Driver":"docker","Config":{"Image":"a:1"},"Resources":{"CPU":100,"MemoryMB":64}}]}]}}`
	jobBodyCases = []badInput{
		unknownField("Bogus"),
		{name: "unknown field in the job", body: strings.Replace(okJobBody, `"ID":"web"`, `"ID":"web","Bogus":1`, 1), status: 400, field: `unknown field "Bogus"`},
		{name: "unknown field in a task", body: strings.Replace(okJobBody, `"Name":"t"`, `"Name":"t","Cmd":"x"`, 1), status: 400, field: `unknown field "Cmd"`},
		{name: "ID of the wrong type", body: strings.Replace(okJobBody, `"ID":"web"`, `"ID":5`, 1), status: 400, field: "Job.ID"},
		{name: "ID with a leading dash", body: strings.Replace(okJobBody, `"ID":"web"`, `"ID":"-web"`, 1), status: 400, field: "job ID"},
		{name: "ID with a space", body: strings.Replace(okJobBody, `"ID":"web"`, `"ID":"my web"`, 1), status: 400, field: "job ID"},
		{name: "group with a leading dash", body: strings.Replace(okJobBody, `"Name":"g"`, `"Name":"-g"`, 1), status: 400, field: "group name"},
		{name: "task with a slash", body: strings.Replace(okJobBody, `"Name":"t"`, `"Name":"a/t"`, 1), status: 400, field: "task name"},
		{name: "count over the limit", body: strings.Replace(okJobBody, `"Count":1`, `"Count":10000000`, 1), status: 400, field: "count"},
		{name: "no body", body: "", status: 400, field: "no body"},
		{name: "body over 4 MiB", body: `{"Job":{"ID":"` + strings.Repeat("w", 5<<20) + `"}}`, status: 413, field: "4 MiB"},
	}
	policyBodyCases = []badInput{
		unknownField("Bogus"),
		{name: "rules of the wrong type", body: `{"Rules":5}`, status: 400, field: "Rules"},
		{name: "name with a leading dash", path: "/v1/acl/policy/-ops", body: `{"Rules":"node { policy = \"read\" }"}`, status: 400, field: "-ops"},
	}
	aclTokenBodyCases = []badInput{
		unknownField("Bogus"),
		{name: "TTL of 1ns", body: `{"Type":"management","ExpirationTTL":"1ns"}`, status: 400, field: "TTL"},
		{name: "policies of the wrong type", body: `{"Policies":"ops"}`, status: 400, field: "Policies"},
	}
)

// Must-show 6 of issue 15: every route refuses bad input with a 4xx that
// names the field, walking the registered routes so that none is left
// out. The server has ACLs on and the requests carry a management token,
// so each answer is the route's own, not a permission's.
func TestBadInputsEveryRoute(t *testing.T) {
	f := startACLServer(t)
	mux := f.s.http.handler().(*routeMux)
	for pattern := range badInputs {
		if !slices.Contains(mux.patterns, pattern) && !slices.Contains(plannedRoutes, pattern) {
			t.Errorf("badInputs has %q, which is neither a route nor planned", pattern)
		}
	}
	for _, pattern := range mux.patterns {
		cases, ok := badInputs[pattern]
		if !ok {
			t.Errorf("route %q has no entry in badInputs: add the bad requests it must refuse", pattern)
			continue
		}
		method, route, _ := strings.Cut(pattern, " ")
		base := fillWildcards(route)
		for _, c := range commonBadQueries {
			c.path = base + c.path
			cases = append(cases, c)
		}
		for _, c := range cases {
			t.Run(pattern+"/"+c.name, func(t *testing.T) {
				path := c.path
				if path == "" {
					path = base
				}
				code, body := f.send(t, method, path, c.body, c.header)
				if code != c.status || !strings.Contains(body, c.field) {
					t.Fatalf("%s %s: %d %s; want %d naming %q", method, path, code, strings.TrimSpace(body), c.status, c.field)
				}
			})
		}
	}
}

// fillWildcards turns a route pattern into a path it matches.
func fillWildcards(route string) string {
	r := strings.NewReplacer("{id}", "x", "{name}", "tiny", "{version}", "1.0.0", "{accessor}", "x")
	return r.Replace(route)
}

// send sends a raw body with the management token. The header
// Content-Length-Claim sets the request's declared length without
// sending that many bytes (the server refuses it before reading).
func (f *aclFixture) send(t *testing.T, method, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Strata-Token", f.management.SecretID)
	for k, v := range header {
		if k == "Content-Length-Claim" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			req.Body = io.NopCloser(io.LimitReader(io.MultiReader(strings.NewReader(body), zeros{}), n))
			req.ContentLength = n
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var apiErr structs.APIError
	if json.Unmarshal(b, &apiErr) == nil && apiErr.Error != "" {
		return resp.StatusCode, apiErr.Error
	}
	return resp.StatusCode, string(b)
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
