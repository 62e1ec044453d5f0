#!/bin/bash
# What goes into an image and what stays out: no stale bytes from an earlier
# filesystem on a reused disk, no regular file data without -a (all of it
# with -a), and e2fsck -fn says the same about image and original.
. "$TESTLIB"

fsck_says() { e2fsck -fn "$1" 2>&1 | sed "s#$1#FS#g; /^e2fsck [0-9]/d"; }

mkdir -p "$T/tree"
make_tree "$T/tree"
yes "THIS-IS-FILE-DATA-MARKER" | head -c 300000 > "$T/tree/marked.txt"

reused_disk() {
  yes "LEFTOVER-OF-AN-EARLIER-FS" | head -c 16M > "$T/reused.img"
  mke2fs -q -F -t ext4 -E lazy_itable_init=1,nodiscard -d "$T/tree" "$T/reused.img" 16M || return 1
  grep -q LEFTOVER-OF-AN-EARLIER-FS "$T/reused.img" || { echo "no leftovers to test with"; return 1; }
  "$E2IMAGE" -r "$T/reused.img" "$T/reused.raw" || return 1
  ! grep -c LEFTOVER-OF-AN-EARLIER-FS "$T/reused.raw" || return 1
  diff <(fsck_says "$T/reused.img") <(fsck_says "$T/reused.raw")
}
ok "a reused disk: no leftovers of the earlier filesystem in the image, e2fsck agrees" reused_disk

no_file_data() {
  mke2fs -q -F -t ext4 -d "$T/tree" "$T/fs.img" 16M || return 1
  "$E2IMAGE" -r "$T/fs.img" "$T/meta.raw" || return 1
  "$E2IMAGE" -Q "$T/fs.img" "$T/meta.qcow2" || return 1
  qemu-img convert -O raw "$T/meta.qcow2" "$T/meta-from-qcow2.raw" || return 1
  ! grep -q THIS-IS-FILE-DATA-MARKER "$T/meta.raw" &&
    ! grep -q THIS-IS-FILE-DATA-MARKER "$T/meta-from-qcow2.raw"
}
ok "without -a no regular file data goes into raw or qcow2 images" no_file_data

all_data() {
  "$E2IMAGE" -ra "$T/fs.img" "$T/all.raw" || return 1
  grep -q THIS-IS-FILE-DATA-MARKER "$T/all.raw" || return 1
  mkdir -p "$T/out"
  debugfs -R "dump /marked.txt $T/out/marked.txt" "$T/all.raw" 2>/dev/null
  cmp "$T/tree/marked.txt" "$T/out/marked.txt"
}
ok "with -a the file data is there, byte for byte" all_data

done_testing
