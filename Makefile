# Keyport — build, test, lint and the real Kubernetes test bed.
# Every tool version is pinned here, in one place.

K8S_VERSION           ?= v1.34.4
KWOK_VERSION          ?= v0.8.0
HELM_VERSION          ?= v3.22.0
MINIO_VERSION         ?= v0.0.0-20260212201848-7aac2a2c5b7c
# Dex v2.45.1 (its commit's pseudo-version; Dex's v2 tags are not Go module versions) and
# the api/v2 module its go.mod replaces with a local directory.
DEX_VERSION           ?= v0.0.0-20260303133905-11d2eeb52b42
DEX_API_VERSION       ?= v2.4.0
GOLANGCI_LINT_VERSION ?= v2.15.0

KEYPORT_CACHE ?= $(HOME)/.cache/keyport
export KEYPORT_CACHE
TOOLS_BIN := $(KEYPORT_CACHE)/bin
export PATH := $(TOOLS_BIN):/usr/local/go/bin:$(PATH)

GO      ?= go
BINS    := keyport tctl tsh tbot
# A count, not a duration: with a duration Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" when the deadline races a busy worker
# (go.dev/issue/75804, fixed in Go 1.27). 5000 runs take 1–10 s per target here.
FUZZTIME ?= 5000x

.PHONY: all build test unit lint vet fmt kube-tools kube-e2e lint-tools fuzz-short bench bench-deployed conformance quickstart quickstart-down clean proto

all: build

## build: the four binaries into ./bin
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -o bin/ $(addprefix ./cmd/,$(BINS))

## kube-tools: etcd, kube-apiserver, kube-controller-manager, kwok, helm, minio, dex, chromium into $(KEYPORT_CACHE)/bin
kube-tools:
	@K8S_VERSION=$(K8S_VERSION) KWOK_VERSION=$(KWOK_VERSION) HELM_VERSION=$(HELM_VERSION) MINIO_VERSION=$(MINIO_VERSION) DEX_VERSION=$(DEX_VERSION) DEX_API_VERSION=$(DEX_API_VERSION) ./scripts/kube-tools.sh

## kube-e2e: kube-tools and the upstream e2e.test binary, for the conformance tests
## (about 16 more minutes the first time; make quickstart does not need it)
kube-e2e:
	@K8S_VERSION=$(K8S_VERSION) KWOK_VERSION=$(KWOK_VERSION) HELM_VERSION=$(HELM_VERSION) MINIO_VERSION=$(MINIO_VERSION) DEX_VERSION=$(DEX_VERSION) DEX_API_VERSION=$(DEX_API_VERSION) KUBE_E2E=1 ./scripts/kube-tools.sh

## test: installs what a fresh machine lacks, then runs every test (race detector on)
test: kube-e2e build vet
	$(GO) test -race -count=1 -timeout=40m ./...
	$(MAKE) fuzz-short

## fuzz-short: every fuzz target for a few seconds
fuzz-short:
	@set -e; for spec in $$(./scripts/fuzz-targets.sh); do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## lint: gofmt, go vet and golangci-lint (pinned, installed with go install)
lint: lint-tools vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	golangci-lint run ./...

lint-tools:
	@if [ "$$(cat $(KEYPORT_CACHE)/stamps/golangci-lint 2>/dev/null)" != "$(GOLANGCI_LINT_VERSION)" ] || [ ! -x $(TOOLS_BIN)/golangci-lint ]; then \
		mkdir -p $(TOOLS_BIN) $(KEYPORT_CACHE)/stamps; \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION)"; \
		GOBIN=$(TOOLS_BIN) CGO_ENABLED=0 $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) && \
		echo $(GOLANGCI_LINT_VERSION) > $(KEYPORT_CACHE)/stamps/golangci-lint; \
	fi

## bench: Go benchmarks of the storage backends, the proxy's CPU per request against a
## canned in-process API server (direct, bare Go reverse proxy, Keyport), then the
## Kubernetes proxy against direct access on a real control plane (internal/bench;
## BENCH_FLAGS="-cpuprofile cpu.pprof" profiles it)
BENCH_FLAGS ?=
bench: kube-tools
	$(GO) test -run='^$$' -bench=. -benchtime=2000x ./internal/backend/...
	$(GO) test -run='^$$' -bench=ProxyCannedUpstream -benchtime=20000x -count=2 ./internal/bench
	$(GO) run ./internal/bench/cmd/keyport-bench $(BENCH_FLAGS)

## bench-deployed: Keyport as users run it — the built keyport start -c, a tbot kubeconfig,
## a client-go load process and a bare Go reverse proxy, each its own process — with the
## in-process GET ratios of the same run beside it (about 4 minutes;
## BENCH_DEPLOYED_FLAGS="-cpuprofile keyport.pprof" profiles the running keyport)
BENCH_DEPLOYED_FLAGS ?=
bench-deployed: kube-tools build
	$(GO) build -o bin/keyport-bench ./internal/bench/cmd/keyport-bench
	bin/keyport-bench deployed -bin bin $(BENCH_DEPLOYED_FLAGS)

## conformance: the upstream [sig-api-machinery] [Conformance] e2e tests (and the
## server-side apply, Table and dry-run ones), run directly and through Keyport (a bot whose
## role grants system:masters); fails when a test passes directly but not through Keyport.
## About 40 minutes; make test runs a one-minute selection (conformance.CISelection).
CONFORMANCE_FLAGS ?=
conformance: kube-e2e build
	$(GO) run ./internal/conformance/cmd/keyport-conformance -e2e $(TOOLS_BIN)/e2e.test -tbot bin/tbot -kubectl $(TOOLS_BIN)/kubectl -v $(CONFORMANCE_FLAGS)

## quickstart: a local control plane + keyport, then the guide's steps (state in .quickstart/)
quickstart: kube-tools build
	@$(GO) build -o bin/quickstart ./internal/quickstart/cmd/quickstart
	@bin/quickstart up

## quickstart-down: stop every process make quickstart started
quickstart-down:
	@if [ -x bin/quickstart ]; then bin/quickstart down; else echo "quickstart: nothing is running"; fi

clean:
	rm -rf bin

# Protobuf generation: protoc from Debian (protobuf-compiler 3.21), plugins pinned here.
PROTOC_GEN_GO_VERSION      ?= v1.36.10
PROTOC_GEN_GO_GRPC_VERSION ?= v1.5.1

## proto: regenerate api/gen from api/proto (the generated code is committed)
proto:
	@command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	protoc -I api/proto --go_out=api/gen --go_opt=module=github.com/keyport/keyport/api/gen \
		--go-grpc_out=api/gen --go-grpc_opt=module=github.com/keyport/keyport/api/gen api/proto/keyport/v1/*.proto
