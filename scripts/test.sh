#!/usr/bin/env bash
# Builds and runs every test. Optional argument: asan (ASan+UBSan, with float-to-integer overflow
# checks, which GCC leaves out of "undefined") or tsan (ThreadSanitizer).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
mode=${1:-release}
case "$mode" in
release) dir=build/release; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
asan) dir=build/asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DRF_SANITIZE=address,undefined,float-cast-overflow) ;;
tsan) dir=build/tsan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DRF_SANITIZE=thread) ;;
*) echo "usage: scripts/test.sh [release|asan|tsan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
ctest --test-dir "$dir" --output-on-failure --timeout 600
