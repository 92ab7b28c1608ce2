#!/usr/bin/env bash
# Embeds ebus the ways a user does and runs the README's example each way:
#   install   configure without a prefix, `cmake --install --prefix P` (a
#             relocated install), shared and static libraries
#   cmake     a CMake project with find_package(ebus): ebus::ebus (shared)
#             and ebus::ebus_static
#   make      a Makefile with `pkg-config --cflags --libs ebus`, and --static
#   subdir    a parent project that looks up liburcu itself (its own
#             URCU_* variables, used by its own code), leaves
#             CMAKE_BUILD_TYPE empty and add_subdirectory()s ebus: its
#             variables, build type and install rules stay its own
#   kinds     BUILD_SHARED_LIBS=OFF builds no shared library, BUILD_TESTING=OFF
#             no tests; each source compiles once
#   c++       the header under g++ -std=c++11 -Wall -Wextra -Wshadow -Werror
#
#   scripts/check-consumers.sh [EBUS_SOURCE_DIR]   (default: this checkout)
# Exit status 1 if any check fails; each failure says which and why.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "${1:-$here}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL [$1]: $2"; fails=$((fails + 1)); }
ok() { echo "ok   [$1]"; }
log=$work/log

# The README's example: its first C block with a main().
awk '/^```c$/{c=1; b=""; next} /^```$/{if (c && b ~ /int main\(/) {printf "%s", b; exit} c=0; next}
     c{b = b $0 "\n"}' "$src/README.md" >"$work/example.c"
[ -s "$work/example.c" ] || { echo "no C example with main() in $src/README.md"; exit 1; }
expect="total 5050"
run_example() { # name binary
	local out
	if ! out=$(timeout 60 "$2" 2>&1); then fail "$1" "the example failed: $out"; return 1; fi
	case $out in *"$expect"*) ok "$1" ;; *) fail "$1" "printed '$out', not '$expect'" ;; esac
}

# ---- install (configured without a prefix, installed elsewhere) ----
prefix=$work/prefix
if cmake -S "$src" -B "$work/build" -G Ninja -DEBUS_BUILD_TESTS=OFF -DEBUS_BUILD_TOOLS=OFF \
	-DEBUS_BUILD_BENCH=OFF -DEBUS_BUILD_EXAMPLES=OFF >"$log" 2>&1 &&
	cmake --build "$work/build" >>"$log" 2>&1 &&
	cmake --install "$work/build" --prefix "$prefix" >>"$log" 2>&1; then
	ok install
else
	fail install "$(tail -n 5 "$log")"
fi
pcdir=$(dirname "$(find "$prefix" -name ebus.pc | head -n 1)")

# ---- cmake: find_package(ebus) ----
mkdir -p "$work/cm"
cp "$work/example.c" "$work/cm/example.c"
cat >"$work/cm/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(PkgConfig REQUIRED)
pkg_check_modules(URCU REQUIRED liburcu-bp)
set(own_urcu "${URCU_LIBRARIES}")
find_package(ebus REQUIRED)
if(NOT "${URCU_LIBRARIES}" STREQUAL "${own_urcu}")
  message(FATAL_ERROR "find_package(ebus) changed URCU_LIBRARIES: '${own_urcu}' became '${URCU_LIBRARIES}'")
endif()
add_executable(example_shared example.c)
target_link_libraries(example_shared PRIVATE ebus::ebus)
add_executable(example_static example.c)
target_link_libraries(example_static PRIVATE ebus::ebus_static)
EOF
if cmake -S "$work/cm" -B "$work/cm/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >"$log" 2>&1 &&
	cmake --build "$work/cm/build" >>"$log" 2>&1; then
	run_example "cmake shared" "$work/cm/build/example_shared"
	if ldd "$work/cm/build/example_static" | grep -q 'libebus\.so'; then
		fail "cmake static" "example_static loads libebus.so"
	else
		run_example "cmake static" "$work/cm/build/example_static"
	fi
else
	fail cmake "$(grep -m 1 -A 1 -E 'error|Error|undefined' "$log" | tr -s ' \n' ' ' || tail -n 3 "$log")"
fi

# ---- make: pkg-config, dynamic and --static ----
mkdir -p "$work/mk"
cp "$work/example.c" "$work/mk/example.c"
printf '%s\n' 'example: example.c' \
	'	$(CC) -o $@ example.c $$(pkg-config --cflags ebus) $$(pkg-config --libs ebus)' \
	'example_static: example.c' \
	'	$(CC) -o $@ example.c $$(pkg-config --cflags --static ebus) \' \
	'		-Wl,-Bstatic $$(pkg-config --libs-only-l --static ebus | sed "s/-lpthread//") -Wl,-Bdynamic \' \
	'		$$(pkg-config --libs-only-L --static ebus) -lpthread' >"$work/mk/Makefile"
if PKG_CONFIG_PATH="$pcdir" make -C "$work/mk" example >"$log" 2>&1; then
	LD_LIBRARY_PATH="$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=libdir ebus)" \
		run_example "make pkg-config" "$work/mk/example"
else
	fail "make pkg-config" "$(grep -m 2 -E 'error|No such' "$log" || tail -n 2 "$log")"
fi
if PKG_CONFIG_PATH="$pcdir" make -C "$work/mk" example_static >"$log" 2>&1; then
	run_example "make pkg-config --static" "$work/mk/example_static"
else
	fail "make pkg-config --static" "$(grep -m 2 -E 'error|No such|undefined' "$log" || tail -n 2 "$log")"
fi

