// Package docker is the agent's adapter over the official Docker Engine
// client, github.com/moby/moby/client: the calls the docker driver makes
// (negotiate and version, image inspect and pull, container create,
// start, wait, logs from the start or from an instant, inspect, kill with
// a signal, stats, stop, remove and list), each one call of the official
// client shaped as the driver makes it, with the API's own types
// (container.Config, container.HostConfig, container.InspectResponse, …)
// and its errors (containerd's errdefs: cerrdefs.IsNotFound,
// cerrdefs.IsConflict) wrapped once with the operation.
//
// What it adds to the official client is small and the driver's: the
// negotiated version checked against the daemon's range at Negotiate, the
// wait as an exit code, one stats sample with the figures `docker stats`
// shows (MemoryInUse, CPUPercent), and logs followed into two writers
// (the official stdcopy splits the stream). HTTP, the socket, API version
// negotiation, streams, TLS from the environment and the daemon's errors
// are the official client's.
//
// It knows nothing of jobs, allocations or Strata's labels: the driver in
// package edge decides what to run; this package only speaks the API. It
// does not authenticate to registries (pulls are anonymous) and does not
// run TTY containers.
package docker
