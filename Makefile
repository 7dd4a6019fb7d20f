# Strata's build. `make run` and `make test` are the two entry points
# (README.md); everything they need is built here, nothing by hand.

GO       ?= go
BIN      := bin/strata
HTTP_ADDR ?= 127.0.0.1:4700
DNS_ADDR  ?= 127.0.0.1:8600
# go test flags; CI adds nothing, a developer may add -run or -count.
TESTFLAGS ?=

WASM_EXAMPLES := examples/hello/hello.wasm examples/server/server.wasm examples/worker/worker.wasm examples/tiny/tiny.wasm

.PHONY: all build examples run test tools tools-chromium faults bench bench-dns bench-dns-target fuzz clean

all: build examples

build:
	$(GO) build -o $(BIN) ./cmd/strata

examples: $(WASM_EXAMPLES)

examples/hello/hello.wasm: $(wildcard examples/hello/*.go)
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $@ ./examples/hello

# Start `strata dev`, push the example module, deploy the example job,
# print where to reach it, then keep serving until Ctrl-C.
run: build examples
	@set -e; \
	$(BIN) dev -http-addr $(HTTP_ADDR) -dns-addr $(DNS_ADDR) & dev=$$!; \
	trap 'kill $$dev 2>/dev/null; wait $$dev 2>/dev/null' INT TERM EXIT; \
	export STRATA_ADDR=http://$(HTTP_ADDR); \
	up=0; for i in $$(seq 1 300); do \
	  if $(BIN) status >/dev/null 2>&1; then up=1; break; fi; \
	  kill -0 $$dev 2>/dev/null || break; sleep 0.1; done; \
	if [ $$up != 1 ]; then echo "strata dev did not come up (see its output above)" >&2; exit 1; fi; \
	$(BIN) module push examples/hello/hello.wasm -name hello -version 0.1.0; \
	$(BIN) run examples/hello/hello.hcl | tee .run.out; \
	addr=$$(sed -n 's/.*Service hello-web-hello at \([^ ]*\).*/\1/p' .run.out | head -1); rm -f .run.out; \
	echo; \
	echo "==> Try it:"; \
	echo "    curl http://$$addr/x"; \
	echo "    dig @$(firstword $(subst :, ,$(DNS_ADDR))) -p $(lastword $(subst :, ,$(DNS_ADDR))) hello-web-hello.service.strata SRV"; \
	echo "    $(BIN) status hello"; \
	echo "    (Ctrl-C stops strata dev)"; \
	wait $$dev

# Every test, with the race detector. The end-to-end tests build the
# binary and the example modules themselves, and the docker tests their
# image (through the Docker Engine, which they need; no registry).
test: tools tools-chromium
	$(GO) vet ./...
	$(GO) test -race -timeout 20m $(TESTFLAGS) ./...
	$(MAKE) faults

# The fault suite (cmd/strata/faults_test.go, build tag faults): three
# server processes and an agent through 20 leader kills and 10 partitions,
# the history checked with porcupine; it prints its figures. Partitions are
# iptables rules, so it runs as root inside a private network namespace
# (unshare -n), whose rules and addresses touch nothing outside it.
faults:
	$(GO) vet -tags faults ./cmd/strata
	$(GO) test -c -tags faults -o bin/faults.test ./cmd/strata
	cd cmd/strata && unshare -n -- sh -c 'ip link set lo up && STRATA_FAULTS_NETNS=1 exec ../../bin/faults.test -test.run "^(TestRegisterModel|TestFaults)$$" -test.v -test.timeout 8m'

# What the tests run besides Go: promtool (Debian's prometheus package)
# checks the servers' and agents' metrics; installed when missing.
tools:
	command -v promtool >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends prometheus)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./sched/... ./wasmhost/... ./registry/... ./spec/...

# dnsperf against Strata's DNS server over a 10,000-instance snapshot and
# against a plain miekg/dns server answering the same records from a map (the
# ceiling), 50 queries in flight, half SRV half A, 15 s each, in one run.
# Installs dnsperf (Debian package) when it is missing.
DNS_ROUNDS ?= 1
bench-dns:
	command -v dnsperf >/dev/null 2>&1 || (apt-get update && apt-get install -y dnsperf)
	$(GO) run ./cmd/strata-bench dns -duration 15s -inflight 50 -rounds $(DNS_ROUNDS)

# The same against a running server's DNS (`strata dev`, `strata server`,
# an agent's -dns-addr) that serves DNS_SERVICES (each answering A and SRV),
# beside the ceiling filled with that server's own answers.
DNS_TARGET ?= 127.0.0.1:8600
DNS_SERVICES ?= hello-web-hello
bench-dns-target:
	command -v dnsperf >/dev/null 2>&1 || (apt-get update && apt-get install -y dnsperf)
	$(GO) run ./cmd/strata-bench dns -target $(DNS_TARGET) -service $(DNS_SERVICES) -duration 15s -inflight 50 -rounds $(DNS_ROUNDS)

clean:
	rm -rf bin $(WASM_EXAMPLES)

examples/server/server.wasm: $(wildcard examples/server/*.go)
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $@ ./examples/server

examples/worker/worker.wasm: $(wildcard examples/worker/*.go)
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $@ ./examples/worker

# tiny.wasm is written by hand (tiny.wat) and committed. It is assembled by
# wabt's wat2wasm where installed, else by the encoder in its test: the same
# bytes either way (TestTinyWasm checks).
examples/tiny/tiny.wasm: examples/tiny/tiny.wat
	if command -v wat2wasm >/dev/null 2>&1; then wat2wasm -o $@ $<; \
	else $(GO) test ./examples/tiny -run TestTinyWasm -update; fi

# The web UI's browser test (cmd/strata TestWebUI) drives Debian's
# chromium through chromedp; it fails, never skips, without it.
tools-chromium:
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends chromium)
