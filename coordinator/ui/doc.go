// Package ui is the web UI every server serves at /ui/: plain HTML, CSS
// and JavaScript embedded with go:embed (no build step, no framework, no
// JavaScript registry), a single page that reads the HTTP API (jobs and
// their versions and deployments, allocations with their task events and
// logs, nodes, services, servers) and keeps itself current from the
// event stream (/v1/event/stream, read with fetch and a ReadableStream).
//
// With ACLs on it sends the token the user gives it (a form, or once the
// URL fragment #token=…, which it then removes from the address bar),
// kept in the browser's session storage: the files themselves need no
// token, every API call does.
//
// It owns the files and the handler that serves them (Handler). It must
// not import the server's packages or reach state other than through the
// HTTP API: it is a client, and sees what the token lets it see.
package ui
