#!/usr/bin/env bash
# Builds ebus in Release and runs the main job: tools/ebus-bench, ebus side
# by side with a raw Concurrency Kit ring, ZeroMQ inproc and a mutex queue.
# Arguments are passed to ebus-bench (try --help, --quick, --json;
# --scenario bridge: the NATS bridge, tables only). Unless
# they ask for JSON themselves, the results also go to
# build/bench/results.json and scripts/plot.py draws them into
# build/bench/*.png (python3-matplotlib); the last lines say where.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
# libnats-dev and nats-server: for --scenario bridge (the NATS bridge).
ebus_need_packages "${EBUS_BASE_PACKAGES[@]}" libzmq3-dev libbenchmark-dev python3-matplotlib \
	libnats-dev nats-server
# Progress on stderr, so that --json on stdout stays clean; the build's own
# output only if it fails.
log=build/release-build.log
mkdir -p build
echo "== configuring a Release build in build/release (log: $log)" >&2
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DEBUS_BUILD_TESTS=OFF >"$log" 2>&1 ||
	{ tail -n 20 "$log" >&2; exit 1; }
echo "== building (first run: a minute or so)" >&2
cmake --build build/release -j "$(nproc)" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
case " $* " in
*" --json "* | *" --json-out "* | *" --help "* | *" -h "* | *" --version "* | *" bridge "* | *"=bridge "*)
	echo "== running build/release/tools/ebus-bench $*" >&2
	exec build/release/tools/ebus-bench "$@" ;;
esac
mkdir -p build/bench
json=build/bench/results.json
echo "== running build/release/tools/ebus-bench $* (JSON also in $json)" >&2
rc=0
build/release/tools/ebus-bench --json-out "$json" "$@" || rc=$?
# Debian's python3 (with python3-matplotlib), whatever python3 comes first in PATH.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
echo "== results: $json; pictures (scripts/plot.py):"
"$py" scripts/plot.py "$json" --out build/bench || echo "   (plot.py failed; the results are in $json)"
exit $rc
