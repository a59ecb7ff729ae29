#!/usr/bin/env bash
# run.sh [SECONDS]: builds the libFuzzer targets with clang in build/fuzz and runs
# each for SECONDS (default 60), one after the other. New inputs go to a scratch
# corpus; the committed seeds (tests/fuzz/corpus/) are only read. Crash, leak and
# timeout reproducers land in build/fuzz/artifacts/TARGET/. Exits non-zero if any
# target failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: tests/fuzz/run.sh [SECONDS]" >&2; exit 2; }
scripts/deps.sh
scripts/deps.sh clang libclang-rt-14-dev

dir=build/fuzz
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRF_FUZZ=ON \
	-DRF_BUILD_TESTS=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target fuzz_decode fuzz_config

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# fuzz TARGET MAX_LEN: runs one target, prints its log's tail on failure.
fuzz() {
	local name=$1 max_len=$2 rc=0
	local log="$dir/fuzz_$name.log" art="$dir/artifacts/$name/"
	mkdir -p "$scratch/$name" "$art"
	echo "== fuzz_$name: ${seconds}s"
	"$dir/tests/fuzz/fuzz_$name" "$scratch/$name" "tests/fuzz/corpus/$name" \
		-dict="tests/fuzz/$name.dict" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
		-max_total_time="$seconds" -artifact_prefix="$art" -print_final_stats=1 >"$log" 2>&1 ||
		rc=$?
	if [ "$rc" -ne 0 ]; then
		tail -n 60 "$log"
		echo "fuzz_$name FAILED (exit $rc): log $log, reproducer in $art" >&2
	fi
	return "$rc"
}

# runs TARGET: executions from libFuzzer's final "Done N runs" line; a run that
# stopped early has only its final stats.
runs() {
	local log="$dir/fuzz_$1.log" n
	n=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
	[ -n "$n" ] || n="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1) (stopped early)"
	echo "fuzz_$1: $n runs"
}

status=0
fuzz decode 65536 || status=1
fuzz config 4096 || status=1
runs decode
runs config
exit "$status"
