#!/bin/sh
# The layering check: reads every #include "..." of src/ and fails when a
# file includes a header of a layer above its own, another module's
# private header, a header of another module of its own layer that is not
# that layer's shared header, or a file that is not in the map below. Every
# file of src/ must be in the map. The map is the one docs/design.md opens
# with; change both together.
#
#   scripts/check-layers.sh [SRC_DIR]      (default: src/ of this checkout)
#
# It also checks that each module's state is defined where the map says:
# a struct of the second table may be defined in its owner's file only
# (for the opaque ones, a .c file, so no other module can reach a field).
#
# Prints the violations (or "layers: ok") and, either way, the include
# edges between modules. Exit status 1 on any violation.
set -eu

src=${1:-$(dirname "$0")/../src}

# file         layer  module     kind
#   kind: module   the module's own file
#         layer    a header every module of its layer may include
#         private  a header only its own module may include (and tests)
map='
platform.h    0  platform  layer
platform.c    0  platform  module
hist.h        0  platform  layer
testhook.h    0  platform  layer
base.h        0  platform  layer
error.c       0  platform  module
lane.h        1  lane      layer
lane.c        1  lane      module
topic.h       2  topic     layer
topic.c       2  topic     module
pattern.c     2  topic     module
subs.h        3  subs      layer
subs.c        3  subs      module
exec.h        4  exec      layer
executor.c    4  exec      module
bus.h         5  bus       layer
bus.c         5  bus       module
publish.c     5  publish   module
producer.c    5  producer  module
sync.c        5  sync      module
consumer.c    5  consumer  module
meta.c        5  meta      module
stats.c       5  stats     module
stats.h       5  stats     private
'

# struct          owner (the only file that may define it)
owners='
ebus_exec         executor.c
sync_stripe       sync.c
ebus_consumer     consumer.c
cons_rec          consumer.c
snap_block        stats.c
ebus_env          exec.h
dispatch_ctrs     exec.h
ebus_slot         lane.h
lane              lane.h
lane_set          lane.h
lane_totals       lane.h
ebus_topic_s      topic.h
topic_ctrs        topic.h
ebus_registry     topic.h
ebus_sub          subs.h
subarr            subs.h
ebus_subs         subs.h
retire            subs.h
ebus              bus.h
producer          bus.h
ebus_hist         base.h
ebus_waiter       platform.h
'

cd "$src"
defs=$(grep -H -E '^struct [A-Za-z_0-9]+ \{' *.c *.h 2>/dev/null |
	sed 's/^\([^:]*\):struct \([A-Za-z_0-9]*\) {.*/\1 \2/' || true)
# One line per edge: "file header" (only quoted includes; ebus/ebus.h is the API).
edges=$(for f in *.c *.h; do
	[ -f "$f" ] || continue
	sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
		while read -r h; do
			[ "$h" = "ebus/ebus.h" ] || printf '%s %s\n' "$f" "$h"
		done
done)
files=$(ls *.c *.h 2>/dev/null)

printf '%s\n---\n%s\n---\n%s\n---\n%s\n---\n%s\n' "$map" "$files" "$edges" "$owners" "$defs" | awk '
	BEGIN { part = 0; bad = 0; n = 0 }
	/^---$/ { part++; next }
	part == 0 && NF == 4 { layer[$1] = $2; mod[$1] = $3; kind[$1] = $4; next }
	part == 1 && NF == 1 {
		if (!($1 in layer)) { printf "unmapped file: %s (add it to the map)\n", $1; bad = 1 }
		next
	}
	part == 2 && NF == 2 {
		f = $1; h = $2
		if (!(f in layer)) next # reported above
		if (!(h in layer)) {
			printf "%s includes %s: not in the module map\n", f, h; bad = 1; next
		}
		if (layer[h] > layer[f]) {
			printf "%s (%s, layer %d) includes %s (%s, layer %d): a layer above\n",
			       f, mod[f], layer[f], h, mod[h], layer[h]; bad = 1
		} else if (mod[h] != mod[f] && kind[h] == "private") {
			printf "%s (%s) includes %s: private to %s\n", f, mod[f], h, mod[h]; bad = 1
		} else if (mod[h] != mod[f] && layer[h] == layer[f] && kind[h] != "layer") {
			printf "%s (%s) includes %s of %s, not its layer header\n", f, mod[f], h, mod[h]; bad = 1
		} else if (kind[h] == "module") {
			printf "%s includes %s: not a header\n", f, h; bad = 1
		}
		if (mod[h] != mod[f]) { cross[mod[f] " -> " mod[h]] = 1; n++ }
		next
	}
	part == 3 && NF == 2 { owner[$1] = $2; next }
	part == 4 && NF == 2 {
		if (($2 in owner) && owner[$2] != $1) {
			printf "struct %s is defined in %s; its owner is %s\n", $2, $1, owner[$2]; bad = 1
		}
		next
	}
	END {
		m = 0
		for (e in cross) m++
		printf "include edges between modules: %d (%d distinct module pairs)\n", n, m
		if (bad) { print "layers: FAILED"; exit 1 }
		print "layers: ok"
	}'
