# cortex: replicated key-value tables for a small mesh of machines.
GO      ?= go
BIN     := bin
GOFLAGS ?=

.PHONY: all build test demo run fmt lint bench clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

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
