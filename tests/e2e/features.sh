#!/bin/bash
# The feature matrix against Debian's e2image 1.47: every block its raw
# image holds (non-zero) is in ours with the same bytes (ours may keep
# more), and e2fsck -fn says the same about our image as about the original.
. "$TESTLIB"
. "$(dirname "$TESTLIB")/fslib.sh"

fsck_says() { e2fsck -fn "$1" 2>&1 | sed "s#$1#FS#g; /^e2fsck [0-9]/d"; }

# Fails if a block that is non-zero in ORACLE differs in OURS.
oracle_blocks_kept() {
  oracle=$1; ours=$2; bs=$3
  cmp -l "$oracle" "$ours" 2>/dev/null | awk -v bs="$bs" '{print int(($1 - 1) / bs)}' | uniq |
    sort -un > "$T/differing"
  while read -r b; do
    if [ -n "$(dd if="$oracle" bs="$bs" skip="$b" count=1 2>/dev/null | tr -d '\0' | head -c 1)" ]; then
      echo "block $b is kept by Debian's e2image but differs in ours"; return 1
    fi
  done < "$T/differing"
}

feature_test() {
  name=$1; size=$2; shift 2
  make_fs "$T/$name.img" "$size" "$@" || return 1
  enrich "$T/$name.img" || return 1
  bs=$(dumpe2fs -h "$T/$name.img" 2>/dev/null | awk '/^Block size/ {print $3}')
  "$E2IMAGE" -r "$T/$name.img" "$T/ours.raw" || return 1
  "$ORACLE_E2IMAGE" -r "$T/$name.img" "$T/oracle.raw" 2>/dev/null || return 1
  oracle_blocks_kept "$T/oracle.raw" "$T/ours.raw" "$bs" || return 1
  diff <(fsck_says "$T/$name.img") <(fsck_says "$T/ours.raw") || return 1
  rm -f "$T/$name.img" "$T/ours.raw" "$T/oracle.raw"
}

for spec in \
  "ext2 16M -t ext2" \
  "ext3-journal 16M -t ext3" \
  "ext4-1k 16M -t ext4 -b 1024" \
  "ext4-2k 16M -t ext4 -b 2048" \
  "ext4-4k 32M -t ext4 -b 4096" \
  "ext4-8k 64M -t ext4 -b 8192 -N 4096" \
  "ext4-16k 64M -t ext4 -b 16384 -N 4096" \
  "ext4-32k 128M -t ext4 -b 32768 -N 4096" \
  "ext4-64k 128M -t ext4 -b 65536 -N 4096" \
  "64bit-meta_bg 32M -t ext4 -O 64bit,meta_bg,^resize_inode" \
  "no-flex_bg 32M -t ext4 -O ^flex_bg" \
  "sparse_super2 32M -t ext4 -O sparse_super2" \
  "bigalloc 64M -t ext4 -O bigalloc -C 16384" \
  "inline_data 16M -t ext4 -O inline_data" \
  "metadata_csum-1k 16M -t ext4 -b 1024 -O metadata_csum" \
  "ea_inode 16M -t ext4 -O ea_inode" \
  "quota 16M -t ext4 -O quota,project -I 256" \
  "orphan_file 32M -t ext4 -O orphan_file" \
  "casefold 16M -t ext4 -O casefold" \
  "encrypt 16M -t ext4 -O encrypt" \
  "huge_file 16M -t ext4 -O huge_file" \
  "mmp 16M -t ext4 -O mmp" \
  "no-resize_inode 16M -t ext4 -O ^resize_inode" \
  "no-journal 16M -t ext4 -O ^has_journal"; do
  set -- $spec
  ok "feature $1: every block Debian's e2image keeps is in ours; e2fsck agrees" feature_test "$@"
done

done_testing
