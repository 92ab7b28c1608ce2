#!/usr/bin/env bash
# Builds ebus in Release and runs the main job: tools/ebus-bench, ebus side
# by side with a raw Concurrency Kit ring, ZeroMQ inproc and a mutex queue.
# Arguments are passed to ebus-bench (try --help, --quick, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ebus_need_packages "${EBUS_BASE_PACKAGES[@]}" libzmq3-dev libbenchmark-dev
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DEBUS_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" >/dev/null
exec build/release/tools/ebus-bench "$@"
