#!/usr/bin/env bash
# The public API's documentation check. Every EBUS_API function in
# include/ebus/ebus.h must have a comment right above it (or above the
# group of declarations it belongs to) that says what it does and has the
# three tagged parts:
#   Thread-safety:  who may call it, concurrently with what
#   Errors:         what it returns (or does) on failure
#   Ownership:      who owns what it takes and gives
# The README's thread-safety table is generated from the Thread-safety
# parts; this script fails when the README's copy differs.
#
#   scripts/check-api-docs.sh           check (the test command runs this)
#   scripts/check-api-docs.sh --write   rewrite the README's table
#   scripts/check-api-docs.sh --table   print the table
set -euo pipefail
cd "$(dirname "$0")/.."
header=include/ebus/ebus.h
readme=README.md
begin='<!-- thread-safety table: generated from include/ebus/ebus.h by scripts/check-api-docs.sh --write -->'
end='<!-- end of the generated table -->'

# One line per function, fields separated by \037: name, thread-safety, errors, ownership, doc length
parse() {
	awk '
	function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
	function part(doc, tag,    i, rest, j) {
		i = index(doc, tag)
		if (!i) return ""
		rest = substr(doc, i + length(tag))
		j = match(rest, /(Thread-safety:|Errors:|Ownership:)/)
		if (j) rest = substr(rest, 1, j - 1)
		return trim(rest)
	}
	BEGIN { incomment = 0; doc = ""; indecl = 0 }
	{
		line = $0
		if (incomment) {
			t = line; closes = index(t, "*/")
			if (closes) sub(/\*\/.*/, "", t)
			sub(/^[ \t]*\*?[ \t]?/, "", t)
			last = last " " t
			if (closes) { incomment = 0; doc = last }
			next
		}
		if (line ~ /^[ \t]*\/\*/) {
			t = line; sub(/^[ \t]*\/\*+/, "", t)
			if (index(t, "*/")) { sub(/\*\/.*/, "", t); doc = t; next }
			incomment = 1; last = t; next
		}
		if (indecl) { if (index(line, ";")) indecl = 0; next }
		if (line ~ /^EBUS_API /) {
			if (match(line, /ebus_[a-z_0-9]+\(/)) {
				name = substr(line, RSTART, RLENGTH - 1)
				d = doc
				gsub(/[ \t]+/, " ", d)
				printf "%s\037%s\037%s\037%s\037%d\n", name, part(d, "Thread-safety:"), part(d, "Errors:"),
				       part(d, "Ownership:"), length(trim(d))
			}
			if (!index(line, ";")) indecl = 1
			next
		}
		doc = ""
	}' "$header"
}

table() {
	echo "| function | who may call it, concurrently with what |"
	echo "|---|---|"
	parse | awk -F'\037' '
		{ ts = $2; gsub(/\|/, "\\|", ts)
		  if (n && ts == prev) { names = names ", `" $1 "`"; next }
		  if (n) print "| " names " | " prev " |"
		  names = "`" $1 "`"; prev = ts; n++ }
		END { if (n) print "| " names " | " prev " |" }'
}

case ${1:-} in
--table) table; exit 0 ;;
--write)
	t=$(table)
	awk -v b="$begin" -v e="$end" -v t="$t" '
		$0 == b { print; print t; skip = 1; next }
		$0 == e { skip = 0 }
		!skip' "$readme" >"$readme.tmp" && mv "$readme.tmp" "$readme"
	exit 0 ;;
esac

bad=0
while IFS=$'\037' read -r name ts errs own len; do
	missing=""
	[ "$len" -gt 0 ] || missing="$missing a comment,"
	[ -n "$ts" ] || missing="$missing Thread-safety:,"
	[ -n "$errs" ] || missing="$missing Errors:,"
	[ -n "$own" ] || missing="$missing Ownership:,"
	if [ -n "$missing" ]; then
		echo "$header: $name lacks${missing%,}"
		bad=1
	fi
done < <(parse)
n=$(parse | wc -l)
if ! grep -qxF "$begin" "$readme"; then
	echo "$readme: no generated thread-safety table (marker missing)"
	bad=1
elif ! diff <(table) <(awk -v b="$begin" -v e="$end" '$0 == e { p = 0 } p; $0 == b { p = 1 }' "$readme") >/dev/null; then
	echo "$readme: the thread-safety table differs from the header's Thread-safety lines;"
	echo "  run scripts/check-api-docs.sh --write (diff below: header < > README)"
	diff <(table) <(awk -v b="$begin" -v e="$end" '$0 == e { p = 0 } p; $0 == b { p = 1 }' "$readme") | head -n 20
	bad=1
fi
[ $bad -eq 0 ] && echo "api docs: ok ($n functions)" || echo "api docs: FAILED"
exit $bad
