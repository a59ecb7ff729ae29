#!/usr/bin/env bash
# bench_ocr.sh DIR [--threads N] [--repeat R=3] [--count C=60] [--scale S=1] [--set SECTION.KEY=VALUE]...
# OCR throughput of ringfeed-ocr in pipeline mode against its naive mode (each of N threads reads,
# decodes and recognizes one file at a time), on the same N OCR threads (default: online CPUs).
# If DIR holds no pages, renders C of them, S times 800x600 (make_documents.sh); warms the page
# cache, runs the two modes alternately R times and prints a Markdown table of the medians.
# Binary: $RF_BUILD/ringfeed-ocr, else build/release/ringfeed-ocr or build/ringfeed-ocr.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3

usage() {
	sed -n '2,7s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
[ $# -ge 1 ] || usage
command="demos/ocr/bench_ocr.sh $*"
dir=$1
shift
threads=$(nproc) repeat=3 count=60 scale=1
sets=()
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case "$1" in
	--threads) threads=$2 ;;
	--repeat) repeat=$2 ;;
	--count) count=$2 ;;
	--scale) scale=$2 ;;
	--set) sets+=(--set "$2") ;;
	*) usage ;;
	esac
	shift 2
done

"$root/scripts/deps.sh"          # ringfeed's own, Tesseract and ImageMagick included
"$root/scripts/deps.sh" time     # /usr/bin/time, for the runs' CPU time
for tool in "$py" /usr/bin/time /usr/bin/identify; do
	[ -x "$tool" ] || { echo "bench_ocr.sh: $tool missing (Debian: python3, time, imagemagick)" >&2; exit 1; }
done
bin=""
for b in ${RF_BUILD:+"$RF_BUILD/ringfeed-ocr"} "$root/build/release/ringfeed-ocr" "$root/build/ringfeed-ocr"; do
	if [ -x "$b" ]; then
		bin=$b
		break
	fi
done
if [ -z "$bin" ]; then
	echo "bench_ocr.sh: no ringfeed-ocr; build it first (scripts/test.sh, or cmake -S . -B build &&" \
		"cmake --build build --target ringfeed-ocr), or point RF_BUILD at its build directory" >&2
	exit 1
fi

images() {
	find "$dir" -maxdepth 1 -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.jpeg' \) 2>/dev/null | LC_ALL=C sort
}
[ -n "$(images)" ] || "$root/demos/ocr/make_documents.sh" "$dir" "$count" 1 "$scale" >&2
source_size=$(/usr/bin/identify -format '%wx%h' "$(images | awk 'NR == 1')" 2>/dev/null || echo "?")
find "$dir" -type f -print0 | xargs -0 cat >/dev/null # warm the page cache

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

busy_ticks() { # CPU time of the whole machine so far (user, nice, system, irq, softirq, steal)
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# MODE ROUND: one run; keeps its JSON, and the machine's CPU time next to the run's own, so that
# work by other processes during the run shows in the report.
run() {
	local flags=(--threads "$threads" --quiet --stats-json "$work/$1-$2.json" "${sets[@]}")
	[ "$1" = pipeline ] || flags+=(--naive)
	local before after
	before=$(busy_ticks)
	/usr/bin/time -f '%e %U %S' -o "$work/$1-$2.time" "$bin" "${flags[@]}" "$dir" ||
		{ echo "bench_ocr.sh: $1 run $2 failed" >&2; exit 1; }
	after=$(busy_ticks)
	echo "$before $after $(getconf CLK_TCK) $(cat "$work/$1-$2.time")" >"$work/$1-$2.cpu"
}
for ((r = 1; r <= repeat; r++)); do
	# Each round swaps which mode goes first, so neither always runs on a warmer machine.
	if ((r % 2)); then
		run pipeline "$r"
		run naive "$r"
	else
		run naive "$r"
		run pipeline "$r"
	fi
	echo "bench_ocr.sh: round $r of $repeat done" >&2
done

"$py" - "$work" "$repeat" "$command" "$source_size" <<'EOF'
import json, os, platform, statistics, sys
work, repeat, command, source_size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
modes = ("naive", "pipeline")
def load(m, r):
    j = json.load(open(os.path.join(work, f"{m}-{r}.json")))
    before, after, hz, wall, user, system = map(float, open(os.path.join(work, f"{m}-{r}.cpu")).read().split())
    # CPUs' worth of work by other processes during the run: the machine's CPU time less the run's own.
    j["others"] = max(0.0, ((after - before) / hz - user - system) / wall) if wall > 0 else 0.0
    return j
runs = {m: [load(m, r) for r in range(1, repeat + 1)] for m in modes}
med = lambda m, k: statistics.median(j[k] for j in runs[m])
first = runs["pipeline"][0]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"`{command}`: {first['items']} pages of {source_size} recognized at {first['width']}x{first['height']}, "
      f"OCR threads: {first['threads']}, runs per mode: {repeat}, CPUs: {os.cpu_count()} ({cpu}), "
      f"{platform.system()} {platform.release()}")
print()
print("| mode | images/s (median) | each run (other processes' load, CPUs) | OCR threads starved (median) |")
print("|---|---|---|---|")
for m in modes:
    each = ", ".join(f"{j['images_per_second']:.2f} ({j['others']:.2f})" for j in runs[m])
    starved = f"{100 * med(m, 'starved_fraction'):.1f} %" if m == "pipeline" else "n/a"
    print(f"| {m} | {med(m, 'images_per_second'):.2f} | {each} | {starved} |")
print()
ratios = [p["images_per_second"] / n["images_per_second"] for p, n in zip(runs["pipeline"], runs["naive"])]
print(f"pipeline / naive: {med('pipeline', 'images_per_second') / med('naive', 'images_per_second'):.3f} (medians); "
      f"per round {', '.join(f'{x:.3f}' for x in ratios)}, median {statistics.median(ratios):.3f}")
n = runs["naive"]
side = statistics.median(j["read_seconds"] + j["decode_seconds"] for j in n)
total = statistics.median(j["read_seconds"] + j["decode_seconds"] + j["ocr_seconds"] + j["ocr_init_seconds"] for j in n)
print(f"naive mode, thread time in read + decode: {side:.2f} s of {total:.2f} s ({100 * side / total:.1f} %); "
      f"Tesseract init: {statistics.median(j['ocr_init_seconds'] for j in n):.2f} s")
busiest = max(j["others"] for m in modes for j in runs[m])
if busiest > 0.1:
    print(f"warning: other processes used up to {busiest:.2f} CPUs during a run; those runs are not comparable")
bottleneck = first.get("bottleneck", {}).get("advice")
if bottleneck:
    print(f"ringfeed's bottleneck line (run 1): {bottleneck}")
EOF
