#!/bin/bash
# Damaged filesystems (built with debugfs and dd): e2image writes an image,
# warns naming the damage, and e2fsck -fn says the same thing about the
# image as about the original (forensic fidelity).
. "$TESTLIB"

# With SCRAMBLE_ARGS (damaged_scrambled.sh), every image is taken with -s
# as well, and e2fsck's output is compared with names and paths hidden.
hide_names() {
  if [ -n "${SCRAMBLE_ARGS:-}" ]; then
    # An entry's line whose name or directory path is garbage bytes (quotes
    # and parentheses among them) is cut at the last ") " before the problem.
    LC_ALL=C sed "/^Entry '/ s/^Entry '.*) \([a-z]\)/Entry 'NAME' in PATH (NAME) \1/
         s#/[^ ]* (#PATH (#g; s/([^)]*)/(NAME)/g; s/'[^']*'/'NAME'/g"
  else
    cat
  fi
}
# e2fsck -fn output with the file name replaced.
fsck_says() { e2fsck -fn "$1" 2>&1 | sed "s#$1#FS#g; /^e2fsck [0-9]/d" | hide_names; }

# damaged NAME WARNING-REGEX MKE2FS-ARGS -- DAMAGE-COMMAND...
damaged() {
  name=$1; want=$2; shift 2
  mk=(); while [ "$1" != -- ]; do mk+=("$1"); shift; done; shift
  img="$T/$name.img"
  make_fs "$img" "${FS_SIZE:-16M}" "${mk[@]}" || return 1
  "$@" "$img" > "$T/damage.log" 2>&1 || { cat "$T/damage.log"; return 1; }
  "$E2IMAGE" -r ${SCRAMBLE_ARGS:-} "$img" "$T/$name.raw" 2> "$T/$name.err"; rc=$?
  cat "$T/$name.err"
  [ $rc = 0 ] || { echo "exit $rc"; return 1; }
  if [ -n "$want" ]; then
    grep -Eq "$want" "$T/$name.err" || { echo "no warning matching /$want/"; return 1; }
    tail -n 1 "$T/$name.err" | grep -Eq "^e2image: [0-9]+ problems? found" || {
      echo "no final count of problems"; return 1; }
    # One warning line per problem counted.
    counted=$(tail -n 1 "$T/$name.err" | sed -n 's/^e2image: \([0-9]*\) problems\{0,1\} found.*/\1/p')
    [ "$counted" = "$(grep -c '^e2image: warning: ' "$T/$name.err")" ] || {
      echo "$counted problems counted, $(grep -c '^e2image: warning: ' "$T/$name.err") warning lines"; return 1; }
  fi
  # Into a file, the group tables are copied during the scan (scrambled
  # images: then again where they change); into a pipe, in one pass.
  "$E2IMAGE" -r ${SCRAMBLE_ARGS:-} "$img" - 2> /dev/null | cmp - "$T/$name.raw" ||
    { echo "the image into a file and into a pipe differ"; return 1; }
  fsck_says "$img" > "$T/$name.fsck.orig"
  fsck_says "$T/$name.raw" > "$T/$name.fsck.image"
  diff "$T/$name.fsck.orig" "$T/$name.fsck.image" || return 1
  # The damage is real: e2fsck finds problems on the original.
  ! e2fsck -fn "$img" > /dev/null 2>&1 || { echo "e2fsck finds the original clean"; return 1; }
  rm -f "$img" "$T/$name.raw"
}

dbg() { img=${@: -1}; set -- "${@:1:$#-1}"; for c in "$@"; do debugfs -w -R "$c" "$img" || return 1; done; }
zero_block() { dd if=/dev/zero of="$3" bs="$1" seek="$2" count=1 conv=notrunc 2>/dev/null; }
garbage_block() { pseudo_random "$1" 7 | dd of="$3" bs="$1" seek="$2" count=1 conv=notrunc 2>/dev/null; }
# Moves the second inode of group 0 past the used part of its inode table.
shrink_itable_used() { dbg "set_bg 0 itable_unused $(( $(dumpe2fs -h "$1" 2>/dev/null | awk '/^Inodes per group/ {print $4}') - 12 ))" "$1"; }

ok "bad extent header" damaged bad-extent-header "inode [0-9]+: bad extent header" \
  -t ext4 -- dbg "sif /sub/random.bin block[0] 0x12345"
ok "extent past the end of the filesystem" damaged extent-past-end "inode [0-9]+: extent .*outside" \
  -t ext4 -- dbg "sif /sub/random.bin block[5] 99999999"
ok "indirect block past the end (ext2)" damaged ind-past-end "inode [0-9]+: .*outside the filesystem" \
  -t ext2 -- dbg "sif /sub/random.bin block[IND] 99999999"
ok "missing inode table" damaged missing-itable "group 1: inode table at block 0" \
  -t ext4 -O ^flex_bg -- dbg "set_bg 1 inode_table 0"
ok "inode table past the end" damaged itable-past-end "group 1: inode table at block 99999999" \
  -t ext4 -- dbg "set_bg 1 inode_table 99999999"
ok "block bitmap past the end: backup descriptors used, as e2fsck" damaged bad-bitmap \
  "backup superblock at block 8193" -t ext4 -- dbg "set_bg 1 block_bitmap 99999"
ok "zeroed superblock: backup used, as e2fsck" damaged zero-super "backup superblock at block 8193" \
  -t ext4 -- zero_block 1024 1
