#!/usr/bin/env bash
# Checks the module layering of src/ (scripts/check-layers.sh) and the API
# documentation (scripts/check-api-docs.sh), compiles and runs the README's
# snippets (scripts/check-readme.sh), builds consumers of an installed and
# of an embedded ebus (scripts/check-consumers.sh), then builds ebus and
# runs every test three times: a normal build (warnings are
# errors), under ASan+UBSan, and under TSan; then builds the libFuzzer target
# with clang and fuzzes the topic/pattern parser for a short, seeded session.
#   scripts/test.sh                 short stress tier (CI)
#   EBUS_STRESS_TIER=long scripts/test.sh    long tier (minutes per stress test)
#   EBUS_TEST_BUILDS="default" scripts/test.sh   only some of: default asan tsan fuzz
#   EBUS_FUZZ_SECONDS=300 scripts/test.sh        a longer fuzz session (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
# libasan8/libubsan1/libtsan2: gcc 12's sanitizer runtimes; libzmq3-dev and
# libbenchmark-dev: the benchmark tools are built (and smoke-tested) too;
# prometheus: its promtool checks the Prometheus text (ctest promtool);
# python3-matplotlib: scripts/plot.py draws ebus-bench's JSON (ctest bench_json_plot).
builds=${EBUS_TEST_BUILDS:-"default asan tsan fuzz"}
# clang and libclang-rt-14-dev (libFuzzer, clang's sanitizer runtimes): the fuzz build.
fuzz_packages=()
case " $builds " in *" fuzz "*) fuzz_packages=(clang libclang-rt-14-dev) ;; esac
# nats-server, libnats-dev, libmicrohttpd-dev: the NATS bridge (nats/),
# tools/ebus-bridge (--metrics) and their tests.
ebus_need_packages "${EBUS_BASE_PACKAGES[@]}" libasan8 libubsan1 libtsan2 libzmq3-dev libbenchmark-dev prometheus python3-matplotlib \
	nats-server libnats-dev libmicrohttpd-dev "${fuzz_packages[@]}"

echo "== layering of src/ (scripts/check-layers.sh)"
scripts/check-layers.sh
echo "== public API documentation (scripts/check-api-docs.sh)"
scripts/check-api-docs.sh
echo "== README snippets (scripts/check-readme.sh)"
scripts/check-readme.sh
echo "== consumers: install, find_package, pkg-config, add_subdirectory, C++ (scripts/check-consumers.sh)"
scripts/check-consumers.sh

jobs=$(nproc)
export EBUS_STRESS_TIER=${EBUS_STRESS_TIER:-short}
for b in $builds; do
	case $b in
	default) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
	asan) flags=(-DCMAKE_BUILD_TYPE=Debug -DEBUS_SANITIZE=address,undefined) ;;
	tsan) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEBUS_SANITIZE=thread) ;;
	fuzz) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DEBUS_BUILD_FUZZ=ON
		-DEBUS_BUILD_TESTS=OFF -DEBUS_BUILD_TOOLS=OFF -DEBUS_BUILD_BENCH=OFF) ;;
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
	if [ "$b" = fuzz ]; then
		# New inputs are kept in $dir/corpus (never in fuzz/corpus), so
		# later runs start from what earlier ones found.
		secs=${EBUS_FUZZ_SECONDS:-20}
		log=$dir/fuzz_pattern.log
		echo "== [fuzz] fuzz_pattern for ${secs}s (seed 1), log in $log"
		mkdir -p "$dir/corpus" "$dir/artifacts"
		rc=0
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			"$dir/fuzz/fuzz_pattern" -max_total_time="$secs" -timeout=10 -seed=1 -dict=fuzz/pattern.dict \
			-artifact_prefix="$dir/artifacts/" -print_final_stats=1 "$dir/corpus" fuzz/corpus \
			>"$log" 2>&1 || rc=$?
		if [ $rc -ne 0 ]; then
			tail -n 60 "$log" >&2
			echo "fuzz_pattern failed (exit $rc); the input is in $dir/artifacts/" >&2
			exit 1
		fi
		grep -E '^(Done|stat::new_units_added)' "$log" || true
	fi
done
echo "== all test builds passed: $builds"
