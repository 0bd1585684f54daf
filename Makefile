# kvnode developer entry points. `make test` is what CI runs.
GO ?= go

.PHONY: run test build vet fuzz

run:
	$(GO) run ./cmd/kvnode

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/kvnode ./cmd/kvnode

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

test: vet
	./scripts/test-deps.sh
	$(GO) test -race -timeout 15m ./...

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzServeFrame -fuzztime=60s ./rpc/

# --- docker cluster and jepsen harness (docs/jepsen.md) ---
COMPOSE ?= docker-compose
CLUSTER_FILE := docker-compose.cluster.yml
KVNODE_IMAGE ?= kvnode:local
# The harness's image: KVNODE_IMAGE with a failpoint build of kvnode (skew,
# slow-disk and slow-fsm nemeses). Never ship it.
KVNODE_FP_IMAGE ?= $(KVNODE_IMAGE)-failpoint
JEPSEN_FLAGS ?=

.PHONY: static image static-failpoint image-failpoint cluster-up cluster-down jepsen-test jepsen-smoke jepsen-long jepsen-failover

# static is the CGO-free binary the FROM-scratch image copies.
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/kvnode ./cmd/kvnode

image: static
	docker build -q -t $(KVNODE_IMAGE) .

# static-failpoint and image-failpoint build the harness's kvnode with the
# failpoint tag, beside (never instead of) the normal binary and image.
static-failpoint:
	CGO_ENABLED=0 $(GO) build -tags failpoint -trimpath -ldflags='-s -w' -o bin/failpoint/kvnode ./cmd/kvnode

image-failpoint: image static-failpoint
	docker build -q -t $(KVNODE_FP_IMAGE) --build-arg BASE=$(KVNODE_IMAGE) -f jepsen/docker/Dockerfile.failpoint bin/failpoint

# cluster-up builds the binary and the image and starts three nodes with RPC on
# 127.0.0.1:6001-6003; it returns once every node reports healthy.
cluster-up: image
	KVNODE_IMAGE=$(KVNODE_IMAGE) $(COMPOSE) -f $(CLUSTER_FILE) up -d --no-build
	./jepsen/scripts/wait-healthy.sh $(COMPOSE) -f $(CLUSTER_FILE)

cluster-down:
	$(COMPOSE) -f $(CLUSTER_FILE) down -v --remove-orphans

# jepsen-test: the harness's own tests, including the unsafe-reads test that
# must find an anomaly (docker when present, local processes otherwise).
jepsen-test: static
	if docker info >/dev/null 2>&1; then docker build -q -t $(KVNODE_IMAGE) . >/dev/null; fi
	$(GO) vet -tags failpoint ./internal/failpoint ./fsm ./log && $(GO) test -count=1 -tags failpoint ./internal/failpoint
	cd jepsen && $(GO) vet ./... && KVNODE_BIN=$(CURDIR)/bin/kvnode KVNODE_IMAGE=$(KVNODE_IMAGE) KVNODE_FP_IMAGE=$(KVNODE_FP_IMAGE) $(GO) test -count=1 -timeout 10m ./...

# jepsen-smoke is the CI run (under 5 minutes with the builds): 2 minutes of
# workload with every nemesis (wipe, skew and the slow ones included) against
# a compose project of its own, always torn down, then the unsafe-reads test.
jepsen-smoke:
	GO=$(GO) KVNODE_IMAGE=$(KVNODE_IMAGE) KVNODE_FP_IMAGE=$(KVNODE_FP_IMAGE) ./jepsen/scripts/smoke.sh

# jepsen-long is the documented long run (docs/jepsen.md): every nemesis,
# 60 minutes, on the failpoint image.
jepsen-long: image-failpoint
	cd jepsen && $(GO) run ./cmd/jepsen -mode=auto -image=$(KVNODE_FP_IMAGE) -duration=60m \
		-nemeses=all -out=/tmp/kvnode-jepsen-long $(JEPSEN_FLAGS)

# jepsen-failover measures write unavailability after 10 leader kills.
jepsen-failover: image
	cd jepsen && $(GO) run ./cmd/jepsen -mode=auto -image=$(KVNODE_IMAGE) -failover=10 \
		-out=/tmp/kvnode-jepsen-failover $(JEPSEN_FLAGS)
