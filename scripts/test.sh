#!/usr/bin/env bash
# Builds ebus and runs every test three times: a normal build (warnings are
# errors), under ASan+UBSan, and under TSan.
#   scripts/test.sh                 short stress tier (CI)
#   EBUS_STRESS_TIER=long scripts/test.sh    long tier (minutes per stress test)
#   EBUS_TEST_BUILDS="default" scripts/test.sh   only some of: default asan tsan
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
# libasan8/libubsan1/libtsan2: gcc 12's sanitizer runtimes; libzmq3-dev and
# libbenchmark-dev: the benchmark tools are built (and smoke-tested) too.
ebus_need_packages "${EBUS_BASE_PACKAGES[@]}" libasan8 libubsan1 libtsan2 libzmq3-dev libbenchmark-dev

builds=${EBUS_TEST_BUILDS:-"default asan tsan"}
jobs=$(nproc)
export EBUS_STRESS_TIER=${EBUS_STRESS_TIER:-short}
for b in $builds; do
	case $b in
	default) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
	asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DEBUS_SANITIZE=address,undefined) ;;
	tsan) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEBUS_SANITIZE=thread) ;;
	*) echo "unknown build '$b'" >&2; exit 2 ;;
	esac
	dir=build/test-$b
	echo "== [$b] configure and build in $dir"
	cmake -S . -B "$dir" -G Ninja -DEBUS_WERROR=ON "${flags[@]}" >/dev/null
	cmake --build "$dir" -j "$jobs"
	echo "== [$b] ctest (EBUS_STRESS_TIER=$EBUS_STRESS_TIER)"
	(
		cd "$dir"
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
		export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/../../tests/tsan.supp"
		ctest --output-on-failure --timeout 900 -j 1
	)
done
echo "== all test builds passed: $builds"