FS_SIZE=160M ok "zeroed superblock, 4k blocks" damaged zero-super-4k \
  "backup superblock at block 32768" -t ext4 -b 4096 -- zero_block 4096 0
ok "bad descriptor checksum on an uninit group: its bitmaps are kept" damaged bad-gd-csum \
  "group 1: descriptor checksum is wrong" \
  -t ext4 -- dbg "set_bg 1 checksum 0x1234"
ok "INODE_UNINIT on a group with inodes in use" damaged inode-uninit-in-use "" \
  -t ext4 -- dbg "set_bg 0 flags 1"
ok "BLOCK_UNINIT on the last group" damaged block-uninit-last "" \
  -t ext4 -- dbg "set_bg 1 flags 2"
ok "directory entries naming inodes past itable_unused" damaged unused-inodes "group 0: directory entries" \
  -t ext4 -N 512 -- shrink_itable_used
ok "a directory whose mode says device file (e2fsck reads its first block)" damaged dir-as-device "" \
  -t ext2 -- dbg "sif /sub/deeper mode 020644"
ok "extent-mapped directory whose mode says block device" damaged dir-as-blockdev "" \
  -t ext4 -- dbg "sif /sub mode 060644"
cross_blocks() {
  blk=$(debugfs -R "bmap /sub/random.bin 0" "$1" 2>/dev/null)
  dbg "sif /sub/deeper/numbers.txt block[0] $blk" "sif /big block[1] $blk" "$1"
}
ok "crossed blocks: two files and a directory claim the same block" damaged crossed "" \
  -t ext2 -- cross_blocks
ok "corrupt inline data" damaged inline-data "" \
  -t ext4 -O inline_data -I 256 -- dbg "sif /fastlink size 200" "sif /sub flags 0x10000000"
ok "random bytes over the superblock" damaged random-super "backup superblock at block 8193" \
  -t ext4 -b 1024 -- garbage_block 1024 1

# Little-endian 32-bit VALUE at byte OFFSET of FILE.
poke32() {
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($2 & 255)) $(($2 >> 8 & 255)) \
    $(($2 >> 16 & 255)) $(($2 >> 24 & 255)))" | dd of="$3" bs=1 seek="$1" conv=notrunc 2>/dev/null
}
# s_first_data_block wrong: the descriptors are read from the wrong block
# (148, inside the inode table) and no backup is where e2fsck looks. The
# two 64-byte descriptors there are written too, so the damage does not
# depend on the timestamps of the inodes that happen to be at that block:
# group 0's inode table lands past the end, group 1 has none.
wreck_first_group() {
  poke32 $((1024 + 20)) 147 "$1"
  dd if=/dev/zero of="$1" bs=1024 seek=148 count=1 conv=notrunc 2>/dev/null
  poke32 $((148 * 1024)) 130 "$1"; poke32 $((148 * 1024 + 4)) 132 "$1"
  poke32 $((148 * 1024 + 8)) 99999999 "$1"
}
ok "first data block wrong: garbage descriptors, backups unusable" damaged wrecked-group0 \
  "group 0: inode table at block [0-9]+ is past the end" -t ext4 -b 1024 -O ^metadata_csum,uninit_bg -- wreck_first_group

unknown_feature() { printf '\x08' | dd of="$1" bs=1 seek=$((1024 + 0x63)) conv=notrunc 2>/dev/null; }
ok "an incompat feature libext2fs does not know: imaged anyway, with a warning" damaged \
  unknown-feature "unsupported feature.*imaging it anyway" -t ext4 -O ^metadata_csum -- unknown_feature

explicit_backup() {
  make_fs "$T/b.img" 16M -t ext4 -b 1024 || return 1
  zero_block 1024 1 "$T/b.img"
  "$E2IMAGE" -r -b 8193 -B 1024 "$T/b.img" "$T/b.raw" || return 1
  # The backup superblock and its descriptors are in the image, byte-equal.
  cmp <(dd if="$T/b.img" bs=1024 skip=8193 count=2 2>/dev/null) \
      <(dd if="$T/b.raw" bs=1024 skip=8193 count=2 2>/dev/null) || return 1
  diff <(fsck_says "$T/b.img") <(fsck_says "$T/b.raw")
}
ok "-b SUPERBLOCK -B BLOCKSIZE: the given backup is used and kept" explicit_backup

not_ext() {
  rm -f "$T/minix.img" && truncate -s 4M "$T/minix.img" && mkfs.minix "$T/minix.img" > /dev/null || return 1
  ! "$E2IMAGE" -r "$T/minix.img" "$T/minix.raw" 2> "$T/err" || return 1
  cat "$T/err"
  [ "$(wc -l < "$T/err")" = 1 ] && grep -q "(found: minix filesystem)" "$T/err" &&
    [ ! -e "$T/minix.raw" ]
}
ok "not an ext filesystem: refused with what it looks like" not_ext

no_usable_superblock() {
  make_fs "$T/n.img" 16M -t ext4 -b 1024 || return 1
  zero_block 1024 1 "$T/n.img"; zero_block 1024 8193 "$T/n.img"
  ! "$E2IMAGE" -r "$T/n.img" "$T/n.raw" 2> "$T/err" && grep -q "Bad magic number" "$T/err"
}
ok "no usable superblock at all: refused" no_usable_superblock

done_testing
