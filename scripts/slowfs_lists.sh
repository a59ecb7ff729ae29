# shellcheck shell=bash
# shellcheck disable=SC2154  # dataset, limit, build and me are the sourcing script's
# Sourced by the slow-storage benchmarks (bench_storage.sh, bench_tune.sh): the first $limit files
# of $dataset (sorted) as plain and slowfs-mounted lists, and mounting slowfs over them.
# Needs $dataset, $limit, $build (with slowfs built) and $me (the script's name, for messages);
# $slowfs_args, if set, adds options to the slowfs command line (split on spaces).
# Sets $work (removed on exit, the mount undone first), $mnt, $count, and the lists
# $work/plain.txt and $work/slow.txt; warms the page cache.
work=$(mktemp -d)
mnt=$work/mnt
mkdir "$mnt"
slowfs_pid=""
unmount() {
	if [ -n "$slowfs_pid" ]; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
		wait "$slowfs_pid" 2>/dev/null || true
		slowfs_pid=""
	fi
}
trap 'unmount; rm -rf "$work"' EXIT

dataset=$(cd "$dataset" && pwd)
(cd "$dataset" && find . -type f ! -name '.*' ! -path '*/.*' | LC_ALL=C sort | awk -v n="$limit" 'NR <= n') \
	>"$work/names.txt"
count=$(wc -l <"$work/names.txt")
[ "$count" -gt 0 ] || { echo "$me: no files in $dataset" >&2; exit 1; }
sed "s|^\.|$dataset|" "$work/names.txt" >"$work/plain.txt"
sed "s|^\.|$mnt|" "$work/names.txt" >"$work/slow.txt"
tr '\n' '\0' <"$work/plain.txt" | xargs -0 cat >/dev/null # warm the page cache under slowfs too

mount_slowfs() { # DELAY_MS
	# shellcheck disable=SC2086 # slowfs_args is a list of options
	"$build/slowfs" "$dataset" "$mnt" --delay-ms "$1" ${slowfs_args:-} -f &
	slowfs_pid=$!
	for _ in $(seq 500); do
		if mountpoint -q "$mnt"; then
			# slowfs serves the first lookup of each name one at a time: look every name up once,
			# untimed, so runs measure the steady state
			tr '\n' '\0' <"$work/slow.txt" | xargs -0 -P 64 -n 16 stat >/dev/null
			return 0
		fi
		sleep 0.01
	done
	echo "$me: slowfs did not mount" >&2
	exit 1
}
