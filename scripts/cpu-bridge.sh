#!/usr/bin/env bash
# CPU time and context switches per event through the NATS bridge, beside
# raw libnats: what callgrind's instruction counts (scripts/cost-bridge.sh)
# do not see, the kernel's share (futex wake-ups, thread switches).
#
# Each run is `ebus-bench --scenario bridge --only SYSTEM --events N` under
# `perf stat -e task-clock,context-switches` (software events, which these
# VMs support): the receiver, the sender and their nats-server, all forked
# by ebus-bench, so all counted. The systems take turns, RUNS times;
# medians, min-max in brackets.
#
#   scripts/cpu-bridge.sh              7 runs of 1,000,000 events
#   EBUS_CPU_RUNS=.. EBUS_CPU_N=.. scripts/cpu-bridge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ebus_need_packages "${EBUS_BASE_PACKAGES[@]}" linux-perf libzmq3-dev libnats-dev nats-server
runs=${EBUS_CPU_RUNS:-7}
n=${EBUS_CPU_N:-1000000}
bin=$(ebus_cost_tool ebus-bench)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for ((r = 0; r < runs; r++)); do
	for sys in bridge libnats; do
		# "SYSTEM alone: R M events/s, ..." on stdout; perf's CSV on stderr
		perf stat -x, -e task-clock,context-switches -- "$bin" --scenario bridge --only "$sys" \
			--events "$n" 2>&1 | awk -v s="$sys" -v n="$n" -F'[ ,]' '
				/ alone: / { rate = $3 }
				/,task-clock,/ { cpu = $1 }
				/,context-switches,/ { cs = $1 }
				END { if (rate == "" || cpu == "" || cs == "") exit 1
				      printf "%s %s %.0f %.0f\n", s, rate, cpu * 1e6 / n, cs * 1e6 / n }' >>"$out" ||
			{ echo "no result from a $sys run" >&2; exit 1; }
	done
done

# median (min-max) of column $2 for system $1
median_of() {
	awk -v s="$1" -v c="$2" '$1 == s { print $c }' "$out" | sort -g |
		awk '{ v[NR] = $1 } END { printf "%s (%s-%s)", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'
}
printf '%u runs of %u events, the systems in turn; per 1,000,000 events\n' "$runs" "$n"
printf '%-8s %-22s %-26s %s\n' system 'M events/s' 'CPU ms (all processes)' 'context switches'
for sys in bridge libnats; do
	printf '%-8s %-22s %-26s %s\n' "$sys" "$(median_of "$sys" 2)" "$(median_of "$sys" 3)" "$(median_of "$sys" 4)"
done
