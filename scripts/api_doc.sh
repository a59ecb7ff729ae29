#!/usr/bin/env bash
# api_doc.sh [--check]: renders include/ringfeed/ringfeed.h into docs/api.md (every RF_API
# function with the comment above it, every public type). --check fails if docs/api.md is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
render() {
	awk '
	function flush_comment() { comment = "" }
	BEGIN {
		print "# ringfeed API reference"
		print ""
		print "Generated from `include/ringfeed/ringfeed.h` by `scripts/api_doc.sh`; CI fails when it is stale."
		print "Conventions (from the header): functions return 0 or a negative `RF_E*` code and never print;"
		print "handles are opaque; every close/release accepts NULL."
	}
	/^\/\* ---- / { t = $0; gsub(/^\/\* -+ */, "", t); gsub(/ *-+ *\*\/$/, "", t); print ""; print "## " t; flush_comment(); next }
	/^\/\*/ { in_comment = 1; comment = "" }
	in_comment {
		line = $0
		if (line ~ /^ *\*\/$/) line = ""
		gsub(/^\/\* ?/, "", line); gsub(/^ \* ?/, "", line); gsub(/ *\*\/$/, "", line)
		if (line != "" || comment != "") comment = comment line "\n"
		if ($0 ~ /\*\//) in_comment = 0
		next
	}
	/^RF_API / || /^typedef (struct|enum)/ || /^enum \{/ {
		decl = $0
		depth = gsub(/\{/, "{", decl) - gsub(/\}/, "}", decl)
		last = $0
		while (depth > 0 || last !~ /;[^;]*$/) {
			getline last
			decl = decl "\n" last
			depth += gsub(/\{/, "{", last) - gsub(/\}/, "}", last)
		}
		name = decl
		if (decl ~ /^RF_API/) { sub(/\(.*/, "", name); sub(/.*[ *]/, "", name) }
		else if (decl ~ /^typedef/) { n = split(decl, parts, /[ ;]+/); name = parts[n - 1]; sub(/\}/, "", name) }
		else { name = "status and index constants" }
		gsub(/RF_API /, "", decl)
		print ""
		print "### `" name "`"
		print ""
		print "```c"
		print decl
		print "```"
		if (comment != "") { print ""; printf "%s", comment }
		flush_comment()
		next
	}
	/^$/ { }
	' include/ringfeed/ringfeed.h
}
if [ "${1:-}" = "--check" ]; then
	if ! diff -u docs/api.md <(render) >/dev/null; then
		echo "docs/api.md is stale: run scripts/api_doc.sh" >&2
		exit 1
	fi
	echo "docs/api.md is up to date"
else
	render >docs/api.md
fi
