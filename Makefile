# natif-uploader: build, test and demo. Every target works on a fresh machine
# with Go 1.26; test-integration also needs redis-server on PATH
# (Debian: apt-get install redis-server), which .ci/run installs.

SHELL    := /bin/bash
GO       ?= go
BIN      := bin/natif-uploader
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Packages that hold tests tagged integration.
INTEGRATION_PKGS = $(shell grep -rl --include='*_test.go' '^//go:build integration' . | xargs -r -n1 dirname | sort -u)

.PHONY: all build test test-integration test-e2e fuzz vet lint staticcheck fmt-check demo demo-curl fake-api run bench bench-quick bench-go clean

# staticcheck, pinned; `go run` fetches it from the module proxy on first use.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

all: vet test build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/natif-uploader

## test: every test that needs no outside service, with the race detector.
test:
	$(GO) test -race -count=1 ./...
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...

## test-integration: the tests tagged integration (their names hold "Real"),
## against private redis-server processes the test harness starts on free
## loopback ports. The unit tests of those packages run in make test.
test-integration:
	@command -v redis-server >/dev/null 2>&1 || { echo "make test-integration: redis-server not found on PATH; install it (Debian: apt-get install redis-server)" >&2; exit 1; }
	$(GO) test -race -count=1 -tags integration -run Real $(INTEGRATION_PKGS)

## test-e2e: the reliability suite (e2e/): the built binary against private
## redis-server processes and the simulator, through kill -9 crashes, a Redis
## restart, a fault storm, rejected credentials, an exhausted quota and a
## corpus of bad input. The daemons are built with -race (E2E_RACE=1): a data
## race in one fails its test. A few minutes; E2E_FILES sets the crash tests' size.
test-e2e:
	@command -v redis-server >/dev/null 2>&1 || { echo "make test-e2e: redis-server not found on PATH; install it (Debian: apt-get install redis-server)" >&2; exit 1; }
	E2E_RACE=1 $(GO) test -race -count=1 -tags e2e -timeout 20m -v ./e2e/ 2>&1 | tee e2e.out | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|E2E-FIGURES' ; exit $${PIPESTATUS[0]}

## fuzz: every native fuzz target, its seed corpus plus FUZZTIME of new input.
## A count of inputs, not a duration: with a duration, go1.26's fuzz coordinator
## can fail a target with a bare "context deadline exceeded" at the deadline
## (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 50000x
FUZZ_TARGETS = config:FuzzLoad worker:FuzzClassify worker:FuzzParsePayload worker:FuzzPayloadValidate \
	worker:FuzzSniff natif:FuzzParseTokenResponse natif:FuzzTokenError natif:FuzzAPIError \
	natif:FuzzParseRetryAfter watcher:FuzzCheckComplete
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg/ >/tmp/natif-fuzz.out 2>&1 || { cat /tmp/natif-fuzz.out; exit 1; }; \
	  tail -1 /tmp/natif-fuzz.out; done

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) vet -tags e2e ./e2e/

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## demo: the whole flow on this machine: simulator, embedded queue, sample invoices.
demo: build
	$(BIN) demo

## demo-curl: the natif simulator's token flow, step by step with curl.
demo-curl: build
	./scripts/demo-token-flow.sh $(BIN)

## run: the daemon against the local simulator (start make fake-api first).
run: build
	NATIF_BASE_URL=http://127.0.0.1:8089 NATIF_USERNAME=demo NATIF_PASSWORD=demo $(BIN) run

## lint: go vet with and without the integration tag, gofmt and staticcheck.
lint: vet fmt-check staticcheck

staticcheck:
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags integration ./...
	$(GO) run $(STATICCHECK) -tags e2e ./e2e/

## fake-api: run the simulator in the foreground on 127.0.0.1:8089.
fake-api: build
	$(BIN) fake-api --addr 127.0.0.1:8089

clean:
	rm -rf bin

## bench: the whole benchmark of issue 8 (bench/, a module of its own): the pipeline
## against a bare uploader and curl, per-file cost, latency, memory, backlog, token
## manager, scaling; writes bench/RESULTS.md and bench/throughput.png. About 15
## minutes on 2 cores, against a private redis-server and the simulator on loopback.
bench:
	@command -v redis-server >/dev/null 2>&1 || { echo "make bench: redis-server not found on PATH; install it (Debian: apt-get install redis-server)" >&2; exit 1; }
	@command -v curl >/dev/null 2>&1 || { echo "make bench: curl not found on PATH; install it (Debian: apt-get install curl)" >&2; exit 1; }
	cd bench && $(GO) run .

## bench-quick: the same at small sizes (a minute or two); output in bench/out/.
bench-quick:
	@command -v redis-server >/dev/null 2>&1 || { echo "make bench-quick: redis-server not found on PATH; install it (Debian: apt-get install redis-server)" >&2; exit 1; }
	cd bench && $(GO) run . -quick

## bench-go: the Go benchmarks of the packages (token fast path, watcher backlog, detection latency).
bench-go:
	@command -v redis-server >/dev/null 2>&1 || { echo "make bench-go: redis-server not found on PATH; install it (Debian: apt-get install redis-server)" >&2; exit 1; }
	$(GO) test -run XXX -bench TokenFastPath -benchmem -benchtime 2s ./auth/
	$(GO) test -tags integration -run XXX -bench . -benchtime 1x ./watcher/
