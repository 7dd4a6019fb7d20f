package coordinator

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

func wasmJob(id, module string) *spec.Job {
	return &spec.Job{ID: id, Type: "service", Groups: []*spec.Group{{Name: "g", Count: 2, Tasks: []*spec.Task{{
		Name: "t", Driver: "wasm", Config: spec.TaskConfig{Module: module, Mode: "command"},
		Resources: spec.Resources{CPU: 100, MemoryMB: 64},
	}}}}}
}

// A module version a job uses cannot be deleted (the refusal names the
// job version); once it is deleted, every blob no version names leaves
// the server's disk, except one a push in progress holds.
func TestModuleDeleteAndBlobCollection(t *testing.T) {
	s := startTestServer(t)
	f := &aclFixture{s: s, url: httptest.NewServer(s.Handler()).URL}
	tiny, err := os.ReadFile("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	other := append(append([]byte{}, tiny...), 0, 1, 0) // an empty custom section: other bytes, still valid
	ctx := context.Background()
	used, _, err := s.PushModule(ctx, "tiny", "1.0.0", tiny)
	if err != nil {
		t.Fatal(err)
	}
	unused, _, err := s.PushModule(ctx, "tiny", "2.0.0", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterJob(wasmJob("web", "tiny@1.0.0")); err != nil {
		t.Fatal(err)
	}
	blobPath := func(digest string) string {
		return filepath.Join(s.cfg.DataDir, "modules", "sha256", strings.TrimPrefix(digest, "sha256:"))
	}
	exists := func(digest string) bool { _, err := os.Stat(blobPath(digest)); return err == nil }

	code, body := f.call(t, "", "DELETE", "/v1/module/tiny/1.0.0", nil, nil)
	if code != 409 || !strings.Contains(body, "web@0 (current)") || !strings.Contains(body, "stop -purge") {
		t.Fatalf("delete of a module in use: %d %s", code, body)
	}
	if code, body := f.call(t, "", "DELETE", "/v1/module/tiny/9.9.9", nil, nil); code != 404 {
		t.Fatalf("delete of an unknown version: %d %s", code, body)
	}

	// A blob no version names, held by a push in progress, stays; the
	// deleted version's blob goes.
	orphan := append(append([]byte{}, tiny...), 0, 2, 1, 'x')
	release := s.blobs.hold(Digest(orphan))
	if _, err := s.blobs.Put(orphan); err != nil {
		t.Fatal(err)
	}
	if code, body := f.call(t, "", "DELETE", "/v1/module/tiny/2.0.0", nil, nil); code != 200 {
		t.Fatalf("delete of an unused version: %d %s", code, body)
	}
	testutil.Await(t, 10*time.Second, "the deleted version's blob collected", s.blobGC.swept, func() error {
		if exists(unused.Digest) {
			return fmt.Errorf("blob %s still on disk", unused.Digest)
		}
		return nil
	})
	if !exists(used.Digest) || !exists(Digest(orphan)) {
		t.Fatalf("collection deleted a blob a version names (%t) or a push holds (%t)", !exists(used.Digest), !exists(Digest(orphan)))
	}
	release()

	// Purged, the job no longer holds its module: deleting it collects
	// its blob and the orphan.
	var purged structs.JobDeregisterResponse
	if code, body := f.call(t, "", "DELETE", "/v1/job/web?purge=true", nil, &purged); code != 200 || purged.Purged == nil {
		t.Fatalf("purge: %d %s", code, body)
	}
	if rec, _ := s.store.Job("web"); rec != nil {
		t.Fatal("the purged job is still listed")
	}
	if code, body := f.call(t, "", "DELETE", "/v1/module/tiny/1.0.0", nil, nil); code != 200 {
		t.Fatalf("delete after the purge: %d %s", code, body)
	}
	testutil.Await(t, 10*time.Second, "every unnamed blob collected", s.blobGC.swept, func() error {
		if exists(used.Digest) || exists(Digest(orphan)) {
			return fmt.Errorf("blobs left: used %t, orphan %t", exists(used.Digest), exists(Digest(orphan)))
		}
		return nil
	})
	// A job naming a deleted module is refused.
	if _, err := s.RegisterJob(wasmJob("again", "tiny@1.0.0")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("registration with a deleted module: %v", err)
	}
}

// Scaling is a new version with only the count changed: no deployment,
// the group named or the only one, a count the job has already changes
// nothing; Nomad's fields Strata does not honour are refused.
func TestJobScale(t *testing.T) {
	s := startTestServer(t)
	f := &aclFixture{s: s, url: httptest.NewServer(s.Handler()).URL}
	agents := healthyAgents(t, s, 2)
	setHealth(agents, func(wire.Alloc) string { return wire.Healthy })
	register(t, s, rollingDockerJob("app:1", 2, 1, 0))
	waitDeployment(t, s, 0, 2, 1, structs.DeploymentSuccessful)
	three := 3
	var resp structs.JobRegisterResponse
	if code, body := f.call(t, "", "POST", "/v1/job/web/scale", structs.JobScaleRequest{Count: &three}, &resp); code != 200 {
		t.Fatalf("scale: %d %s", code, body)
	}
	if !resp.Changed || resp.Version != 1 || resp.DeploymentID != "" || resp.EvalID == "" {
		t.Fatalf("scale answered %+v: want version 1, an evaluation and no deployment", resp)
	}
	rec, _ := s.store.Job("web")
	if rec.Job.Groups[0].Count != 3 {
		t.Fatalf("count after scaling: %d", rec.Job.Groups[0].Count)
	}
	waitState(t, s, "3 instances at version 1, the first two moved in place", 30*time.Second, func() bool {
		live := liveAllocs(t, s, "web")
		for _, a := range live {
			if a.JobVersion != 1 {
				return false
			}
		}
		return len(live) == 3
	})
	if code, _ := f.call(t, "", "POST", "/v1/job/web/scale", structs.JobScaleRequest{Count: &three}, &resp); code != 200 || resp.Changed {
		t.Fatalf("scaling to the same count changed the job: %+v", resp)
	}
	for _, tc := range []struct {
		body any
		code int
		msg  string
	}{
		{map[string]any{"Count": 2, "Target": map[string]string{"Group": "nope"}}, 404, `no group "nope"`},
		{map[string]any{"Count": -1}, 400, "negative"},
		{map[string]any{}, 400, "no Count"},
		{map[string]any{"Count": 2, "Message": "why"}, 400, `unknown field "Message"`},
		{map[string]any{"Count": 2, "Target": map[string]string{"Job": "web"}}, 400, "Target.Group"},
	} {
		if code, body := f.call(t, "", "POST", "/v1/job/web/scale", tc.body, nil); code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("scale %v: %d %s, want %d %q", tc.body, code, body, tc.code, tc.msg)
		}
	}
	if code, body := f.call(t, "", "POST", "/v1/job/nope/scale", structs.JobScaleRequest{Count: &three}, nil); code != 404 {
		t.Errorf("scaling a job that does not exist: %d %s", code, body)
	}
}
