#!/usr/bin/env bash
# make_dataset.sh OUT [COUNT=2000] [SEED=1]
# Builds an ImageNet-like set from real photographs shipped by Debian's mate-backgrounds:
# seeded random crops resized to 500x375 / 375x500 / 500x333, light sensor-like grain,
# baseline JPEG quality 90 with 4:2:0 chroma. Same seed, same files.
set -euo pipefail
out=${1:?usage: make_dataset.sh OUT [COUNT] [SEED]}
count=${2:-2000}
seed=${3:-1}
"$(dirname "$0")/deps.sh" imagemagick mate-backgrounds
mkdir -p "$out"
# The photographs (not the drawn wallpapers), with their sizes, in a stable order.
mapfile -t photos < <(dpkg -L mate-backgrounds | grep -iE '\.jpe?g$' | sort |
	while read -r f; do identify -format '%w %h %i\n' "$f[0]"; done)
[ ${#photos[@]} -gt 0 ] || { echo "make_dataset.sh: no photographs found" >&2; exit 1; }
sizes=("500 375" "375 500" "500 333")
RANDOM=$seed
jobs=()
for ((i = 0; i < count; i++)); do
	read -r sw sh src <<<"${photos[RANDOM % ${#photos[@]}]}"
	read -r tw th <<<"${sizes[i % 3]}"
	# Largest crop of the target's aspect that fits, scaled by 35-100 %, at a random place.
	if ((sw * th > sh * tw)); then ch=$sh; cw=$((sh * tw / th)); else cw=$sw; ch=$((sw * th / tw)); fi
	pct=$((35 + RANDOM % 66))
	cw=$((cw * pct / 100)); ch=$((ch * pct / 100))
	x=$(((RANDOM * 32768 + RANDOM) % (sw - cw + 1)))
	y=$(((RANDOM * 32768 + RANDOM) % (sh - ch + 1)))
	jobs+=("$src ${cw}x${ch}+${x}+${y} ${tw}x${th}! $(printf '%s/img-%05d.jpg' "$out" "$i") $((seed * 100003 + i))")
done
printf '%s\n' "${jobs[@]}" | xargs -P "$(nproc)" -L 1 sh -c \
	'convert "$0" -crop "$1" +repage -resize "$2" -seed "$4" -attenuate 0.7 +noise Gaussian \
		-sampling-factor 4:2:0 -quality 90 -interlace none -strip "$3"'
echo "$count images in $out"
