package testdocker

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// The build Hello relies on, through the official client: an image with
// its tag and labels and the ID the daemon reported; and a build that
// fails says why in the daemon's words. (Hello itself only builds when its
// image is missing or stale, which a test run cannot count on.)
func TestBuildImage(t *testing.T) {
	c, _ := Hello(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tag := "strata-test/build-check:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	buildContext, err := tarContext(
		file{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY greeting /greeting\n")},
		file{"greeting", 0o644, []byte("hi\n")})
	if err != nil {
		t.Fatal(err)
	}
	id, err := buildImage(ctx, c.API(), buildContext, tag, map[string]string{"strata.test.check": "yes"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := c.API().ImageRemove(context.Background(), id, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	img, err := c.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != id || img.Config == nil || img.Config.Labels["strata.test.check"] != "yes" {
		t.Fatalf("image %s (%+v), want %s labelled strata.test.check=yes", img.ID, img.Config, id)
	}

	broken, err := tarContext(file{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY missing /missing\n")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = buildImage(ctx, c.API(), broken, tag+"-broken", nil)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a build whose COPY has no source = %v, want the daemon's reason", err)
	}
	t.Logf("failed build: %v", err)
}
