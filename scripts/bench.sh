#!/usr/bin/env bash
# Builds ebus in Release and runs the main job: tools/ebus-bench, ebus side
# by side with a raw Concurrency Kit ring, ZeroMQ inproc and a mutex queue.
# Arguments are passed to ebus-bench (try --help, --quick, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ebus_need_packages "${EBUS_BASE_PACKAGES[@]}" libzmq3-dev libbenchmark-dev
# Progress on stderr, so that --json on stdout stays clean; the build's own
# output only if it fails.
log=build/release-build.log
mkdir -p build
echo "== configuring a Release build in build/release (log: $log)" >&2
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DEBUS_BUILD_TESTS=OFF >"$log" 2>&1 ||
	{ tail -n 20 "$log" >&2; exit 1; }
echo "== building (first run: a minute or so)" >&2
cmake --build build/release -j "$(nproc)" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
echo "== running build/release/tools/ebus-bench $*" >&2
exec build/release/tools/ebus-bench "$@"
