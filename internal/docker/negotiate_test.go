package docker_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/strata-run/strata/internal/docker"
)

// fakeEngine answers API version negotiation as a Docker Engine with the
// API range [min, max] does: /_ping names max in its Api-Version header,
// /version gives the range, and a versioned request outside the range is
// refused with HTTP 400 and the daemon's own words, /version included
// (as Docker 20.10 here does; Docker 29 refuses anything below 1.44 this
// way). It also lists containers (none), and
// records the path of every request it was sent.
type fakeEngine struct {
	engine, max, min string

	mu    sync.Mutex
	paths []string
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if r.URL.Path == "/_ping" {
		w.Header().Set("Api-Version", f.max)
		w.Header().Set("Ostype", "linux")
		w.Write([]byte("OK"))
		return
	}
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	ver, path, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v"), "/")
	switch {
	case !ok:
		reply(http.StatusNotFound, map[string]string{"message": "page not found"})
	case versions.LessThan(ver, f.min): // in plain text, as Docker 20.10 answers it
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version\n", ver, f.min)
	case versions.GreaterThan(ver, f.max):
		reply(http.StatusBadRequest, map[string]string{"message": fmt.Sprintf(
			"client version %s is too new. Maximum supported API version is %s", ver, f.max)})
	case path == "version":
		reply(http.StatusOK, map[string]string{"Version": f.engine, "ApiVersion": f.max, "MinAPIVersion": f.min, "Os": "linux", "Arch": "amd64"})
	case path == "containers/json" && r.Method == http.MethodGet:
		reply(http.StatusOK, []any{})
	default:
		reply(http.StatusNotFound, map[string]string{"message": "page not found"})
	}
}

func (f *fakeEngine) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

// The client settles on the API version each Engine speaks, within the
// official client's range, so the driver works with a current Docker as
// with the 20.10 its daemon tests run against: Docker 29, which refuses
// every version below 1.44 (the 1.41 Strata was pinned to), gets its own
// 1.52, and a request made after Negotiate uses it. An Engine outside
// the client's range, or a pinned version the Engine refuses (what the
// issue saw: 1.41 against Docker 29), fails Negotiate saying why, so the
// agent does not offer docker rather than fail every container.
func TestNegotiateWithEngines(t *testing.T) {
	for _, tc := range []struct {
		name, engine, max, min string
		pin                    string // DOCKER_API_VERSION
		want, err              string
	}{
		{name: "Docker 20.10", engine: "20.10.24", max: "1.41", min: "1.12", want: "1.41"},
		{name: "Docker 28", engine: "28.2.2", max: "1.50", min: "1.24", want: "1.50"},
		{name: "Docker 29", engine: "29.0.0", max: "1.52", min: "1.44", want: "1.52"},
		{name: "newer than the client", engine: "99.0.0", max: "1.99", min: "1.98",
			err: "docker: version of tcp://%s with API " + client.MaxAPIVersion + ": Error response from daemon: client version " +
				client.MaxAPIVersion + " is too old. Minimum supported API version is 1.98"},
		{name: "older than the client", engine: "18.09.9", max: "1.39", min: "1.12",
			err: "the minimum supported API version is " + client.MinAPIVersion},
		{name: "Docker 29 with the old pin", engine: "29.0.0", max: "1.52", min: "1.44", pin: "1.41",
			err: "docker: version of tcp://%s with API 1.41: Error response from daemon: client version 1.41 is too old. Minimum supported API version is 1.44"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEngine{engine: tc.engine, max: tc.max, min: tc.min}
			srv := httptest.NewServer(f)
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "http://")
			t.Setenv("DOCKER_API_VERSION", tc.pin)
			c, err := docker.New("tcp://" + addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			v, err := c.Negotiate(ctxT(t, 10*time.Second))
			if tc.err != "" {
				want := tc.err
				if strings.Contains(want, "%s") {
					want = fmt.Sprintf(want, addr)
				}
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Negotiate = %+v, %v; want an error with %q", v, err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Negotiated != tc.want || c.APIVersion() != tc.want || v.Version != tc.engine || v.MinAPIVersion != tc.min {
				t.Fatalf("Negotiate = %+v, client at %s; want %s", v, c.APIVersion(), tc.want)
			}
			if _, err := c.ContainerList(ctxT(t, 10*time.Second), "strata.node_id=n1"); err != nil {
				t.Fatalf("a request after negotiation: %v", err)
			}
			reqs := f.requests()
			if last := reqs[len(reqs)-1]; last != "GET /v"+tc.want+"/containers/json" {
				t.Fatalf("requests %q: want the list made with API %s", reqs, tc.want)
			}
		})
	}
}
