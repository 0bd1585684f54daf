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
