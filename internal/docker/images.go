package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Image is GET /images/{name}/json, in part.
type Image struct {
	ID       string   `json:"Id"`
	RepoTags []string `json:"RepoTags"`
	Config   struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
}

// ImageInspect returns the local image ref ("name:tag", "name@sha256:…" or
// an ID); an *Error that IsNotFound when the daemon has none.
func (c *Client) ImageInspect(ctx context.Context, ref string) (*Image, error) {
	var img Image
	if err := c.call(ctx, request{method: http.MethodGet, path: "/images/" + ref + "/json"}, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

// ImagePull pulls ref from its registry (POST /images/create). A ref
// without tag or digest means its "latest" tag, as with `docker pull`,
// never every tag. The daemon reports failures inside the progress
// stream; they come back as an *Error too.
func (c *Client) ImagePull(ctx context.Context, ref string) error {
	repo, tag := splitRef(ref)
	q := url.Values{"fromImage": {repo}, "tag": {tag}}
	r := request{method: http.MethodPost, path: "/images/create", query: q}
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readProgress(r, resp.Body, nil)
}

// splitRef splits an image reference into repository and tag (or
// digest), defaulting the tag to "latest".
func splitRef(ref string) (repo, tag string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

// ImageBuild builds the image of a tar build context (a Dockerfile at its
// root) with the daemon's builder, tags it tag, and returns its ID. Every
// label is set on the image.
func (c *Client) ImageBuild(ctx context.Context, buildContext io.Reader, tag string, labels map[string]string) (string, error) {
	q := url.Values{"t": {tag}, "rm": {"1"}, "forcerm": {"1"}}
	if len(labels) > 0 {
		b, _ := json.Marshal(labels)
		q.Set("labels", string(b))
	}
	r := request{method: http.MethodPost, path: "/build", query: q, raw: buildContext, contentType: "application/x-tar"}
	resp, err := c.do(ctx, r)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var id string
	err = readProgress(r, resp.Body, func(m progress) {
		if m.Aux.ID != "" {
			id = m.Aux.ID
		}
	})
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("docker: POST /build: the daemon reported no image ID")
	}
	return id, nil
}

// progress is one message of a pull or build stream.
type progress struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux struct {
		ID string `json:"ID"`
	} `json:"aux"`
}

// readProgress reads a stream of JSON messages to its end; the first error
// message becomes an *Error of r.
func readProgress(r request, body io.Reader, each func(progress)) error {
	dec := json.NewDecoder(body)
	var tail []string // the last output lines, for the error
	for {
		var m progress
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("docker: %s %s: reading progress: %w", r.method, r.path, err)
		}
		if msg := m.Error + m.ErrorDetail.Message; msg != "" {
			if m.ErrorDetail.Message != "" {
				msg = m.ErrorDetail.Message
			}
			if len(tail) > 0 {
				msg += " (after: " + strings.Join(tail, " | ") + ")"
			}
			return &Error{Method: r.method, Path: r.path, StatusCode: http.StatusOK, Message: msg}
		}
		if s := strings.TrimSpace(m.Stream + m.Status); s != "" {
			tail = append(tail, s)
			if len(tail) > 3 {
				tail = tail[1:]
			}
		}
		if each != nil {
			each(m)
		}
	}
}
