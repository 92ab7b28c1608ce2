#!/usr/bin/env bash
# Runs today's tests/test_review.c against 93bb7be, the commit the
# correctness review (issue 8) was made on, with only the test hooks of
# src/testhook.h added at the equivalent places (tests/regress/93bb7be-hooks.patch):
# every case but the allocation sweep and the max_payload check must FAIL
# there (also_sub_ids_across_buses, from the structure issue, too). Not part of scripts/test.sh (it builds an old tree and waits out
# hangs); run it by hand: scripts/check-93bb7be.sh [case-name-part ...]
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
work=$(mktemp -d)
trap 'git -C "$top" worktree remove --force "$work/old" >/dev/null 2>&1; rm -rf "$work"' EXIT
git worktree add --detach "$work/old" 93bb7be >/dev/null || exit 1
cd "$work/old"
git apply "$top/tests/regress/93bb7be-hooks.patch" || exit 1
cp "$top/src/testhook.h" src/
cp "$top/CMakeLists.txt" .
# today's source list, less the files the structure issue added after 93bb7be
sed -i 's# src/producer\.c##' CMakeLists.txt
cp "$top/tests/CMakeLists.txt" "$top/tests/test_review.c" "$top/tests/testutil.h" tests/
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build build --target test_review >/dev/null || exit 1
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(item1_ item2 item3 item4 item5 item6a item6b item6c item7 item8 item9
	item10_sync item10_producer item10_nomem item10_membarrier also_max also_sub_ids)
failed=0
for c in "${cases[@]}"; do
	# a hang is a failure too: the case gets 60 s
	timeout 60 build/tests/test_review "$c" >"$work/log" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "passes on 93bb7be: $c"
	else
		failed=$((failed + 1))
		why=$(grep -v '^--' "$work/log" | tail -n 1)
		[ $rc -eq 124 ] && why="hung (killed after 60 s)"
		echo "FAILS on 93bb7be:  $c: $why"
	fi
done
echo "$failed of ${#cases[@]} cases fail on 93bb7be"
