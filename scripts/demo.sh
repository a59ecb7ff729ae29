#!/usr/bin/env bash
# Installs what is missing, builds ringfeed, makes sample images and runs the pipeline on them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRF_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
[ -d build/samples ] || build/ringfeed-samples build/samples 500
build/ringfeed run "$@" build/samples
