package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// put sends body as JSON and decodes the answer into out.
func (c *Client) put(ctx context.Context, path string, body, out any) (uint64, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	return c.do(ctx, http.MethodPut, path, bytes.NewReader(b), out)
}

// blocking appends a blocking query's parameters to path.
func blocking(path string, index uint64, wait time.Duration) string {
	if index == 0 {
		return path
	}
	sep := "?"
	if bytes.ContainsRune([]byte(path), '?') {
		sep = "&"
	}
	return fmt.Sprintf("%s%sindex=%d&wait=%s", path, sep, index, wait)
}

// RegisterJobAt registers job only if the registered job's modify index
// is still modifyIndex (0: it must not exist), as `strata run
// -check-index` does after `strata plan`.
func (c *Client) RegisterJobAt(ctx context.Context, job *spec.Job, modifyIndex uint64) (*structs.JobRegisterResponse, error) {
	var r structs.JobRegisterResponse
	_, err := c.put(ctx, "/v1/jobs", structs.JobRegisterRequest{Job: job, EnforceIndex: true, JobModifyIndex: modifyIndex}, &r)
	return &r, err
}

// PlanJob asks what registering job would change, without changing it.
func (c *Client) PlanJob(ctx context.Context, job *spec.Job) (*structs.JobPlanResponse, error) {
	var r structs.JobPlanResponse
	_, err := c.put(ctx, "/v1/job/"+url.PathEscape(job.ID)+"/plan", structs.JobPlanRequest{Job: job}, &r)
	return &r, err
}

// JobVersions lists a job's versions, newest first, with the diff between
// consecutive ones when diffs is set.
func (c *Client) JobVersions(ctx context.Context, id string, diffs bool) (*structs.JobVersionsResponse, error) {
	path := "/v1/job/" + url.PathEscape(id) + "/versions"
	if diffs {
		path += "?diffs=true"
	}
	var r structs.JobVersionsResponse
	_, err := c.do(ctx, http.MethodGet, path, nil, &r)
	return &r, err
}

// RevertJob registers an earlier version's spec as the job's new version.
func (c *Client) RevertJob(ctx context.Context, id string, version uint64, enforcePrior *uint64) (*structs.JobRegisterResponse, error) {
	var r structs.JobRegisterResponse
	_, err := c.put(ctx, "/v1/job/"+url.PathEscape(id)+"/revert", structs.JobRevertRequest{JobVersion: version, EnforcePriorVersion: enforcePrior}, &r)
	return &r, err
}

// JobDeployments lists a job's deployments, newest first.
func (c *Client) JobDeployments(ctx context.Context, id string) ([]*structs.Deployment, error) {
	var ds []*structs.Deployment
	_, err := c.do(ctx, http.MethodGet, "/v1/job/"+url.PathEscape(id)+"/deployments", nil, &ds)
	return ds, err
}

// LatestDeployment returns a job's newest deployment; with index > 0 it
// blocks until the state passes index or wait elapses. A job without a
// deployment answers 404.
func (c *Client) LatestDeployment(ctx context.Context, jobID string, index uint64, wait time.Duration) (*structs.Deployment, uint64, error) {
	var d structs.Deployment
	idx, err := c.do(ctx, http.MethodGet, blocking("/v1/job/"+url.PathEscape(jobID)+"/deployment", index, wait), nil, &d)
	return &d, idx, err
}

// Deployments lists every deployment, newest first; prefix filters by ID.
func (c *Client) Deployments(ctx context.Context, prefix string) ([]*structs.Deployment, error) {
	var ds []*structs.Deployment
	_, err := c.do(ctx, http.MethodGet, "/v1/deployments?prefix="+url.QueryEscape(prefix), nil, &ds)
	return ds, err
}

// Deployment returns a deployment by ID; with index > 0 it blocks as
// LatestDeployment does.
func (c *Client) Deployment(ctx context.Context, id string, index uint64, wait time.Duration) (*structs.Deployment, uint64, error) {
	var d structs.Deployment
	idx, err := c.do(ctx, http.MethodGet, blocking("/v1/deployment/"+url.PathEscape(id), index, wait), nil, &d)
	return &d, idx, err
}

// PromoteDeployment promotes the canaries of groups (all groups when none
// are named).
func (c *Client) PromoteDeployment(ctx context.Context, id string, groups []string) (*structs.DeploymentUpdateResponse, error) {
	var r structs.DeploymentUpdateResponse
	_, err := c.put(ctx, "/v1/deployment/promote/"+url.PathEscape(id), structs.DeploymentPromoteRequest{Groups: groups, All: len(groups) == 0}, &r)
	return &r, err
}

// FailDeployment marks a running deployment failed; with auto_revert the
// job goes back to its latest stable version.
func (c *Client) FailDeployment(ctx context.Context, id string) (*structs.DeploymentUpdateResponse, error) {
	var r structs.DeploymentUpdateResponse
	_, err := c.do(ctx, http.MethodPut, "/v1/deployment/fail/"+url.PathEscape(id), nil, &r)
	return &r, err
}
