#!/bin/bash
# The fast descriptor check (lib/e2img/desc_check) against its oracle,
# libext2fs's ext2fs_check_desc: on each layout, thousands of descriptors
# moved onto other tables, superblock and descriptor blocks, range edges and
# past them get the same "sound or not" from both; so does the layout of a
# 15 TiB filesystem (122,880 groups), where ext2fs_check_desc takes seconds.
. "$TESTLIB"

same_verdicts() {
  name=$1; size=$2; shift 2
  rm -f "$T/$name.img"
  mke2fs -q -F "$@" "$T/$name.img" "$size" > "$T/mke2fs.log" 2>&1 || { cat "$T/mke2fs.log"; return 1; }
  # stderr: libext2fs warns of the out-of-range blocks it is asked to test.
  "$DESC_CHECK_DIFF" "$T/$name.img" 3000 7 > "$T/diff.out" 2> "$T/diff.err" || {
    cat "$T/diff.out"; grep -v "for check_desc map$" "$T/diff.err"; return 1; }
  cat "$T/diff.out"
  rm -f "$T/$name.img"
}

for spec in "ext2-1k 16M -t ext2 -b 1024" \
            "ext3-2k-resize 64M -t ext3 -b 2048 -E resize=1000000" \
            "ext4-4k-flex 512M -t ext4" \
            "ext4-flex-4 256M -t ext4 -G 4 -b 1024" \
            "ext4-meta_bg 256M -t ext4 -O meta_bg,^resize_inode -b 1024" \
            "ext4-64bit-csum 128M -t ext4 -O 64bit,metadata_csum -b 1024" \
            "ext4-bigalloc 256M -t ext4 -O bigalloc -C 16384" \
            "ext4-bigalloc-1k 64M -t ext4 -O bigalloc -b 1024 -C 4096" \
            "ext4-sparse_super2 128M -t ext4 -O sparse_super2 -b 1024" \
            "ext2-no-sparse 32M -t ext2 -O ^sparse_super,^resize_inode -b 1024"; do
  set -- $spec
  ok "descriptor check of $1: same verdicts as ext2fs_check_desc" same_verdicts "$@"
done

# A 15 TiB sparse filesystem: 122,880 groups of inode tables to check.
huge_opens_fast() {
  rm -f "$T/huge.img"
  mke2fs -q -F -t ext4 -E lazy_itable_init=1,nodiscard "$T/huge.img" 15T > "$T/mke2fs.log" 2>&1 || {
    cat "$T/mke2fs.log"; return 1; }
  "$DESC_CHECK_DIFF" "$T/huge.img" 0 1 > "$T/diff.out" 2>&1
  grep -q "^1 rounds: 1 sound, 0 damaged, 0 disagreements$" "$T/diff.out" || { cat "$T/diff.out"; return 1; }
  rm -f "$T/huge.img"
}
ok "descriptor check of a 15 TiB filesystem: sound, as ext2fs_check_desc says" huge_opens_fast

done_testing
