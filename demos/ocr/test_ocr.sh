#!/usr/bin/env bash
# test_ocr.sh BINARY: renders 6 pages, recognizes them with BINARY (ringfeed-ocr) in pipeline and
# naive mode, and checks the text against the truth; then one corrupt file among the pages must be
# one error record while the others are still recognized. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: test_ocr.sh BINARY" >&2; exit 2; }
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
pages=6
min_recall=0.80

skip() {
	echo "test_ocr.sh: SKIP: $*" >&2
	exit 77
}
[ -x /usr/bin/convert ] || skip "/usr/bin/convert missing (Debian: imagemagick)"
[ -x "$py" ] || skip "$py missing (Debian: python3)"
tessdata=("${TESSDATA_PREFIX:-/nonexistent}"/eng.traineddata /usr/share/tesseract-ocr/*/tessdata/eng.traineddata)
found=""
for f in "${tessdata[@]}"; do [ -f "$f" ] && found=$f; done
[ -n "$found" ] || skip "no eng.traineddata (Debian: tesseract-ocr-eng)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
	echo "test_ocr.sh: FAIL: $*" >&2
	failures=$((failures + 1))
}

"$here/make_documents.sh" "$work/docs" "$pages" 7 >/dev/null

# Share of the truth's words found in the text, counted as multisets, case and punctuation ignored.
recall() {
	awk 'FNR == 1 { f++ }
		{ $0 = tolower($0); gsub(/[^a-z]+/, " ") }
		f == 1 { for (i = 1; i <= NF; i++) truth[$i]++; n += NF }
		f == 2 { for (i = 1; i <= NF; i++) seen[$i]++ }
		END { for (w in truth) hit += seen[w] < truth[w] ? seen[w] : truth[w]; printf "%.3f\n", n ? hit / n : 0 }' "$1" "$2"
}

json() { # FILE KEY: one field of the --stats-json object
	"$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# MODE OUT: every page has a text file whose recall reaches min_recall.
check_texts() {
	local mode=$1 out=$2 img name r texts
	texts=$(find "$out" -name '*.txt' | wc -l)
	[ "$texts" -eq "$pages" ] || fail "$mode: $texts text files for $pages pages"
	for img in "$work"/docs/doc*; do
		name=$(basename "$img")
		if [ ! -f "$out/$name.txt" ]; then
			fail "$mode: no text for $name"
			continue
		fi
		r=$(recall "$work/docs/truth/$name.txt" "$out/$name.txt")
		echo "$mode $name word recall $r"
		awk -v r="$r" -v min="$min_recall" 'BEGIN { exit !(r >= min) }' || fail "$mode: $name recall $r < $min_recall"
	done
}

# MODE INPUT FAILED: a run over INPUT exits 0, reports FAILED failed items and recognizes every page.
run_mode() {
	local mode=$1 input=$2 failed=$3
	local out=$work/out-$mode-$failed j=$work/$mode-$failed.json
	local flags=(--out "$out" --threads 2 --stats-json "$j" --quiet)
	[ "$mode" = pipeline ] || flags+=(--naive)
	local rc=0
	"$bin" "${flags[@]}" "$input" 2>"$work/stderr" || rc=$?
	cat "$work/stderr" >&2
	[ "$rc" -eq 0 ] || { fail "$mode: exit status $rc"; return; }
	[ "$(json "$j" images)" = "$pages" ] || fail "$mode: JSON images $(json "$j" images), expected $pages"
	[ "$(json "$j" failed)" = "$failed" ] || fail "$mode: JSON failed $(json "$j" failed), expected $failed"
	local records
	records=$(grep -c '^ringfeed-ocr: failed ' "$work/stderr" || true)
	[ "$records" -eq "$failed" ] || fail "$mode: $records error records on stderr, expected $failed"
	check_texts "$mode" "$out"
}

for mode in pipeline naive; do
	run_mode "$mode" "$work/docs" 0
done

# A JPEG cut short among the pages: exactly one error record, naming it.
mkdir "$work/mixed"
cp "$work"/docs/doc* "$work/mixed/"
head -c 1500 "$work/docs/doc0001.jpg" >"$work/mixed/broken.jpg"
for mode in pipeline naive; do
	run_mode "$mode" "$work/mixed" 1
	grep -q "^ringfeed-ocr: failed $work/mixed/broken.jpg: " "$work/stderr" ||
		fail "$mode: the error record does not name broken.jpg"
done

# A directory link back to an ancestor is walked once in both modes, with no doubled slash.
mkdir -p "$work/loop/sub"
cp "$work/docs/doc0001.jpg" "$work/loop/sub/"
ln -s .. "$work/loop/sub/up"
for mode in pipeline naive; do
	flags=(--threads 1 --stats-json "$work/loop.json" --quiet)
	[ "$mode" = pipeline ] || flags+=(--naive)
	rc=0
	"$bin" "${flags[@]}" "$work/loop/" 2>"$work/stderr" || rc=$?
	[ "$rc" -eq 0 ] || fail "$mode: a directory link to an ancestor: exit $rc ($(head -c 300 "$work/stderr"))"
	[ "$rc" -ne 0 ] || [ "$(json "$work/loop.json" images)" = 1 ] || fail "$mode: the linked tree gave $(json "$work/loop.json" images) images, not 1"
done

# --threads overrides the config file, as command-line options do.
printf '[infer]\nthreads = 3\n' >"$work/three.ini"
"$bin" --threads 1 --config "$work/three.ini" "$work/docs/doc0001.jpg" >"$work/summary" 2>&1 ||
	fail "--threads with --config: exit status $?"
grep -q ': 1 OCR thread,' "$work/summary" || fail "--threads 1 under a config of 3: $(head -n 1 "$work/summary")"

[ "$failures" -eq 0 ] || { echo "test_ocr.sh: $failures failures" >&2; exit 1; }
echo "test_ocr.sh: PASS"
