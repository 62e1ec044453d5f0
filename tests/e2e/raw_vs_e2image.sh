#!/bin/bash
# `e2image -r` against Debian's e2image 1.47 on clean filesystems made by
# mke2fs: the raw images must be byte-identical, and e2fsck clean.
. "$TESTLIB"

compare_with_oracle() {
  name=$1; size=$2; shift 2
  make_fs "$T/$name.img" "$size" "$@" || return 1
  "$E2IMAGE" -r "$T/$name.img" "$T/$name.ours.raw" || return 1
  "$ORACLE_E2IMAGE" -r "$T/$name.img" "$T/$name.oracle.raw" 2>/dev/null || return 1
  same_bytes "$T/$name.ours.raw" "$T/$name.oracle.raw" || return 1
  e2fsck -fn "$T/$name.ours.raw" || return 1
  rm -f "$T/$name.img" "$T/$name.ours.raw" "$T/$name.oracle.raw"
}

for spec in \
  "ext2-1k 16M -t ext2 -b 1024" \
  "ext2-4k 32M -t ext2 -b 4096" \
  "ext3-1k 16M -t ext3 -b 1024" \
  "ext3-2k 24M -t ext3 -b 2048" \
  "ext4-1k 24M -t ext4 -b 1024" \
  "ext4-2k 24M -t ext4 -b 2048" \
  "ext4-4k 64M -t ext4 -b 4096" \
  "ext4-noflex 64M -t ext4 -O ^flex_bg" \
  "ext4-64bit 64M -t ext4 -O 64bit" \
  "ext4-no64bit 64M -t ext4 -O ^64bit" \
  "ext4-nocsum 64M -t ext4 -O ^metadata_csum" \
  "ext4-csum-1k 16M -t ext4 -b 1024 -O metadata_csum,64bit" \
  "ext4-uninit 128M -t ext4 -O ^metadata_csum,uninit_bg" \
  "ext4-many-groups 256M -t ext4 -b 1024 -g 1024 -N 2048"; do
  set -- $spec
  ok "raw image of $1 ($*) is byte-identical to Debian e2image's" compare_with_oracle "$@"
done

done_testing
