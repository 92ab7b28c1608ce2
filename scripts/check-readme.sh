#!/usr/bin/env bash
# The README's C snippets are tests. Every ```c block of README.md follows
# a marker line that says how it is tested:
#   <!-- snippet: main -->        a whole program: compiled and run
#   <!-- snippet: file -->        file-scope code: compiled (-c)
#   <!-- snippet: body NAME -->   statements: put in place of the line
#                                 "/* SNIPPET */" of tests/readme/NAME.c (a
#                                 harness that sets the scene and checks
#                                 what the snippet did), compiled and run
# Each is compiled as C11 with -Wall -Wextra -Werror against this
# checkout's headers and a static libebus, and run with a 60 s limit. A
# block without a marker fails.
#
#   scripts/check-readme.sh [BUILD_DIR [README]]
#     (defaults: build/check-readme, README.md; another README, e.g. an old
#     one with markers added, is checked against this checkout's library)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${1:-build/check-readme}
readme=$(realpath "${2:-README.md}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEBUS_BUILD_TESTS=OFF \
	-DEBUS_BUILD_TOOLS=OFF -DEBUS_BUILD_BENCH=OFF -DEBUS_BUILD_EXAMPLES=OFF -DEBUS_BUILD_SHARED=OFF \
	-DEBUS_BUILD_STATIC=ON >/dev/null
cmake --build "$build" --target ebus_static >/dev/null
lib=$(find "$build" -maxdepth 1 -name 'libebus.a' | head -n 1)
deps=$(pkg-config --libs liburcu-qsbr liburcu-bp liburcu-cds ck)
cflags=(-std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$top/include" -I"$top/tests/readme")

# Split the README into numbered blocks, each with its marker.
awk -v dir="$work" '
	/^<!-- snippet: .* -->$/ { m = $0; sub(/^<!-- snippet: /, "", m); sub(/ -->$/, "", m); next }
	/^```c$/ { n++; f = sprintf("%s/block%02d.c", dir, n); printf "" > f
	           printf "%s\n", (m == "" ? "-" : m) > (f ".how"); inb = 1; m = ""; next }
	/^```/ { inb = 0; next }
	inb { print >> f; next }
	NF { m = "" }' "$readme"

fails=0 n=0
for f in "$work"/block*.c; do
	n=$((n + 1))
	read -r how name <"$f.how"
	line=$(head -n 1 "$f")
	label="README block $n (${line:0:50})"
	case $how in
	main) src=$f ;;
	file)
		src=$work/file$n.c
		printf '#include <ebus/ebus.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n' >"$src"
		cat "$f" >>"$src" ;;
	body)
		harness=tests/readme/$name.c
		if [ ! -f "$harness" ]; then echo "FAIL $label: no harness $harness"; fails=$((fails + 1)); continue; fi
		src=$work/body$n.c
		awk -v snip="$f" '$0 == "/* SNIPPET */" { while ((getline l < snip) > 0) print l; next } { print }' \
			"$harness" >"$src" ;;
	*)
		echo "FAIL $label: no <!-- snippet: main|file|body NAME --> marker before it"
		fails=$((fails + 1))
		continue ;;
	esac
	if [ "$how" = file ]; then
		if ! cc "${cflags[@]}" -c -o "$work/obj$n.o" "$src" 2>"$work/err"; then
			echo "FAIL $label: does not compile:"; sed -n 1,6p "$work/err"; fails=$((fails + 1)); continue
		fi
		echo "ok   $label (compiles)"
		continue
	fi
	if ! cc "${cflags[@]}" -o "$work/prog$n" "$src" "$lib" $deps -pthread 2>"$work/err"; then
		echo "FAIL $label: does not compile:"; sed -n 1,6p "$work/err"; fails=$((fails + 1)); continue
	fi
	rc=0
	timeout 60 "$work/prog$n" >"$work/out" 2>&1 || rc=$?
	if [ $rc -ne 0 ]; then
		[ $rc -eq 124 ] && why="did not finish in 60 s" || why="exit $rc"
		echo "FAIL $label: $why: $(tail -n 3 "$work/out" | tr '\n' ' ')"
		fails=$((fails + 1))
		continue
	fi
	echo "ok   $label (runs)"
done
[ $n -gt 0 ] || { echo "no C blocks in $readme"; exit 1; }
[ $fails -eq 0 ] && echo "readme snippets: ok ($n blocks)" || echo "readme snippets: $fails of $n FAILED"
[ $fails -eq 0 ]
