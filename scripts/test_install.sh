#!/usr/bin/env bash
# Installs ringfeed into a scratch prefix and builds demos/example_app against it
# the ways a user would: pkg-config (shared and static) and CMake's find_package; imports
# the installed Python package.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake -S . -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DRF_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null
cmake --install "$work/build" >/dev/null
lib=$(find "$prefix" -name 'libringfeed.so.*.*' | head -n 1)
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^rf_' || true)
[ -z "$exported" ] || { echo "symbols exported without the rf_ prefix: $exported" >&2; exit 1; }
objdump -p "$lib" | grep -q 'SONAME *libringfeed.so.0' || { echo "no SONAME" >&2; exit 1; }

"$work/build/ringfeed-samples" "$work/images" 20 >/dev/null
export PKG_CONFIG_PATH=$(dirname "$(find "$prefix" -name ringfeed.pc)")
src=demos/example_app/main.c
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -o "$work/pc_shared" "$src" $(pkg-config --cflags --libs ringfeed)
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -o "$work/pc_static" "$src" $(pkg-config --cflags ringfeed) \
	"$(dirname "$lib")/libringfeed.a" $(pkg-config --libs-only-l --static ringfeed | sed 's/-lringfeed//')
cmake -S demos/example_app -B "$work/app" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/app" >/dev/null
for app in "$work/pc_shared" "$work/pc_static" "$work/app/example_app" "$work/app/example_app_static"; do
	out=$(LD_LIBRARY_PATH="$(dirname "$lib")" "$app" "$work/images")
	echo "$(basename "$app"): $out"
	case "$out" in *" 20 images, 0 failed"*) ;; *) echo "unexpected output from $app" >&2; exit 1 ;; esac
done
# The Python package, imported from the prefix the way Debian's python3 finds /usr/local.
site=$(dirname "$(find "$prefix" -path '*/ringfeed/__init__.py')")
out=$(PYTHONPATH=$(dirname "$site") /usr/bin/python3 -c '
import sys, ringfeed
assert ringfeed.__file__.startswith(sys.argv[2]), ringfeed.__file__
with ringfeed.Pipeline(sys.argv[1], batch_size=8) as pipe:
    print(sum(len(b) for b in pipe), "images from Python")' "$work/images" "$prefix")
echo "python: $out"
[ "$out" = "20 images from Python" ] || { echo "unexpected output from the Python package" >&2; exit 1; }
# Installed elsewhere than configured (`cmake --install --prefix`): pkg-config points into that prefix.
moved=$work/moved
cmake --install "$work/build" --prefix "$moved" >/dev/null
pc=$(find "$moved" -name ringfeed.pc)
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs ringfeed)
case "$flags" in *"$moved"*) ;; *) echo "ringfeed.pc under $moved points elsewhere: $flags" >&2; exit 1 ;; esac
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror -o "$work/pc_moved" "$src" $flags
out=$(LD_LIBRARY_PATH="$(dirname "$pc")/.." "$work/pc_moved" "$work/images")
echo "pc_moved: $out"
case "$out" in *" 20 images, 0 failed"*) ;; *) echo "unexpected output from pc_moved" >&2; exit 1 ;; esac
# Absolute install directories (a distribution's layout) are written into ringfeed.pc as they are.
abs=$work/abs
cmake -S . -B "$work/build" -DCMAKE_INSTALL_LIBDIR="$abs/lib64" -DCMAKE_INSTALL_INCLUDEDIR="$abs/inc" >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null
cmake --install "$work/build" >/dev/null
flags=$(PKG_CONFIG_PATH=$abs/lib64/pkgconfig pkg-config --cflags --libs ringfeed)
case "$flags" in *"-I$abs/inc"*"-L$abs/lib64"*) ;; *) echo "ringfeed.pc with absolute directories: $flags" >&2; exit 1 ;; esac
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror -o "$work/pc_abs" "$src" $flags
out=$(LD_LIBRARY_PATH="$abs/lib64" "$work/pc_abs" "$work/images")
echo "pc_abs: $out"
case "$out" in *" 20 images, 0 failed"*) ;; *) echo "unexpected output from pc_abs" >&2; exit 1 ;; esac
echo "install test passed"
