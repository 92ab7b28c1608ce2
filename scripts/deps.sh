#!/usr/bin/env bash
# Sourced by scripts/test.sh and scripts/bench.sh: makes sure the Debian 12
# packages ebus needs are installed. As root it installs what is missing
# with apt-get; otherwise it prints the exact install line and exits 1.
ebus_need_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		echo "== installing: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			{ echo "apt-get install failed" >&2; exit 1; }
	else
		echo "missing packages: ${missing[*]}" >&2
		echo "install them with:" >&2
		echo "  sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
}
# Build tools and libraries used by every build.
EBUS_BASE_PACKAGES=(build-essential cmake ninja-build pkg-config liburcu-dev libck-dev)

# ebus_cost_tool TARGET: builds tools/TARGET in a Release tree for the
# instruction counts (build/cost, shared by cost.sh, cost-bridge.sh and
# cpu-bridge.sh)
# and prints its path.
ebus_cost_tool() {
	local build=build/cost
	echo "== building a Release $1 in $build" >&2
	cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEBUS_BUILD_TESTS=OFF \
		-DEBUS_BUILD_BENCH=OFF -DEBUS_BUILD_EXAMPLES=OFF -DEBUS_BUILD_TOOLS=ON >/dev/null
	cmake --build "$build" --target "$1" >/dev/null
	echo "$build/tools/$1"
}
