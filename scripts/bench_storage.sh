#!/usr/bin/env bash
# bench_storage.sh DATASET [--limit N=500] [--delays 0.5,2,10] [--depths 1,2,4,8,16,32,64,128]
#                  [--pread-threads 1,2,4,8,16,32,64] [--pool-workers 2,8,32,64] [--repeat R=3]
#                  [--pairs P=11] [--slowfs-args ARGS] [--json FILE] [--plot FILE]
# Images/s over slow storage: the first N files of DATASET (sorted) served by slowfs (a FUSE
# passthrough answering every lookup, getattr, open and read the given milliseconds late), against
# the same files in the plain directory (warm page cache). At each delay: one io_uring loader at each
# io_depth, the pread backend at each loader.threads, and (at 2 ms) the PIL thread-pool recipe at
# each worker count. As root it also reads the plain directory with a cold page cache
# (echo 3 > /proc/sys/vm/drop_caches before each run), buffered and with loader.direct_io.
# ringfeed runs are `ringfeed run --consumer null` with the default config plus the loader
# settings. Then the target's two configurations alone, back to back, P times (plain directory,
# then slowfs at 2 ms, one io_uring loader at io_depth 64, the mount kept up): the target is judged
# on these pairs (the median pair's ratio, met when all of its 95 % bootstrap interval is). Prints medians, the io_depth curve and the target; --json writes every run,
# --plot a PNG of the curves. --slowfs-args adds options to every slowfs mount (e.g. "--batch");
# --repeat 0 runs the pairs only. Needs root or fusermount3 (Debian fuse3); installs what is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
build=${RF_BENCH_BUILD:-$root/build/bench}

usage() {
	sed -n '2,15s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
[ $# -ge 1 ] || usage
dataset=$1
shift
limit=500 delays=0.5,2,10 depths=1,2,4,8,16,32,64,128 pread_threads=1,2,4,8,16,32,64
pool_workers=2,8,32,64 repeat=3 pairs=11 json="" plot="" slowfs_args=""
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case "$1" in
	--limit) limit=$2 ;;
	--delays) delays=$2 ;;
	--depths) depths=$2 ;;
	--pread-threads) pread_threads=$2 ;;
	--pool-workers) pool_workers=$2 ;;
	--repeat) repeat=$2 ;;
	--pairs) pairs=$2 ;;
	--json) json=$2 ;;
	--plot) plot=$2 ;;
	--slowfs-args) slowfs_args=$2 ;;
	*) usage ;;
	esac
	shift 2
done
[ -d "$dataset" ] || { echo "bench_storage.sh: $dataset is not a directory" >&2; exit 2; }

"$root/scripts/deps.sh"
"$root/scripts/deps.sh" python3-pil python3-numpy gnuplot-nox
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRF_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target ringfeed_cli slowfs >/dev/null

me=bench_storage.sh
# shellcheck source=scripts/slowfs_lists.sh
. "$root/scripts/slowfs_lists.sh"
raw=$work/runs.jsonl

# rf ROUND STORAGE DELAY LIST BACKEND THREADS DEPTH [DIRECT]: one ringfeed run, one JSON line.
rf() {
	"$build/ringfeed" run --consumer null --quiet --stats-json "$work/stats.json" \
		--set loader.backend="$5" --set loader.threads="$6" --set loader.io_depth="$7" \
		--set loader.direct_io="${8:-false}" "@$4"
	"$py" - "$work/stats.json" "$1" "$2" "$3" "$5" "$6" "$7" "${8:-false}" >>"$raw" <<-'EOF'
		import json, sys
		s = json.load(open(sys.argv[1]))
		print(json.dumps({"round": int(sys.argv[2]), "storage": sys.argv[3], "delay_ms": float(sys.argv[4]),
		                  "system": "ringfeed", "backend": sys.argv[5], "loader_threads": int(sys.argv[6]),
		                  "io_depth": int(sys.argv[7]), "direct_io": sys.argv[8] == "true",
		                  "images": s["ok"], "failed": s["failed"],
		                  "images_per_second": s["items_per_second"],
		                  "decoder_starved_seconds": s["stages"]["decoder"]["starved_seconds"]}))
	EOF
}

# cold ROUND: the plain directory with an empty page cache, buffered then O_DIRECT, then re-warms.
cold() {
	for direct in false true; do
		sync
		echo 3 >/proc/sys/vm/drop_caches
		rf "$1" cold 0 "$work/plain.txt" io_uring 1 64 "$direct"
	done
	tr '\n' '\0' <"$work/plain.txt" | xargs -0 cat >/dev/null
}

# pool ROUND DELAY WORKERS: the PIL thread-pool recipe over the mount.
pool() {
	"$py" "$root/scripts/bench_peers.py" pool --workers "$3" --repeat 1 --limit "$count" "@$work/slow.txt" |
		"$py" -c 'import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(json.dumps({"round": int(sys.argv[1]), "storage": "slowfs", "delay_ms": float(sys.argv[2]),
                      "system": "pil_pool", "workers": int(sys.argv[3]), "images": r["images"],
                      "failed": r.get("failed", 0), "images_per_second": r["images_per_second"]}))' \
			"$1" "$2" "$3" >>"$raw"
}

IFS=, read -r -a delay_list <<<"$delays"
IFS=, read -r -a depth_list <<<"$depths"
IFS=, read -r -a thread_list <<<"$pread_threads"
IFS=, read -r -a worker_list <<<"$pool_workers"
for round in $(seq 0 $((repeat - 1))); do
	echo "bench_storage.sh: round $((round + 1))/$repeat ($count images)" >&2
	rf "$round" plain 0 "$work/plain.txt" io_uring 1 64
	for delay in 0 "${delay_list[@]}"; do
		mount_slowfs "$delay"
		if [ "$delay" = 0 ]; then # FUSE's own cost, no latency: the same point only
			rf "$round" slowfs 0 "$work/slow.txt" io_uring 1 64
		else
			for d in "${depth_list[@]}"; do rf "$round" slowfs "$delay" "$work/slow.txt" io_uring 1 "$d"; done
			for t in "${thread_list[@]}"; do rf "$round" slowfs "$delay" "$work/slow.txt" pread "$t" 1; done
			if [ "$delay" = 2 ]; then
				for w in "${worker_list[@]}"; do pool "$round" "$delay" "$w"; done
			fi
		fi
		unmount
	done
	if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/drop_caches ]; then cold "$round"; fi
done
# The target's pair, alternated so that both sides see the same drift of a shared machine.
if [ "$pairs" -gt 0 ]; then
	echo "bench_storage.sh: $pairs target pairs (plain, then slowfs at 2 ms)" >&2
	mount_slowfs 2
	for pair in $(seq 0 $((pairs - 1))); do
		rf "$pair" pair_plain 0 "$work/plain.txt" io_uring 1 64
		rf "$pair" pair_slowfs 2 "$work/slow.txt" io_uring 1 64
	done
	unmount
fi
echo "slowfs options: --delay-ms DELAY${slowfs_args:+ $slowfs_args}"
"$py" "$root/scripts/bench_storage.py" "$raw" ${json:+--json "$json"} ${plot:+--plot "$plot"}
