#!/usr/bin/env bash
# make demo: build cortex, make a mesh CA and three node certificates, start
# three cortexd nodes on 127.0.0.1 that find each other through one seed,
# show the mesh from each node, write on one node and read on the others,
# and stop everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/ ./cmd/...
export PATH="$PWD/bin:$PATH"

work=$(mktemp -d /tmp/cortex-demo-XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step cortex cert create-ca --dir "$work/certs"
step cortex cert create-node home --dir "$work/certs" --host 127.0.0.1 --role admin  # administers the mesh
for n in office laptop; do step cortex cert create-node "$n" --dir "$work/certs" --host 127.0.0.1; done  # members

seed=
for n in home office laptop; do
	# Port 0: the node picks a free port and shows it in `cortex node status`.
	args=(--data-dir "$work/$n" --socket "$work/$n.sock" --mesh-listen 127.0.0.1:0
		--mesh-ca "$work/certs/ca.crt" --mesh-cert "$work/certs/node-$n.crt" --mesh-key "$work/certs/node-$n.key")
	[ -n "$seed" ] && args+=(--peer "$seed")  # the others know only the first node
	cortexd "${args[@]}" 2>"$work/$n.log" &
	pids+=($!)
	for _ in $(seq 100); do cortex --socket "$work/$n.sock" node status >/dev/null 2>&1 && break; sleep 0.1; done
	if [ -z "$seed" ]; then
		seed=$(cortex --socket "$work/$n.sock" node status --json | grep -o '"mesh_addrs":\["[^"]*' | cut -d'"' -f4)
		echo "home listens on $seed"
	fi
done
# Wait until every node sees the two others (laptop learns office through home).
for n in home office laptop; do
	for _ in $(seq 100); do
		[ "$(cortex --socket "$work/$n.sock" mesh peers --json | grep -o '"connected":true' | wc -l)" = 2 ] && break
		sleep 0.1
	done
done
for n in home office laptop; do step cortex --socket "$work/$n.sock" mesh peers; done

home=(--socket "$work/home.sock"); office=(--socket "$work/office.sock"); laptop=(--socket "$work/laptop.sock")
# Replication is asynchronous: wait (bounded) until a node can read a key.
await() { for _ in $(seq 100); do cortex "$@" >/dev/null 2>&1 && break; sleep 0.05; done; }

step cortex "${home[@]}" table create fruit --scope all
step cortex "${home[@]}" put fruit apple red
await "${office[@]}" get fruit apple; await "${laptop[@]}" get fruit apple
step cortex "${office[@]}" get fruit apple
step cortex "${laptop[@]}" get fruit apple
printf 'yellow' | step cortex "${laptop[@]}" put fruit banana -
await "${home[@]}" get fruit banana
step cortex "${home[@]}" scan fruit --json
step cortex "${office[@]}" del fruit apple
for _ in $(seq 100); do cortex "${laptop[@]}" get fruit apple >/dev/null 2>&1 || break; sleep 0.05; done
step cortex "${laptop[@]}" scan fruit
step cortex "${office[@]}" table list
step cortex "${home[@]}" sync status --wait 10s  # exits 0 once every copy agrees
step cortex "${laptop[@]}" node status

printf '\n\033[1m$ kill -TERM %s\033[0m  (all three nodes)\n' "${pids[*]}"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
for i in "${!pids[@]}"; do wait "${pids[$i]}" && echo "cortexd ${pids[$i]} exited 0"; done
pids=()
