package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/strata-run/strata/coordinator/structs"
)

// The operator's routes: job summary and scaling, purge, allocation
// stop, restart, signal and stats, node eligibility, server members,
// garbage collection, module deletion.

// Job returns a job's record: its current version's spec and status.
func (c *Client) Job(ctx context.Context, id string) (*structs.JobRecord, error) {
	var r structs.JobRecord
	_, err := c.do(ctx, http.MethodGet, "/v1/job/"+url.PathEscape(id), nil, &r)
	return &r, err
}

// JobSummary returns a job's allocations counted by group and status.
func (c *Client) JobSummary(ctx context.Context, id string) (*structs.JobSummary, error) {
	var r structs.JobSummary
	_, err := c.do(ctx, http.MethodGet, "/v1/job/"+url.PathEscape(id)+"/summary", nil, &r)
	return &r, err
}

// ScaleJob sets a group's count ("" names the job's only group).
func (c *Client) ScaleJob(ctx context.Context, id, group string, count int) (*structs.JobRegisterResponse, error) {
	req := structs.JobScaleRequest{Count: &count}
	if group != "" {
		req.Target = map[string]string{"Group": group}
	}
	var r structs.JobRegisterResponse
	body, err := jsonBody(req)
	if err != nil {
		return nil, err
	}
	_, err = c.do(ctx, http.MethodPost, "/v1/job/"+url.PathEscape(id)+"/scale", body, &r)
	return &r, err
}

// DeregisterJob stops a job; with purge it removes the job and its
// history.
func (c *Client) DeregisterJob(ctx context.Context, id string, purge bool) (*structs.JobDeregisterResponse, error) {
	path := "/v1/job/" + url.PathEscape(id)
	if purge {
		path += "?purge=true"
	}
	var r structs.JobDeregisterResponse
	_, err := c.do(ctx, http.MethodDelete, path, nil, &r)
	return &r, err
}

// StopAlloc stops an allocation; the scheduler places its replacement.
func (c *Client) StopAlloc(ctx context.Context, id string) (*structs.AllocStopResponse, error) {
	var r structs.AllocStopResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/allocation/"+url.PathEscape(id)+"/stop", nil, &r)
	return &r, err
}

// SignalAlloc sends a signal to a task of an allocation ("" for each).
func (c *Client) SignalAlloc(ctx context.Context, id, task, signal string) (*structs.AllocTasksResponse, error) {
	body, err := jsonBody(structs.AllocSignalRequest{Signal: signal, Task: task})
	if err != nil {
		return nil, err
	}
	var r structs.AllocTasksResponse
	_, err = c.do(ctx, http.MethodPost, "/v1/client/allocation/"+url.PathEscape(id)+"/signal", body, &r)
	return &r, err
}

// RestartAlloc restarts a running task of an allocation in place ("" for
// every running one).
func (c *Client) RestartAlloc(ctx context.Context, id, task string) (*structs.AllocTasksResponse, error) {
	body, err := jsonBody(structs.AllocRestartRequest{TaskName: task})
	if err != nil {
		return nil, err
	}
	var r structs.AllocTasksResponse
	_, err = c.do(ctx, http.MethodPost, "/v1/client/allocation/"+url.PathEscape(id)+"/restart", body, &r)
	return &r, err
}

// AllocStats measures an allocation's tasks ("" for each).
func (c *Client) AllocStats(ctx context.Context, id, task string) (*structs.AllocStats, error) {
	path := "/v1/client/allocation/" + url.PathEscape(id) + "/stats"
	if task != "" {
		path += "?task=" + url.QueryEscape(task)
	}
	var r structs.AllocStats
	_, err := c.do(ctx, http.MethodGet, path, nil, &r)
	return &r, err
}

// NodeEligibility makes a node (by ID or unique name) eligible for new
// allocations or not.
func (c *Client) NodeEligibility(ctx context.Context, node string, eligible bool) (*structs.NodeRecord, error) {
	req := structs.NodeEligibilityRequest{Eligibility: structs.NodeIneligible}
	if eligible {
		req.Eligibility = structs.NodeEligible
	}
	body, err := jsonBody(req)
	if err != nil {
		return nil, err
	}
	var n structs.NodeRecord
	_, err = c.do(ctx, http.MethodPost, "/v1/node/"+url.PathEscape(node)+"/eligibility", body, &n)
	return &n, err
}

// Members lists the servers and whether each answers.
func (c *Client) Members(ctx context.Context) (*structs.ServerMembers, error) {
	var m structs.ServerMembers
	_, err := c.do(ctx, http.MethodGet, "/v1/agent/members", nil, &m)
	return &m, err
}

// SystemGC collects finished allocations, done evaluations, ended
// deployments, dead jobs and old job versions.
func (c *Client) SystemGC(ctx context.Context) (*structs.GCResult, error) {
	var r structs.GCResult
	_, err := c.do(ctx, http.MethodPut, "/v1/system/gc", nil, &r)
	return &r, err
}

// DeleteModule deletes a module version no stored job version uses.
func (c *Client) DeleteModule(ctx context.Context, name, version string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/module/"+url.PathEscape(name)+"/"+url.PathEscape(version), nil, nil)
	return err
}

// ForcePeriodic launches a child of a periodic job now.
func (c *Client) ForcePeriodic(ctx context.Context, id string) (*structs.PeriodicForceResponse, error) {
	var r structs.PeriodicForceResponse
	_, err := c.do(ctx, http.MethodPut, "/v1/job/"+url.PathEscape(id)+"/periodic/force", nil, &r)
	return &r, err
}

// DispatchJob launches a child of a parameterized job with meta and a
// payload.
func (c *Client) DispatchJob(ctx context.Context, id string, meta map[string]string, payload []byte) (*structs.JobDispatchResponse, error) {
	body, err := jsonBody(structs.JobDispatchRequest{Meta: meta, Payload: payload})
	if err != nil {
		return nil, err
	}
	var r structs.JobDispatchResponse
	_, err = c.do(ctx, http.MethodPost, "/v1/job/"+url.PathEscape(id)+"/dispatch", body, &r)
	return &r, err
}
