# cortex: replicated key-value tables for a small mesh of machines.
GO      ?= go
BIN     := bin
GOFLAGS ?=

.PHONY: all build test demo run fmt lint bench clean

all: build

# The version the binaries print (--version): git describe, with a tag
# (v0.2.0, v0.2.0-3-g1a2b3c4-dirty) or without (the commit alone: the binaries
# then say 0.x.y-dev); empty without git, when they fall back to what go build
# recorded. Override with make VERSION=... COMMIT=...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git describe --always --dirty --abbrev=7 --exclude='*' 2>/dev/null)
CLI     := github.com/cortex-mesh/cortex/cmd/internal/cli
LDFLAGS := -X $(CLI).version=$(VERSION) -X $(CLI).commit=$(COMMIT)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

test:
	$(GO) test -race -count=1 -timeout 20m ./...

demo:
	bash integration/demo.sh

# Run one standalone node on ./cortex-data (socket ./cortex-data/cortex.sock).
run: build
	$(BIN)/cortexd

fmt:
	gofmt -w $$(git ls-files '*.go')

lint:
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

clean:
	rm -rf $(BIN)
