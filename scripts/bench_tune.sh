#!/usr/bin/env bash
# bench_tune.sh DATASET [--limit N=3000] [--delay-ms 2] [--repeat R=3] [--final F=11] [--memory-mb 64]
#                [--json FILE]
# The autotuner against a grid search, in one invocation, on two regimes:
#   decode-bound:  the first N files of DATASET (sorted) in the plain directory, warm page cache;
#   latency-bound: the same files through slowfs, answering every lookup, getattr, open, read --delay-ms late.
# Grid: io_uring with decoder.threads 1..4 (1..3 on slowfs) x loader.threads 1,2 x io_depth
# 1,4,16,64,128 (4..128 on slowfs), and on slowfs the pread backend at 16, 32 and 64 threads. Then the
# default config (everything auto), and auto under limits.memory_mb. Each round runs every
# configuration once, in turn; R rounds. The best of 40 noisy medians is biased upwards, so the
# grid only picks the best fixed configuration: F more rounds then run it and auto alternately, and
# their medians give the ratio (target >= 0.95), also given within each round. The report also
# gives what auto chose and peak RSS. `ringfeed run --consumer null`. Needs root or fusermount3
# (Debian fuse3); installs what is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
build=${RF_BENCH_BUILD:-$root/build/bench}

usage() {
	sed -n '2,14s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
[ $# -ge 1 ] || usage
dataset=$1
shift
limit=3000 delay=2 repeat=3 final=11 memory_mb=64 json=""
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case "$1" in
	--limit) limit=$2 ;;
	--delay-ms) delay=$2 ;;
	--repeat) repeat=$2 ;;
	--final) final=$2 ;;
	--memory-mb) memory_mb=$2 ;;
	--json) json=$2 ;;
	*) usage ;;
	esac
	shift 2
done
[ -d "$dataset" ] || { echo "bench_tune.sh: $dataset is not a directory" >&2; exit 2; }

"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRF_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target ringfeed_cli slowfs >/dev/null

me=bench_tune.sh
# shellcheck source=scripts/slowfs_lists.sh
. "$root/scripts/slowfs_lists.sh"
mount_slowfs "$delay"

raw=$work/runs.jsonl
# rf ROUND REGIME LIST LABEL [--set KEY=VALUE]...: one run, one JSON line (with the child's peak RSS).
rf() {
	local round=$1 regime=$2 list=$3 label=$4
	shift 4
	"$py" - "$work/stats.json" "$round" "$regime" "$label" "$build/ringfeed" run --consumer null --quiet \
		--stats-json "$work/stats.json" "$@" "@$list" >>"$raw" <<-'EOF'
		import json, resource, subprocess, sys
		stats, round_, regime, label, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
		subprocess.run(cmd, check=True)
		s = json.load(open(stats))
		sets = [a for a in cmd if "=" in a and not a.startswith("@")]
		print(json.dumps({"round": round_, "regime": regime, "config": label, "sets": sets, "images": s["ok"],
		                  "failed": s["failed"], "images_per_second": s["items_per_second"],
		                  "tuned": s["tuned"], "bottleneck": s.get("bottleneck", {}).get("stage"),
		                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
	EOF
}

# grid ROUND REGIME LIST DECODERS DEPTHS: every io_uring configuration of the grid.
grid() {
	local dec ld depth
	for dec in $4; do
		for ld in 1 2; do
			for depth in $5; do
				rf "$1" "$2" "$3" "io_uring dec=$dec ld=$ld depth=$depth" --set loader.backend=io_uring \
					--set decoder.threads="$dec" --set loader.threads="$ld" --set loader.io_depth="$depth"
			done
		done
	done
}

for round in $(seq 0 $((repeat - 1))); do
	echo "bench_tune.sh: round $((round + 1))/$repeat ($count images)" >&2
	rf "$round" decode "$work/plain.txt" auto
	rf "$round" decode "$work/plain.txt" "auto memory_mb=$memory_mb" --set limits.memory_mb="$memory_mb"
	grid "$round" decode "$work/plain.txt" "1 2 3 4" "1 4 16 64 128"
	rf "$round" latency "$work/slow.txt" auto
	rf "$round" latency "$work/slow.txt" "auto memory_mb=$memory_mb" --set limits.memory_mb="$memory_mb"
	grid "$round" latency "$work/slow.txt" "1 2 3" "4 16 64 128"
	for ld in 16 32 64; do
		rf "$round" latency "$work/slow.txt" "pread dec=2 ld=$ld" --set loader.backend=pread \
			--set decoder.threads=2 --set loader.threads="$ld"
	done
done

# The head-to-head: the grid's best fixed configuration against auto, alternately.
for regime in decode latency; do
	list=$work/plain.txt
	[ "$regime" = decode ] || list=$work/slow.txt
	best=$("$py" "$root/scripts/bench_tune.py" "$raw" --best "$regime")
	read -r -a best_sets <<<"$best"
	echo "bench_tune.sh: $regime: best fixed ${best_sets[*]} against auto, $final rounds" >&2
	for round in $(seq 0 $((final - 1))); do
		rf "$round" "$regime-final" "$list" auto
		sets=()
		for s in "${best_sets[@]}"; do sets+=(--set "$s"); done
		rf "$round" "$regime-final" "$list" "best fixed" "${sets[@]}"
	done
done

report=("$py" "$root/scripts/bench_tune.py" "$raw" --delay-ms "$delay" --memory-mb "$memory_mb")
[ -z "$json" ] || report+=(--json "$json")
"${report[@]}"
