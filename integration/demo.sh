#!/usr/bin/env bash
# make demo: the story of cortex in under a minute, on 127.0.0.1. It builds
# the binaries, makes a mesh CA and three node certificates, starts three
# cortexd nodes (home, office, laptop) that find each other through one seed,
# and then shows: a table that stays on its node (local), one on two nodes (a
# list), one everywhere (all); writes read elsewhere; a node killed -9 that
# catches up; a node away while the others write, conflicting, that comes
# back and converges; sync status before and after; a clean stop.
# Everything lives in a temporary directory removed at the end. Colour only
# on a terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/ ./cmd/...
export PATH="$PWD/bin:$PATH"

work=$(mktemp -d /tmp/cortex-demo-XXXXXX)
declare -A pid
cleanup() {
	for p in "${pid[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pid[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
if [ -t 1 ]; then bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'; else bold= dim= off=; fi
say() { echo; for line in "$@"; do printf '%s# %s%s\n' "$dim" "$line" "$off"; done; } # one line per argument
show() { printf '%s$ %s%s\n' "$bold" "$*" "$off"; }
step() { show "$*"; "$@"; }
quiet() { show "$*"; "$@" >/dev/null; }
value() { show "$*"; "$@"; echo; } # get prints the value as stored, without a newline
# expect CODE CMD...: run a command that must fail with exit CODE.
expect() {
	local want=$1 code=0; shift
	show "$*"
	"$@" || code=$?
	[ "$code" = "$want" ] || { echo "demo: expected exit $want, got $code" >&2; exit 1; }
	echo "${dim}(exit $code)${off}"
}
# poll CMD...: wait (at most 30 s) until a command succeeds.
poll() { for _ in $(seq 600); do "$@" >/dev/null 2>&1 && return; sleep 0.05; done; echo "demo: timed out: $*" >&2; exit 1; }
# is WANT CMD...: CMD prints WANT (for poll).
is() { local want=$1; shift; [ "$("$@")" = "$want" ]; }

on() { local n=$1; shift; cortex --socket "$work/$n.sock" "$@"; }
start() {
	local n=$1
	# Port 0: the node picks a free port, and tells the others in its membership record.
	local args=(--data-dir "$work/$n" --socket "$work/$n.sock" --mesh-listen 127.0.0.1:0
		--mesh-ca "$work/certs/ca.crt" --mesh-cert "$work/certs/node-$n.crt" --mesh-key "$work/certs/node-$n.key")
	[ -n "$seed" ] && args+=(--peer "$seed") # the others know only home
	cortexd "${args[@]}" 2>>"$work/$n.log" &
	pid[$n]=$!
	poll on "$n" node status
}
# connected N: how many peers node N is connected to.
connected() { on "$1" mesh peers --json | grep -o '"connected":true' | wc -l; }
full_mesh() { for n in home office laptop; do poll is 2 connected "$n"; done; }

say "Below, \"on NODE ...\" is \"cortex --socket NODE.sock ...\": the CLI talking to that node's daemon."
say "A mesh CA and a certificate per node: home administers the mesh, the others are members."
quiet cortex cert create-ca --dir "$work/certs"
quiet cortex cert create-node home --dir "$work/certs" --host 127.0.0.1 --role admin
for n in office laptop; do quiet cortex cert create-node "$n" --dir "$work/certs" --host 127.0.0.1; done

say "Three nodes; office and laptop are given only home's address and find each other through it."
seed=
start home
seed=$(on home node status --json | grep -o '"mesh_addrs":\["[^"]*' | cut -d'"' -f4)
for n in office laptop; do start "$n"; done
full_mesh
step on laptop mesh peers

say "Three tables: notes stays on home (local), plans lives on home and office, fruit everywhere."
step on home table create notes --scope local
step on home table create plans --scope home,office
step on home table create fruit --scope all
step on home put notes todo 'water the plants'
step on home put plans q1 'ship it'
step on laptop put fruit apple red
poll on office get plans q1
poll on home get fruit apple
value on office get plans q1
value on home get fruit apple
expect 1 on office get notes todo # office holds no copy of notes, and never received a byte of it
step on office table list

say "kill -9 office, write 200 keys on home while it is gone, start it again: it catches up."
kill -KILL "${pid[office]}"; wait "${pid[office]}" 2>/dev/null || true
show "kill -KILL office; for i in 1..200: cortex put fruit key-\$i \$i (on home)"
for i in $(seq 200); do on home put fruit "key-$i" "$i"; done
step on home sync status fruit || true # exit 6: office should hold a copy but cannot be reached
show "cortexd ... (office again)"; start office
step on office sync status fruit --wait 10s
value on office get fruit key-200

say "laptop goes away; home and office write the same key (a conflict) while it is gone; when" \
	"laptop is back every node converges on the newest write (last-write-wins)."
show "kill -TERM laptop"; kill -TERM "${pid[laptop]}"; wait "${pid[laptop]}"
step on home put fruit banana yellow
step on office put fruit banana green # newer: this one wins everywhere
show "cortexd ... (laptop again)"; start laptop
full_mesh
step on laptop sync status fruit --wait 10s # exits 0 once every copy agrees
poll is green on laptop get fruit banana
value on laptop get fruit banana
step on home sync status --wait 10s

say "A clean stop: SIGTERM finishes the writes in flight, checkpoints and exits 0."
for n in home office laptop; do
	show "kill -TERM $n"; kill -TERM "${pid[$n]}"
	wait "${pid[$n]}" && echo "cortexd $n exited 0"
	unset "pid[$n]"
done
