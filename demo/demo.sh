#!/bin/bash
# make demo: capture a small ext4 filesystem built from this source tree,
# convert it back, and check both results with e2fsck and qemu-img.
set -eu
E2IMAGE=$1; SRC=$2; WORK=$3
PATH=/usr/sbin:/sbin:$PATH
rm -rf "$WORK"; mkdir -p "$WORK"
start=$(date +%s.%N)

human() { numfmt --to=iec --suffix=B "$1"; }
alloc() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$2"; }

mkdir "$WORK/tree"
# The sources only: in a git checkout (SRC its top level, not a tarball
# unpacked inside one) the tracked files, so that a tree that was built and
# tested in place (binaries, logs) still fits.
if [ "$(git -C "$SRC" rev-parse --show-toplevel 2> /dev/null)" = "$(cd "$SRC" && pwd -P)" ]; then
  git -C "$SRC" ls-files -z | (cd "$SRC" && tar cf - --null -T -) | tar xf - -C "$WORK/tree"
else
  (cd "$SRC" && tar cf - --exclude=.git --exclude=demo-work --exclude='*.o' --exclude='*.a' \
     --exclude='*.log' --exclude='*.trs' --exclude=autom4te.cache --exclude=tests/tmp .) |
    tar xf - -C "$WORK/tree"
fi
# 64 MiB, or more if the tree needs it (twice its size, for metadata and slack).
size_mib=$(du -smx "$WORK/tree" | awk '{ n = 2 * $1 + 16; print (n < 64 ? 64 : n) }')
step "Build a $size_mib MiB ext4 filesystem from the source tree" "mke2fs -t ext4 -d TREE fs.img ${size_mib}M"
mke2fs -q -F -t ext4 -d "$WORK/tree" "$WORK/fs.img" "${size_mib}M"
echo "files: $(find "$WORK/tree" -type f | wc -l), directories: $(find "$WORK/tree" -type d | wc -l)"

step "Capture its metadata as qcow2 (what a user attaches to a bug report)" "e2image -Q -p fs.img fs.qcow2"
echo "(-p prints progress on stderr; the final line is the summary)"
"$E2IMAGE" -Q -p "$WORK/fs.img" "$WORK/fs.qcow2"

step "Check the qcow2 with qemu-img" "qemu-img check fs.qcow2"
qcow2_verdict="clean"
qemu-img check "$WORK/fs.qcow2" || qcow2_verdict="PROBLEMS (exit $?)"

step "Convert it back to raw (what a maintainer does)" "e2image -r fs.qcow2 fs.raw"
"$E2IMAGE" -r "$WORK/fs.qcow2" "$WORK/fs.raw"

step "Check the restored filesystem" "e2fsck -fn fs.raw"
fsck_verdict="clean"
e2fsck -fn "$WORK/fs.raw" || fsck_verdict="PROBLEMS (exit $?)"

step "The classic e2i image, read back by dumpe2fs -i" "e2image -p fs.img fs.e2i; dumpe2fs -i fs.e2i"
"$E2IMAGE" -p "$WORK/fs.img" "$WORK/fs.e2i"
dumpe2fs -i "$WORK/fs.e2i" 2>/dev/null | sed -n '/^Group 0:/,/^Group 1:/p' | head -n 8

step "Move the filesystem 1 MiB forwards inside its own file, with progress" \
  "e2image -ra -p -O 1048576 fs.img; e2fsck -fn 'fs.img?offset=1048576'"
"$E2IMAGE" -ra -p -O 1048576 "$WORK/fs.img"
move_verdict="clean"
e2fsck -fn "$WORK/fs.img?offset=1048576" || move_verdict="PROBLEMS (exit $?)"

end=$(date +%s.%N)
printf '\n\033[1m== Sizes (allocated on disk)\033[0m\n'
printf '  %-28s %10s\n' "filesystem fs.img" "$(human "$(alloc "$WORK/fs.img")")" \
  "qcow2 image fs.qcow2" "$(human "$(alloc "$WORK/fs.qcow2")")" \
  "raw image fs.raw" "$(human "$(alloc "$WORK/fs.raw")") (apparent $(human "$(stat -c %s "$WORK/fs.raw")"))"
printf '\nVerdicts: qemu-img check: %s; e2fsck -fn: %s; after the move: %s. Total time: %s s\n' \
  "$qcow2_verdict" "$fsck_verdict" "$move_verdict" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
[ "$qcow2_verdict" = clean ] && [ "$fsck_verdict" = clean ] && [ "$move_verdict" = clean ]
