#!/usr/bin/env bash
# make demo: until cortexd exists, show the storage core on its own: a table
# copy written, closed, reopened from its checkpoint and log, and read back.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 -run '^ExampleTable$' -v ./tables