# ---- subdir: a parent that looks up liburcu itself, then add_subdirectory ----
mkdir -p "$work/parent"
cp "$work/example.c" "$work/parent/example.c"
cat >"$work/parent/own.c" <<'EOF'
/* The parent's own use of liburcu (bp flavor), linked through its own
 * URCU_LIBRARIES: ebus must not change that variable. */
#include <urcu/urcu-bp.h>
void parent_read_section(void);
void parent_read_section(void)
{
	urcu_bp_read_lock();
	urcu_bp_read_unlock();
}
EOF
cat >"$work/parent/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.18)
project(parent C)
find_package(PkgConfig REQUIRED)
pkg_check_modules(URCU REQUIRED liburcu-bp)
set(parent_urcu "\${URCU_LIBRARIES}")
add_subdirectory("$src" ebus)
# What ebus changed of the parent's, for the script to report.
file(WRITE "\${CMAKE_BINARY_DIR}/findings" "")
if(NOT "\${URCU_LIBRARIES}" STREQUAL "\${parent_urcu}")
  file(APPEND "\${CMAKE_BINARY_DIR}/findings" "urcu '\${parent_urcu}' became '\${URCU_LIBRARIES}'\n")
endif()
if(CMAKE_BUILD_TYPE)
  file(APPEND "\${CMAKE_BINARY_DIR}/findings" "build-type '\${CMAKE_BUILD_TYPE}'\n")
endif()
add_library(own STATIC own.c)
target_include_directories(own PRIVATE \${URCU_INCLUDE_DIRS})
add_executable(example example.c)
target_link_libraries(example PRIVATE ebus::ebus own \${URCU_LIBRARIES})
EOF
if cmake -S "$work/parent" -B "$work/parent/build" -G Ninja >"$log" 2>&1; then
	f=$work/parent/build/findings
	if grep -q '^urcu ' "$f"; then
		fail "subdir variables" "ebus changed the parent's URCU_LIBRARIES: $(grep '^urcu ' "$f")"
	else
		ok "subdir variables"
	fi
	if grep -q '^build-type ' "$f"; then
		fail "subdir build type" "ebus set the parent's empty CMAKE_BUILD_TYPE: $(grep '^build-type ' "$f")"
	else
		ok "subdir build type"
	fi
	if cmake --build "$work/parent/build" >"$log" 2>&1; then
		run_example "subdir" "$work/parent/build/example"
	else
		fail "subdir" "$(grep -m 3 -E 'error|undefined' "$log" || tail -n 3 "$log")"
	fi
	if DESTDIR="$work/parent/dest" cmake --install "$work/parent/build" >"$log" 2>&1 &&
		[ -n "$(find "$work/parent/dest" -name 'ebus*' 2>/dev/null)" ]; then
		fail "subdir install" "installing the parent installs ebus too: $(find "$work/parent/dest" -name 'ebus*' | head -n 3 | tr '\n' ' ')"
	else
		ok "subdir install"
	fi
	if [ -n "$(find "$work/parent/build/ebus" -name 'test_*' -type f 2>/dev/null | head -n 1)" ]; then
		fail "subdir tests" "ebus built its tests inside the parent"
	else
		ok "subdir tests"
	fi
else
	fail subdir "$(grep -m 3 -E 'error|Error|FATAL' "$log" || tail -n 3 "$log")"
fi

# ---- kinds: BUILD_SHARED_LIBS=OFF, BUILD_TESTING=OFF, one compile per source ----
if cmake -S "$src" -B "$work/kinds" -G Ninja -DBUILD_SHARED_LIBS=OFF -DBUILD_TESTING=OFF \
	-DEBUS_BUILD_TOOLS=OFF -DEBUS_BUILD_BENCH=OFF -DEBUS_BUILD_EXAMPLES=OFF >"$log" 2>&1 &&
	cmake --build "$work/kinds" >>"$log" 2>&1; then
	if [ -n "$(find "$work/kinds" -name 'test_*' -type f | head -n 1)" ]; then
		fail "BUILD_TESTING=OFF" "the tests were built"
	else
		ok "BUILD_TESTING=OFF"
	fi
	if [ -n "$(find "$work/kinds" -name 'libebus.so*' | head -n 1)" ]; then
		fail "BUILD_SHARED_LIBS=OFF" "a shared libebus was built"
	else
		ok "BUILD_SHARED_LIBS=OFF"
	fi
	n=$(find "$work/kinds" -name 'bus.c.o' | wc -l)
	[ "$n" -eq 1 ] && ok "one compile per source" || fail "one compile per source" "src/bus.c compiled $n times"
else
	fail kinds "$(tail -n 3 "$log")"
fi
n=$(find "$work/build" -name 'bus.c.o' | wc -l)
[ "$n" -eq 1 ] && ok "one compile per source (shared + static)" ||
	fail "one compile per source (shared + static)" "src/bus.c compiled $n times"

# ---- c++: the header as C++11 with -Wshadow ----
printf '#include <ebus/ebus.h>\nint main() { ebus_consumer_stats_t s; ebus_snapshot_t *p = nullptr; (void)s; (void)p; return 0; }\n' >"$work/hdr.cc"
if g++ -std=c++11 -Wall -Wextra -Wshadow -Werror -I"$src/include" -fsyntax-only "$work/hdr.cc" >"$log" 2>&1; then
	ok "c++11 -Wshadow"
else
	fail "c++11 -Wshadow" "$(grep -m 2 error "$log")"
fi

[ $fails -eq 0 ] && echo "consumers: ok" || echo "consumers: $fails FAILED"
[ $fails -eq 0 ]
