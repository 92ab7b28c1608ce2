#!/usr/bin/env bash
# Instructions per event through the NATS bridge, beside raw libnats,
# counted by callgrind: repeatable where the bridge benchmark's timings on
# a shared machine are not.
#
# `ebus-bench --scenario bridge --only SYSTEM --events N` runs one
# throughput measurement: a receiver and a sender process forked from
# ebus-bench, through a nats-server (not counted: the server is the same
# for both systems). Each is counted at two sizes; the difference divided
# by the difference in events cancels set-up and tear-down. Both sides
# count every thread of their process (the bus's executor, the bridge's
# export thread, libnats's reader, flusher and delivery threads), so idle
# polling is in the count as well as the work.
#
#   scripts/cost-bridge.sh            sizes 20000 and 40000
#   EBUS_COST_N1=.. EBUS_COST_N2=.. scripts/cost-bridge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ebus_need_packages "${EBUS_BASE_PACKAGES[@]}" valgrind libzmq3-dev libnats-dev nats-server
n1=${EBUS_COST_N1:-20000}
n2=${EBUS_COST_N2:-40000}
bin=$(ebus_cost_tool ebus-bench)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

total() { grep -m1 '^summary:' "$1" | awk '{print $2}'; }

# count SYSTEM N: leaves the receiver's and the sender's totals in $recv $send
count() {
	local dir=$work/$1-$2 f
	mkdir -p "$dir"
	(cd "$dir" && valgrind --tool=callgrind --trace-children=yes \
		--trace-children-skip='*nats-server*,*/sh' --callgrind-out-file="$dir/cg.%p" \
		"$OLDPWD/$bin" --scenario bridge --only "$1" --events "$2" >out.txt 2>err.txt) ||
		{ cat "$dir/out.txt" "$dir/err.txt" >&2; exit 1; }
	recv=0 send=0
	for f in "$dir"/cg.*; do
		if grep -Eq '^c?fn=.*(on_nats_msg|on_bridge_event)$' "$f"; then recv=$(total "$f"); fi
		if grep -Eq '^c?fn=.*send_loop$' "$f"; then send=$(total "$f"); fi
	done
	[ "$recv" != 0 ] && [ "$send" != 0 ] || { echo "no receiver or sender profile in $dir" >&2; exit 1; }
}

printf '%-10s %12s %12s %12s\n' system receiver sender both
declare -A per
for sys in libnats bridge; do
	count "$sys" "$n1"; r1=$recv s1=$send
	count "$sys" "$n2"; r2=$recv s2=$send
	r=$(( (r2 - r1) / (n2 - n1) )) s=$(( (s2 - s1) / (n2 - n1) ))
	per[$sys]=$((r + s))
	printf '%-10s %12d %12d %12d\n' "$sys" "$r" "$s" $((r + s))
done
awk -v b="${per[bridge]}" -v n="${per[libnats]}" \
	'BEGIN { printf "bridge / libnats: %.2fx instructions per event (sizes '"$n1"' and '"$n2"')\n", b / n }'
