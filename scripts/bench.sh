#!/usr/bin/env bash
# bench.sh DATASET [--repeat R=3] [--limit N=1000] [--threads 1,2] [--workers 1,2] [--loader-workers 0,1,2]
#          [--api pull|push] [--set SECTION.KEY=VALUE]... [--json FILE] [--plot FILE]
# Throughput of ringfeed against a hand-written loop over its own decoders, the PIL thread-pool
# seed recipe and a PyTorch DataLoader, on the first N files of DATASET (sorted), in one
# invocation: round r runs ringfeed K=1,2, hand K=1,2, ringfeed's Python module K=1,2, PIL pool 1,2,
# DataLoader 0,1,2 in turn, R rounds, then prints medians, ratios and the targets. DATASET is a
# directory or @LIST.
# Installs what is missing, builds build/bench (or $RF_BENCH_BUILD), warms the page cache.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3 # Debian's interpreter: the one with python3-torch and friends
build=${RF_BENCH_BUILD:-$root/build/bench}

usage() {
	sed -n '2,7s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
[ $# -ge 1 ] || usage
dataset=$1
shift
repeat=3 limit=1000 threads=1,2 workers=1,2 loader_workers=0,1,2 api=pull json="" plot=""
sets=()
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case "$1" in
	--repeat) repeat=$2 ;;
	--limit) limit=$2 ;;
	--threads) threads=$2 ;;
	--workers) workers=$2 ;;
	--loader-workers) loader_workers=$2 ;;
	--api) api=$2 ;;
	--set) sets+=(--set "$2") ;;
	--json) json=$2 ;;
	--plot) plot=$2 ;;
	*) usage ;;
	esac
	shift 2
done

"$root/scripts/deps.sh"
"$root/scripts/deps.sh" python3-pil python3-numpy python3-torch python3-torchvision gnuplot-nox
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRF_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target ringfeed-bench _ringfeed >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
list=$work/files.txt
if [ "${dataset:0:1}" = @ ]; then
	# The lines ringfeed takes from a list: not empty, not a # comment.
	awk -v n="$limit" '{ sub(/\r$/, "") } $0 != "" && !/^#/ && ++i <= n' "${dataset:1}" >"$list"
else
	# Links followed, hidden names below DATASET skipped (DATASET's own path may hold one).
	{ find -L "$dataset" -mindepth 1 -name '.*' -prune -o ! -type d -print 2>/dev/null || true; } | LC_ALL=C sort |
		awk -v n="$limit" 'NR <= n' >"$list" # awk, not head: no SIGPIPE
fi
count=$(wc -l <"$list")
[ "$count" -gt 0 ] || { echo "bench.sh: no files in $dataset" >&2; exit 1; }
# Warm the page cache; a missing or unreadable input is for the runs to report, not an end here.
# Regular files only: a FIFO would hold cat for ever.
tr '\n' '\0' <"$list" | xargs -0 sh -c 'for f; do [ -f "$f" ] && cat -- "$f"; done; true' sh >/dev/null 2>&1 || true

raw=$work/runs.jsonl
meta() { # one line of context for the report: KEY VALUE
	"$py" -c 'import json, sys; print(json.dumps({"meta": sys.argv[1], "value": sys.argv[2]}))' "$1" "$2" >>"$raw"
}
meta dataset "$dataset"
meta images "$count"
meta repeat "$repeat"
meta api "$api"
meta config "${sets[*]:-}"
meta nproc "$(nproc)"
meta cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
meta kernel "$(uname -sr)"
meta python "$("$py" -c 'import PIL, numpy, torch, torchvision; print(f"PIL {PIL.__version__}, numpy {numpy.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}")')"
meta busiest "$(ps -eo pcpu=,comm= --sort=-pcpu | awk '$2 != "ps" && ++i <= 3 {printf "%s%s %s%%", (i > 1 ? ", " : ""), $2, $1}')"

others_busy() { # CPUs' worth of work by other processes over one second, sampled before a round
	local a b
	a=$(grep '^cpu ' /proc/stat)
	sleep 1
	b=$(grep '^cpu ' /proc/stat)
	echo "$a $b" | awk -v n="$(nproc)" '{ busy = 0; total = 0
		for (i = 2; i <= 9; i++) { d = $(i + 11) - $i; total += d; if (i != 5 && i != 6) busy += d }
		printf "%.2f of %d CPUs", total ? busy / total * n : 0, n }'
}

bench=("$build/ringfeed-bench" --repeat 1 --api "$api" "${sets[@]}")
peers=("$py" "$root/scripts/bench_peers.py")
for ((r = 0; r < repeat; r++)); do
	busy=$(others_busy)
	meta "loadavg_round_$r" "$(cut -d' ' -f1-3 /proc/loadavg)"
	meta "busy_before_round_$r" "$busy"
	echo "bench.sh: round $((r + 1))/$repeat ($count images; busy before it: $busy)" >&2
	"${bench[@]}" --system ringfeed --threads "$threads" --round-base "$r" "@$list" >>"$raw"
	"${bench[@]}" --system hand --threads "$threads" --round-base "$r" "@$list" >>"$raw"
	for k in ${threads//,/ }; do
		PYTHONPATH=$build/python "${peers[@]}" python --workers "$k" --round-base "$r" "@$list" >>"$raw"
	done
	for w in ${workers//,/ }; do
		"${peers[@]}" pool --workers "$w" --round-base "$r" "@$list" >>"$raw"
	done
	for w in ${loader_workers//,/ }; do
		"${peers[@]}" dataloader --workers "$w" --round-base "$r" "@$list" >>"$raw"
	done
done
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

report=("${peers[@]}" report "$raw")
[ -z "$json" ] || report+=(--json "$json")
[ -z "$plot" ] || report+=(--plot-data "$work/plot.dat")
"${report[@]}"
if [ -n "$plot" ]; then
	gnuplot -e "datafile='$work/plot.dat'; outfile='$plot'; subtitle='$count images, median of $repeat interleaved rounds, $(nproc) CPUs'" \
		"$root/scripts/bench_plot.gp"
	echo "plot: $plot"
fi
