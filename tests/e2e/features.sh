#!/bin/bash
# The feature matrix against Debian's e2image 1.47: every block its raw
# image holds (non-zero) is in ours with the same bytes (ours may keep
# more), and e2fsck -fn says the same about our image as about the original.
. "$TESTLIB"
. "$(dirname "$TESTLIB")/fscrypt.sh"

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

# enrich IMAGE: what the features are for, beyond make_tree: xattrs in the
# inode and in a block, an ea_inode value, a casefolded directory, an
# encrypted directory (through the kernel, see encrypt_dir), and hash-tree
# directories (e2fsck -D indexes them).
enrich() {
  img=$1
  features=$(dumpe2fs -h "$img" 2>/dev/null | grep features)
  head -c 1500 /dev/zero | tr '\0' 'b' > "$T/value.block"
  head -c 20000 /dev/zero | tr '\0' 'e' > "$T/value.big"
  {
    echo "ea_set /sub user.small in-the-inode"
    echo "ea_set -f $T/value.block /sub/deeper user.block"
    case $features in *ea_inode*) echo "ea_set -f $T/value.big /sub/random.bin user.big" ;; esac
    case $features in *casefold*)
      echo "mkdir /cf"
      flags=$(debugfs -R "stat /sub" "$img" 2>/dev/null | sed -n 's/.*Flags: \(0x[0-9a-f]*\).*/\1/p')
      echo "set_inode_field /cf flags $(printf '0x%x' $((flags | 0x40000000)))"
      for i in $(seq 1 150); do echo "write /dev/null /cf/Folded-Name-$i"; done ;; esac
  } > "$T/enrich.cmds"
  debugfs -w -f "$T/enrich.cmds" "$img" > "$T/enrich.log" 2>&1 || { cat "$T/enrich.log"; return 1; }
  # Enough entries in /big for several blocks of 64 KiB.
  big=$(debugfs -R "stat /big" "$img" 2>/dev/null | sed -n 's/^Inode: \([0-9]*\).*/\1/p')
  "$ADD_ENTRIES" "$img" an-added-entry-with-a-long-name- 3000 "$big" || return 1
  case $features in *encrypt*) encrypt_dir "$img" || return 1 ;; esac
  e2fsck -fyD "$img" > "$T/enrich.log" 2>&1
  e2fsck -fn "$img" > "$T/enrich.log" 2>&1 || { echo "enriched original not clean"; cat "$T/enrich.log"; return 1; }
  case $features in *dir_index*)
    debugfs -R "htree /big" "$img" 2>/dev/null | grep -q "Indirect levels" ||
      { echo "/big is not a hash-tree directory"; return 1; } ;; esac
  case $features in *casefold*)
    has_flag "$img" /cf 0x40000000 || { echo "/cf is not casefolded"; return 1; } ;; esac
  return 0
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
