#!/usr/bin/env bash
# Instructions per event, ebus beside a raw ck_ring, counted by callgrind:
# repeatable where timings are not (the method: bench/README.md).
#
# tools/ebus-cost runs each scenario at two sizes; the difference divided
# by the difference in events cancels set-up and tear-down. The consumer
# is held off its lane until every event is in it, so it never polls an
# empty lane while it works: its thread's instructions are transport and
# dispatch, and the handler bodies, which are subtracted. The publisher's
# cost is its loop (inclusive: the call, the lane, the fences, the loop).
#
# Rows: the throughput and fanout scenarios beside the raw ring, then
# ebus's other publish paths beside ebus_publish (by name, batches of 64,
# claims, 256-byte payloads through the lane arena).
#
#   scripts/cost.sh                  sizes 100000 and 200000
#   EBUS_COST_N1=.. EBUS_COST_N2=.. scripts/cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ebus_need_packages "${EBUS_BASE_PACKAGES[@]}" valgrind
n1=${EBUS_COST_N1:-100000}
n2=${EBUS_COST_N2:-200000}
bin=$(ebus_cost_tool ebus-cost)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ir() { # FILE FUNCTION: inclusive instructions of FUNCTION in FILE (0 if absent)
	callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
		awk -v f=":$2 " 'index($0, f) { gsub(",", "", $1); print $1; found = 1; exit } END { if (!found) print 0 }'
}
self() { # FILE FUNCTION: its own instructions
	callgrind_annotate "$1" 2>/dev/null |
		awk -v f=":$2 " 'index($0, f) { gsub(",", "", $1); print $1; found = 1; exit } END { if (!found) print 0 }'
}
total() {
	callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
}

# measure SCENARIO SYSTEM N -> "publisher consumer memcpy" instructions
# (memcpy: the publisher thread's calls of libc's memcpy, for payloads
# copied out of line)
measure() {
	local d=$work/$1.$2.$3 pub=0 cons=0 copy=0 f loop
	mkdir -p "$d"
	valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$d/cg.%p" \
		"$bin" "$1" "$2" "$3" >/dev/null 2>"$d/log" || { cat "$d/log" >&2; exit 1; }
	case "$1.$2" in
	*.ring) loop=ring_publish_loop ;;
	batch.*) loop=batch_loop ;;
	claim.*) loop=claim_loop ;;
	*) loop=publish_loop ;;
	esac
	for f in "$d"/cg.*-*; do
		local p t h
		p=$(ir "$f" "$loop")
		if [ "$p" -gt 0 ]; then
			pub=$p
			copy=$(callgrind_annotate "$f" 2>/dev/null |
				awk '/:__mem(cpy|move)_[a-z_0-9]* / { gsub(",", "", $1); s += $1 } END { print s + 0 }')
		fi
		h=$(self "$f" cost_handler)
		if [ "$h" -gt 0 ]; then
			t=$(total "$f")
			cons=$((t - h))
		fi
	done
	echo "$pub $cons $copy"
}

per_event() { # A1 A2 -> (A2 - A1) / (n2 - n1), one decimal
	awk -v a="$1" -v b="$2" -v n="$((n2 - n1))" 'BEGIN { printf "%.1f", (b - a) / n }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

declare -A P C
declare -A M
for sc in throughput fanout by-name batch claim large; do
	for sys in ebus ring; do
		case "$sc.$sys" in by-name.ring | batch.ring | claim.ring | large.ring) continue ;; esac
		echo "== callgrind: $sc $sys at $n1 and $n2 events" >&2
		read -r p1 c1 m1 < <(measure "$sc" "$sys" "$n1")
		read -r p2 c2 m2 < <(measure "$sc" "$sys" "$n2")
		P[$sc.$sys]=$(per_event "$p1" "$p2")
		C[$sc.$sys]=$(per_event "$c1" "$c2")
		M[$sc.$sys]=$(per_event "$m1" "$m2")
	done
done
large_nocopy=$(awk -v a="${P[large.ebus]}" -v b="${M[large.ebus]}" 'BEGIN { printf "%.1f", a - b }')
extra_e=$(awk -v a="${C[throughput.ebus]}" -v b="${C[fanout.ebus]}" 'BEGIN { printf "%.1f", (b - a) / 3 }')
extra_r=$(awk -v a="${C[throughput.ring]}" -v b="${C[fanout.ring]}" 'BEGIN { printf "%.1f", (b - a) / 3 }')

echo
echo "# instructions per event (callgrind; (I($n2) - I($n1)) / $((n2 - n1)); 32-byte payload;"
echo "# handler bodies excluded; ebus $("$bin" --version | sed 's/^ebus-cost //')"
echo
echo "| per event | ebus | raw ck_ring | ebus / ring |"
echo "|---|---|---|---|"
echo "| publisher: publish of 32 B (loop, inclusive) | ${P[throughput.ebus]} | ${P[throughput.ring]} | $(ratio "${P[throughput.ebus]}" "${P[throughput.ring]}") |"
echo "| consumer: transport + dispatch, 1 subscriber | ${C[throughput.ebus]} | ${C[throughput.ring]} | $(ratio "${C[throughput.ebus]}" "${C[throughput.ring]}") |"
echo "| consumer: transport + dispatch, 4 subscribers | ${C[fanout.ebus]} | ${C[fanout.ring]} | $(ratio "${C[fanout.ebus]}" "${C[fanout.ring]}") |"
echo "| consumer: each extra subscriber | $extra_e | $extra_r | $(ratio "$extra_e" "$extra_r") |"
echo "| both threads, 1 subscriber | $(awk -v a="${P[throughput.ebus]}" -v b="${C[throughput.ebus]}" 'BEGIN { printf "%.1f", a + b }') | $(awk -v a="${P[throughput.ring]}" -v b="${C[throughput.ring]}" 'BEGIN { printf "%.1f", a + b }') | $(ratio "$(awk -v a="${P[throughput.ebus]}" -v b="${C[throughput.ebus]}" 'BEGIN { print a + b }')" "$(awk -v a="${P[throughput.ring]}" -v b="${C[throughput.ring]}" 'BEGIN { print a + b }')") |"
echo "| publisher by name (\`ebus_publish_name\`) | ${P[by-name.ebus]} | (\`ebus_publish\`: ${P[throughput.ebus]}) | $(ratio "${P[by-name.ebus]}" "${P[throughput.ebus]}") |"
echo "| publisher, batches of 64 (\`ebus_publish_batch\`, per event) | ${P[batch.ebus]} | (\`ebus_publish\`: ${P[throughput.ebus]}) | $(ratio "${P[batch.ebus]}" "${P[throughput.ebus]}") |"
claim_nocopy=$(awk -v a="${P[claim.ebus]}" -v b="${M[claim.ebus]}" 'BEGIN { printf "%.1f", a - b }')
echo "| publisher, \`ebus_claim\` + \`ebus_claim_commit\` of 32 B, without the caller's memcpy (${M[claim.ebus]}) | $claim_nocopy | (\`ebus_publish\`: ${P[throughput.ebus]}) | $(ratio "$claim_nocopy" "${P[throughput.ebus]}") |"
echo "| publisher, 256 B through the lane arena, without the memcpy (${M[large.ebus]}) | $large_nocopy | (\`ebus_publish\` of 32 B: ${P[throughput.ebus]}) | $(ratio "$large_nocopy" "${P[throughput.ebus]}") |"
echo "| consumer, 256 B through the lane arena, 1 subscriber | ${C[large.ebus]} | (32 B: ${C[throughput.ebus]}) | $(ratio "${C[large.ebus]}" "${C[throughput.ebus]}") |"
