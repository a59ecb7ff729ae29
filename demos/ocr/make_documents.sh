#!/usr/bin/env bash
# make_documents.sh DIR COUNT [SEED=1] [SCALE=1]
# Renders COUNT pages of English text with ImageMagick: 800x600 gray, 8-12 lines of words drawn from a
# fixed list, four DejaVu faces at 18-24 pt, some pages turned by up to 1.5 degrees or given light
# noise; even pages PNG, odd pages JPEG (so both decoders run). DIR/truth/<image name>.txt holds each
# page's text. The same SEED gives the same text and layout on any machine (the generator is MINSTD
# in awk), and the same files with the same ImageMagick and fonts.
# SCALE (an integer) renders the same pages SCALE times larger, like a scan at a higher resolution.
set -euo pipefail
convert=/usr/bin/convert # ImageMagick 6 (Debian: imagemagick); a "convert" elsewhere on PATH may differ
fonts=/usr/share/fonts/truetype/dejavu

usage() {
	sed -n '2,8s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
if [ $# -lt 2 ] || [ $# -gt 4 ]; then
	usage
fi
dir=$1 count=$2 seed=${3:-1} scale=${4:-1}
if ! [[ $count =~ ^[0-9]+$ && $seed =~ ^[0-9]+$ && $scale =~ ^[1-9][0-9]*$ ]]; then
	usage
fi
if [ ! -x "$convert" ]; then
	echo "make_documents.sh: $convert not found (Debian package: imagemagick)" >&2
	exit 1
fi
if [ ! -f "$fonts/DejaVuSans.ttf" ]; then
	echo "make_documents.sh: no DejaVu fonts in $fonts (Debian package: fonts-dejavu-core)" >&2
	exit 1
fi
mkdir -p "$dir/truth"

# One line per page: NAME FONT POINTS ANGLE NOISE (0, or the noise generator's seed); the page's text
# goes to truth/NAME.txt.
specs=$(awk -v count="$count" -v seed="$seed" -v truth="$dir/truth" -v fonts="$fonts" '
function rnd(n) { # MINSTD: every product fits a double exactly, so all awks agree
	state = (state * 48271) % 2147483647
	return state % n
}
BEGIN {
	nw = split("the of and to in is that for it as was with be by on not he this are or his from at which " \
		"but have an they you were her she there been one all we their has would when if so no will more " \
		"about other time some could them into only new people after first also two like years work life " \
		"where most over city should water world such because place back under never found great small " \
		"house every between light country while number might through another system story market " \
		"paper window garden river morning silver winter summer letter station village question " \
		"Monday London Paris Europe January October Science History", words, " ")
	split("DejaVuSans DejaVuSerif DejaVuSansMono DejaVuSansCondensed", face, " ")
	state = seed % 2147483646 + 1
	for (page = 0; page < count; page++) {
		name = sprintf("doc%04d.%s", page, page % 2 ? "jpg" : "png")
		font = face[rnd(4) + 1]
		points = 18 + rnd(7)
		width = int(680 / (points * (font == "DejaVuSansMono" ? 0.62 : 0.56)))
		lines = 8 + rnd(5)
		out = truth "/" name ".txt"
		for (l = 0; l < lines; l++) {
			text = words[rnd(nw) + 1]
			while (length(text) < width - 8)
				text = text " " words[rnd(nw) + 1]
			print text >out # truncates on the first line only
		}
		close(out)
		angle = rnd(3) == 0 ? (rnd(31) - 15) / 10 : 0
		noise = rnd(3) == 0 ? 1 + rnd(1000000) : 0
		printf "%s %s/%s.ttf %d %.1f %d\n", name, fonts, font, points, angle, noise
	}
}')

[ -n "$specs" ] || exit 0
while read -r name font points angle noise; do
	extra=()
	[ "$angle" = 0.0 ] || extra+=(-virtual-pixel white -distort SRT "$angle")
	[ "$noise" = 0 ] || extra+=(-seed "$noise" -attenuate 0.6 +noise Gaussian)
	"$convert" -size $((800 * scale))x$((600 * scale)) xc:white -font "$font" -pointsize $((points * scale)) \
		-fill black -gravity NorthWest -interline-spacing $((6 * scale)) \
		-annotate +$((40 * scale))+$((30 * scale)) "$(cat "$dir/truth/$name.txt")" "${extra[@]}" \
		-colorspace Gray -depth 8 -quality 88 -define png:exclude-chunks=date,time "$dir/$name" # no timestamps
done <<<"$specs"
echo "make_documents.sh: $count pages of $((800 * scale))x$((600 * scale)) in $dir (truth in $dir/truth)"
