#!/bin/bash
# The cost of -s: times `e2image -Q` and `e2image -Q -s` on one filesystem and
# prints one line (best of $RUNS runs each, default 3).
#   bench/scramble.sh E2IMAGE [FS_IMAGE]
# Without FS_IMAGE it builds one with $FILES files (default 1000000) in
# hash-tree directories of $PER_DIR entries (default 1000), using the test
# helper $ADD_ENTRIES (default: tests/e2e/add_entries next to E2IMAGE's tree),
# in $BENCH_TMPDIR (default /tmp), and removes it afterwards.
set -eu
E2IMAGE=${1:?usage: scramble.sh E2IMAGE [FS_IMAGE]}
FS=${2:-}
FILES=${FILES:-1000000}
PER_DIR=${PER_DIR:-1000}
RUNS=${RUNS:-3}
ADD_ENTRIES=${ADD_ENTRIES:-$(dirname "$E2IMAGE")/../tests/e2e/add_entries}
WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/scramble-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PATH=/usr/sbin:/sbin:$PATH

if [ -z "$FS" ]; then
  FS="$WORK/fs.img"
  dirs=$(( (FILES + PER_DIR - 1) / PER_DIR ))
  mkdir -p "$WORK/tree"
  (cd "$WORK/tree" && seq -f "directory-%g" 1 "$dirs" | xargs mkdir)
  # 4 KiB blocks: a group (128 MiB) holds at most 32768 inodes. The file is sparse.
  size_mb=$(( (FILES / 32768 + 2) * 128 ))
  mke2fs -q -F -t ext4 -N $((FILES + dirs + 100)) -d "$WORK/tree" "$FS" "${size_mb}M"
  debugfs -R "ls -l /" "$FS" 2>/dev/null | awk '$NF ~ /^directory-/ { print $1 }' |
    xargs "$ADD_ENTRIES" "$FS" "some-file-name-" "$PER_DIR"
  e2fsck -fyD "$FS" > /dev/null 2>&1 || [ $? -le 1 ]
fi

# best ARGS...: the shortest wall time and the smallest CPU time (user+sys)
# of $RUNS runs of the command, in seconds.
best() {
  bw=""; bc=""
  for _ in $(seq 1 "$RUNS"); do
    TIMEFORMAT='%R %U %S'
    t=$( { time "$@" > /dev/null 2>&1; } 2>&1 )
    w=${t%% *}; c=$(echo "$t" | awk '{ print $2 + $3 }')
    if [ -z "$bw" ] || awk -v a="$w" -v b="$bw" 'BEGIN { exit !(a < b) }'; then bw=$w; fi
    if [ -z "$bc" ] || awk -v a="$c" -v b="$bc" 'BEGIN { exit !(a < b) }'; then bc=$c; fi
  done
  echo "$bw $bc"
}
read -r plain plain_cpu < <(best "$E2IMAGE" -Q "$FS" "$WORK/plain.qcow2")
read -r scrambled scrambled_cpu < <(best "$E2IMAGE" -Q -s --scramble-seed=1 "$FS" "$WORK/scrambled.qcow2")
inodes=$(dumpe2fs -h "$FS" 2>/dev/null | awk -F: '/^Inode count/ { c=$2 } /^Free inodes/ { f=$2 } END { print c - f }')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
printf 'scramble: %s inodes in use; wall: -Q %.2fs, -Q -s %.2fs, ratio %s; ' \
  "$inodes" "$plain" "$scrambled" "$(ratio "$scrambled" "$plain")"
printf 'cpu: -Q %.2fs, -Q -s %.2fs (target: wall ratio < 1.5)\n' "$plain_cpu" "$scrambled_cpu"
