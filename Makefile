# cortex: replicated key-value tables for a small mesh of machines.
GO      ?= go
BIN     := bin
GOFLAGS ?=

.PHONY: all build test demo run fmt lint bench bench-quick bench-units clean

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

# The mesh benchmark (integration/meshbench_test.go): meshes of 3, 8 and 16
# real cortexd processes on 127.0.0.1, one markdown table with every figure
# (docs/benchmarks.md). About 10-15 minutes on 2 cores; needs no root.
bench:
	$(GO) test -run '^$$' -bench '^BenchmarkMesh$$' -benchtime 1x -timeout 40m ./integration

# The same with small counts and one round (about 1-2 minutes): checks that
# it runs; its figures mean nothing.
bench-quick:
	CORTEX_BENCH_QUICK=1 $(GO) test -run '^$$' -bench '^BenchmarkMesh$$' -benchtime 1x -timeout 20m ./integration

# Every benchmark of every package, once each (the old `make bench`).
bench-units:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

clean:
	rm -rf $(BIN)
