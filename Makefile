# kvnode developer entry points. `make test` is what CI runs.
GO ?= go

.PHONY: run test build vet fuzz

run:
	$(GO) run ./cmd/kvnode

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/kvnode ./cmd/kvnode

# golangci-lint at the version tools/go.mod pins (a module of its own, so
# the main module never gains its dependencies). `go tool` builds it once
# into the Go build cache: minutes cold, about a second after that.
LINT = $(GO) tool -modfile=$(CURDIR)/tools/go.mod golangci-lint

vet:
	$(GO) vet ./...
	$(GO) mod tidy -diff
	./scripts/check-versions.sh
	cd jepsen && $(GO) mod tidy -diff
	cd tools && $(GO) mod tidy -diff
	$(LINT) run ./...
	$(LINT) run --build-tags failpoint ./internal/failpoint/... ./fsm/... ./log/...
	cd jepsen && $(LINT) run ./...
	cd rrplugin && $(LINT) run ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

test: vet
	./scripts/test-deps.sh
	$(GO) test -race -timeout 15m ./...

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzServeFrame -fuzztime=60s ./rpc/

# rrplugin-test: the RoadRunner driver plugin, a module of its own (the main
# module never depends on RoadRunner). Its tests build kvnode and a
# RoadRunner binary with the plugin, and run them as local processes.
.PHONY: rrplugin-test
rrplugin-test:
	./scripts/test-deps.sh
	cd rrplugin && test -z "$$($(GO) mod tidy -diff)" && $(GO) vet ./...
	cd rrplugin/testdata/rr && test -z "$$($(GO) mod tidy -diff)" && $(GO) vet ./...
	cd rrplugin && $(GO) test -race -count=1 -timeout 10m ./...

# --- docker cluster and jepsen harness (docs/jepsen.md) ---
COMPOSE ?= docker-compose
CLUSTER_FILE := docker-compose.cluster.yml
KVNODE_IMAGE ?= kvnode:local
# The harness's image: KVNODE_IMAGE with a failpoint build of kvnode (skew,
# slow-disk and slow-fsm nemeses). Never ship it.
KVNODE_FP_IMAGE ?= $(KVNODE_IMAGE)-failpoint
JEPSEN_FLAGS ?=

SECRETS_DIR ?= .cluster-secrets

.PHONY: static image static-failpoint image-failpoint cluster-secrets cluster-up cluster-down jepsen-test jepsen-smoke jepsen-long jepsen-failover

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

# cluster-secrets makes the compose cluster's secrets on the host, keeping what
# is there: a CA in $(SECRETS_DIR)/ca, whose key never enters a container, and in
# $(SECRETS_DIR)/nodes (mounted read-only as /etc/kvnode/secrets) its certificate,
# one certificate per node, a gossip key and the admin token (also what
# `kvnode snapshot --token-file` reads). $(SECRETS_DIR) is git-ignored.
cluster-secrets: static
	@mkdir -p $(SECRETS_DIR)/ca $(SECRETS_DIR)/nodes && chmod 700 $(SECRETS_DIR) $(SECRETS_DIR)/ca
	@[ -e $(SECRETS_DIR)/ca/ca.pem ] || ./bin/kvnode tls ca --dir $(SECRETS_DIR)/ca
	@[ -e $(SECRETS_DIR)/nodes/ca.pem ] || cp $(SECRETS_DIR)/ca/ca.pem $(SECRETS_DIR)/nodes/ca.pem
	@for n in node1 node2 node3; do \
		[ -e $(SECRETS_DIR)/nodes/$$n.pem ] || ./bin/kvnode tls cert $$n --host $$n-peer --dir $(SECRETS_DIR)/nodes \
			--ca $(SECRETS_DIR)/ca/ca.pem --ca-key $(SECRETS_DIR)/ca/ca-key.pem || exit 1; \
	done
	@[ -e $(SECRETS_DIR)/nodes/gossip.key ] || (umask 077 && ./bin/kvnode keygen > $(SECRETS_DIR)/nodes/gossip.key.new && \
		mv $(SECRETS_DIR)/nodes/gossip.key.new $(SECRETS_DIR)/nodes/gossip.key)
	@[ -e $(SECRETS_DIR)/nodes/admin.token ] || (umask 077 && ./bin/kvnode keygen > $(SECRETS_DIR)/nodes/admin.token.new && \
		mv $(SECRETS_DIR)/nodes/admin.token.new $(SECRETS_DIR)/nodes/admin.token)

# cluster-up builds the binary and the image, makes the secrets and starts three
# nodes with RPC on 127.0.0.1:6001-6003; it returns once every node reports healthy.
cluster-up: image cluster-secrets
	KVNODE_IMAGE=$(KVNODE_IMAGE) KVNODE_SECRETS_DIR=$(abspath $(SECRETS_DIR))/nodes $(COMPOSE) -f $(CLUSTER_FILE) up -d --no-build
	./jepsen/scripts/wait-healthy.sh $(COMPOSE) -f $(CLUSTER_FILE)

cluster-down:
	$(COMPOSE) -f $(CLUSTER_FILE) down -v --remove-orphans

# jepsen-test: the harness's own tests, including the unsafe-reads test that
# must find an anomaly (docker when present, local processes otherwise).
jepsen-test: static
	if docker info >/dev/null 2>&1; then docker build -q -t $(KVNODE_IMAGE) . >/dev/null; fi
	$(GO) vet -tags failpoint ./internal/failpoint ./fsm ./log && $(GO) test -count=1 -tags failpoint ./internal/failpoint
	cd jepsen && $(GO) vet ./... && KVNODE_BIN=$(CURDIR)/bin/kvnode KVNODE_IMAGE=$(KVNODE_IMAGE) KVNODE_FP_IMAGE=$(KVNODE_FP_IMAGE) $(GO) test -count=1 -timeout 10m ./...

# jepsen-smoke is the CI run (under 7 minutes with the builds): 2 minutes of
# workload with every nemesis (wipe, skew and the slow ones included) against
# a compose project of its own, always torn down, 1 minute on the raft-wal log
# store, then the unsafe-reads test.
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
