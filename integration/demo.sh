#!/usr/bin/env bash
# make demo: build cortex, start one cortexd in a temporary directory, create
# a table, write and read through the CLI, list the tables, stop it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/ ./cmd/...
export PATH="$PWD/bin:$PATH"

work=$(mktemp -d /tmp/cortex-demo-XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
export CORTEX_SOCKET="$work/cortex.sock"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

cortexd --data-dir "$work/home" --node-name home 2>"$work/cortexd.log" &
pid=$!
for _ in $(seq 100); do cortex node status >/dev/null 2>&1 && break; sleep 0.1; done

step cortex node status
step cortex table create fruit --scope all
step cortex put fruit apple red
step cortex put fruit banana yellow
printf "dark red" | step cortex put fruit cherry -
step cortex get fruit apple
step cortex scan fruit
step cortex del fruit banana
step cortex scan fruit --json
step cortex table list
step cortex get fruit banana || echo "(exit $? : not found)"

printf '\n\033[1m$ kill -TERM %s\033[0m\n' "$pid"
kill -TERM "$pid"; wait "$pid"; echo "cortexd exited $?"; pid=
tail -n 3 "$work/cortexd.log"
