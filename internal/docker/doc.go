// Package docker is a small client of the Docker Engine API: what the
// agent's docker driver needs (ping and version, image inspect and pull,
// container create, start, wait, logs (from the start or from an instant),
// inspect, kill with a signal, stats, stop, remove and list) and
// an image build for tests, over plain net/http with JSON.
//
// It speaks one pinned API version (APIVersion) on the socket named by
// DOCKER_HOST (unix:// or tcp://, default unix:///var/run/docker.sock) and
// refuses, at Negotiate, a daemon that does not accept that version. Every
// error from the daemon is an *Error naming the request and carrying the
// daemon's own message.
//
// It knows nothing of jobs, allocations or Strata's labels: the driver in
// package edge decides what to run; this package only speaks the API. It
// does not implement TLS to a remote daemon, registries' authentication or
// TTY containers.
package docker
