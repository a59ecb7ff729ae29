#!/usr/bin/env bash
# Regenerates the committed seed corpora under tests/fuzz/corpus/ (ImageMagick's
# convert and python3). Only needed when seeds are added; the files are committed.
# A decode seed is one config byte (fuzz_decode.c: output size, channels, fit)
# followed by the image.
set -euo pipefail
cd "$(dirname "$0")"
im=/usr/bin/convert
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf corpus
mkdir -p corpus/decode corpus/config

n=0
# seed NAME FILE: the next config byte, then FILE.
seed() {
	{ printf '%b' "\\x$(printf %02x $((n * 7 % 256)))"; cat "$2"; } >"corpus/decode/$1"
	n=$((n + 1))
}

src=(-size 24x16 -seed 7 plasma:red-blue -strip)
"$im" "${src[@]}" -quality 80 -sampling-factor 2x2 jpg:"$tmp/a.jpg"
seed jpeg_baseline_420 "$tmp/a.jpg"
"$im" "${src[@]}" -quality 90 -sampling-factor 1x1 -interlace JPEG jpg:"$tmp/b.jpg"
seed jpeg_progressive_444 "$tmp/b.jpg"
"$im" "${src[@]}" -colorspace Gray -quality 75 jpg:"$tmp/c.jpg"
seed jpeg_gray "$tmp/c.jpg"
"$im" "${src[@]}" -colorspace CMYK -quality 75 jpg:"$tmp/d.jpg"
seed jpeg_cmyk "$tmp/d.jpg"
# Cut inside the entropy-coded data, after the headers.
head -c $(($(stat -c %s "$tmp/a.jpg") - 48)) "$tmp/a.jpg" >"$tmp/e.jpg"
seed jpeg_truncated "$tmp/e.jpg"

"$im" "${src[@]}" -colorspace Gray -define png:color-type=0 -depth 8 png:"$tmp/g.png"
seed png_gray8 "$tmp/g.png"
"$im" "${src[@]}" png24:"$tmp/rgb.png"
seed png_rgb8 "$tmp/rgb.png"
"$im" "${src[@]}" -alpha set -channel A -evaluate set 60% +channel png32:"$tmp/rgba.png"
seed png_rgba8 "$tmp/rgba.png"
"$im" "${src[@]}" -colors 16 png8:"$tmp/pal.png"
seed png_palette "$tmp/pal.png"
"$im" "${src[@]}" png48:"$tmp/rgb16.png"
seed png_rgb16 "$tmp/rgb16.png"
"$im" "${src[@]}" -interlace PNG png24:"$tmp/adam7.png"
seed png_interlaced "$tmp/adam7.png"
# A valid header claiming 100000 x 100000 RGB, then a tiny IDAT.
python3 - "$tmp/bomb.png" <<'EOF'
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
EOF
seed png_header_bomb "$tmp/bomb.png"

"$im" "${src[@]}" bmp3:"$tmp/a.bmp"
seed bmp24 "$tmp/a.bmp"
"$im" "${src[@]}" -colors 16 gif:"$tmp/a.gif"
seed gif "$tmp/a.gif"
"$im" "${src[@]}" -compress None tga:"$tmp/a.tga"
seed tga "$tmp/a.tga"
"$im" "${src[@]}" -compress RLE tga:"$tmp/rle.tga"
seed tga_rle "$tmp/rle.tga"
"$im" "${src[@]}" -depth 8 ppm:"$tmp/a.ppm"
seed pnm_p6 "$tmp/a.ppm"
"$im" "${src[@]}" -colorspace Gray -depth 16 pgm:"$tmp/a.pgm"
seed pnm_p5_16bit "$tmp/a.pgm"
"$im" "${src[@]}" hdr:"$tmp/a.hdr"
seed hdr "$tmp/a.hdr"
"$im" "${src[@]}" -depth 8 psd:"$tmp/a.psd"
seed psd "$tmp/a.psd"
printf 'not an image at all\n' >"$tmp/junk"
seed not_an_image "$tmp/junk"

cat >corpus/config/full.ini <<'EOF'
; every key, valid values
[loader]
threads = 2
io_depth = 32
backend = pread
[decoder]
threads = auto
[output]
width = 160
height = 120
channels = 3
fit = stretch
layout = nchw_f32
mean = 123.7, 116.3, 103.5
std = 58.4,57.1,57.4
[batch]
size = 16
ordered = false
drop_last = yes
[infer]
threads = 1
[limits]
max_pixels = 50000000
max_file_bytes = 1048576
[pipeline]
on_error = fail
prefetch_batches = 4
queue_depth = auto
[source]
extensions = jpg,png
epochs = 3
shuffle = true
seed = 42
shard_index = auto
shard_count = 2
equal_shards = drop
EOF
printf '[output]\nwidth = 64\n[output]\ncolour = red\n' >corpus/config/unknown_key.ini
printf '[output]\nchannels = 2\n' >corpus/config/bad_channels.ini
printf '[batch]\nsize = -1\n[output]\nmean = 1,2,3,4,5\n' >corpus/config/bad_values.ini
printf '[limits]\nmax_pixels = 18446744073709551616\n' >corpus/config/u64_overflow.ini
printf '[output\nwidth 64\n' >corpus/config/syntax_error.ini
printf 'width = 64\n' >corpus/config/no_section.ini
printf '[output]\n  width = 64\n\theight = 48\n# comment\n' >corpus/config/indented.ini
printf 'output.fit=cover\n' >corpus/config/set_line.ini
: >corpus/config/empty.ini
echo "$n decode seeds, $(find corpus/config -type f | wc -l) config seeds"
