#!/bin/bash
# Damaged filesystems (built with debugfs and dd): e2image writes an image,
# warns naming the damage, and e2fsck -fn says the same thing about the
# image as about the original (forensic fidelity). No image holds regular
# file data. With MEASURE_READS (fsck_reads.sh), every byte e2fsck -fn reads
# from the original is also in the -r image, in the -Q image converted back,
# in the -s image but for names, and (the inode tables) in the e2i image.
. "$TESTLIB"

# Regular file data with a mark: the images (no -a) must not hold it.
DATA_MARK=REGULAR-FILE-DATA-MARK
mkdir -p "$T/tree"
make_tree "$T/tree"
yes "$DATA_MARK" | head -c 40000 > "$T/tree/marked.txt"

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
  # Before the damage (which may hide it): the block size and name blocks.
  fs_bs=$(block_size "$img")
  [ -z "${MEASURE_READS:-}" ] || name_blocks "$img" "$fs_bs" > "$T/m.names"
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
  ! grep -q "$DATA_MARK" "$T/$name.raw" || { echo "regular file data in the image"; return 1; }
  # Scrambled: no name of the root directory or of /big is left as it was.
  [ -z "${SCRAMBLE_ARGS:-}" ] || ! grep -q -a -e marked.txt -e entry-with-a-longish-name "$T/$name.raw" ||
    { echo "a name left unscrambled in the image"; return 1; }
  if [ -n "${MEASURE_READS:-}" ]; then measure_reads "$img" "$T/$name.raw" || return 1; fi
  fsck_says "$img" > "$T/$name.fsck.orig"
  fsck_says "$T/$name.raw" > "$T/$name.fsck.image"
  diff "$T/$name.fsck.orig" "$T/$name.fsck.image" || return 1
  # The damage is real: e2fsck finds problems on the original (or, with
  # FSCK_MAY_PASS, only asks questions it leaves for a writable check).
  [ -n "${FSCK_MAY_PASS:-}" ] || ! e2fsck -fn "$img" > /dev/null 2>&1 ||
    { echo "e2fsck finds the original clean"; return 1; }
  rm -f "$img" "$T/$name.raw"
}

FSCK_READS="$(dirname "$TESTLIB")/fsck_reads.pl"
# e2i_tables E2I-IMAGE BLOCKSIZE: the byte ranges ("OFFSET LENGTH") of the
# inode tables dumpe2fs -i lists: what an e2i image holds as on disk of what
# e2fsck reads (its bitmaps are libext2fs's, uninit groups computed, and -I
# rewrites the superblock's and descriptors' counts).
e2i_tables() {
  dumpe2fs -i "$1" 2> /dev/null | perl -ne '
    BEGIN { $bs = shift @ARGV }
    sub r { my ($a, $b) = @_; $b //= $a; print $a * $bs, " ", ($b - $a + 1) * $bs, "\n" }
    r($1, $2) if /Inode table at (\d+)-(\d+)/;' "$2"
}
# name_blocks IMAGE BLOCKSIZE: the byte ranges of the blocks besides
# directory and xattr blocks where -s may change bytes: the inode tables
# dumpe2fs lists (inline directories, fast symbolic links, checksums), the
# blocks of make_tree's directories (also those a damage made them claim)
# and of /slowlink.
name_blocks() {
  dumpe2fs "$1" 2> /dev/null | sed -n 's/.*Inode table at \([0-9]*\)-\([0-9]*\).*/\1 \2/p' |
    awk -v bs="$2" '{print $1 * bs, ($2 - $1 + 1) * bs}'
  for path in / /sub /sub/deeper /big /sources /lost+found /slowlink; do
    echo "blocks $path"
  done | debugfs -f - "$1" 2> /dev/null | grep -v '^debugfs' | tr ' ' '\n' | grep -x '[0-9][0-9]*' |
    awk -v bs="$2" '{print $1 * bs, bs}'
}
# measure_reads ORIGINAL RAW-IMAGE: every byte e2fsck -fn reads from the
# original is in the raw image and in the qcow2 image converted back by our
# -r (where e2fsck then says the same), is in the -s image unless it is in
# a block that holds names, and those of the inode tables are in the e2i
# image put back with Debian's -I onto zeros.
measure_reads() {
  orig=$1; raw=$2
  bs=$fs_bs
  perl "$FSCK_READS" -b "$bs" "$orig" "$raw" || { echo "(the -r image)"; return 1; }
  "$E2IMAGE" -Q "$orig" "$T/m.qcow2" 2> /dev/null || { echo "-Q failed"; return 1; }
  ! grep -q "$DATA_MARK" "$T/m.qcow2" || { echo "regular file data in the qcow2 image"; return 1; }
  "$E2IMAGE" -r "$T/m.qcow2" "$T/m.back" || return 1
  perl "$FSCK_READS" -b "$bs" "$orig" "$T/m.back" || { echo "(the -Q image)"; return 1; }
  diff <(fsck_says "$orig") <(fsck_says "$T/m.back") || { echo "(the -Q image)"; return 1; }
  # Scrambled, the bytes read differ only in blocks that hold names.
  name_blocks "$orig" "$bs" >> "$T/m.names"
  "$E2IMAGE" -r -s --scramble-seed=5 "$orig" "$T/m.s.raw" 2> /dev/null || return 1
  perl "$FSCK_READS" -b "$bs" -n "$T/m.names" "$orig" "$T/m.s.raw" || { echo "(the -s image)"; return 1; }
  "$E2IMAGE" "$orig" "$T/m.e2i" 2> /dev/null || { echo "the e2i image failed"; return 1; }
  ! grep -q "$DATA_MARK" "$T/m.e2i" || { echo "regular file data in the e2i image"; return 1; }
  # Put back by Debian's -I (the oracle) onto zeros, where it can: it
  # refuses descriptors naming no inode table or one past the end.
  rm -f "$T/m.restored"; truncate -s "$(stat -c %s "$orig")" "$T/m.restored"
  if "$ORACLE_E2IMAGE" -I "$T/m.restored" "$T/m.e2i" > /dev/null 2>&1; then
    e2i_tables "$T/m.e2i" "$bs" > "$T/m.tables"
    [ -s "$T/m.tables" ] || { echo "no inode tables in the e2i image"; return 1; }
    perl "$FSCK_READS" -b "$bs" -w "$T/m.tables" "$orig" "$T/m.restored" || {
      echo "(the e2i image)"; return 1; }
  else
    # Where the e2i image cannot be put back, Debian's cannot either.
    "$ORACLE_E2IMAGE" "$orig" "$T/m.oracle.e2i" > /dev/null 2>&1
    ! "$ORACLE_E2IMAGE" -I "$T/m.restored" "$T/m.oracle.e2i" > /dev/null 2>&1 || {
      echo "Debian's -I puts back only Debian's e2i image"; return 1; }
  fi
  rm -f "$T"/m.*
}

block_size() { dumpe2fs -h "$1" 2> /dev/null | awk '/^Block size/ {print $3}'; }
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

# The damage where e2fsck -fn reads blocks that a healthy filesystem's
# metadata would not name, or that no longer look like metadata.
first_free() { debugfs -R "ffb $1 $2" "$3" 2> /dev/null | awk '{print $4}'; }

bad_blocks_claimed() {
  blk=$(debugfs -R "bmap /sub/random.bin 3" "$1" 2> /dev/null)
  itable=$(dumpe2fs "$1" 2> /dev/null | awk '/Inode table at/ {split($4, a, "-"); print a[1]; exit}')
  dbg "sif <1> block[0] $blk" "sif <1> block[1] $((itable + 2))" "sif <1> size 2048" \
    "sif <1> blocks 4" "$1"
}
ok "bad blocks inode listing a file's block and an inode table block" damaged \
  bad-blocks-claimed "" -t ext4 -- bad_blocks_claimed
bad_blocks_list_in_data() {
  blk=$(debugfs -R "bmap /sub/random.bin 3" "$1" 2> /dev/null)
  dbg "sif <1> block[IND] $blk" "sif <1> size 2048" "sif <1> blocks 4" "$1"
}
ok "bad blocks inode whose list (indirect block) is a file's block: e2fsck reads it" damaged \
  bad-blocks-list "inode 1: " -t ext2 -- bad_blocks_list_in_data

# /sparse: ten marked pieces with holes between, mapped by a tree of depth
# 1 (a root in the inode, one leaf node block).
add_sparse() {
  rm -f "$T/sparse"
  for i in $(seq 0 9); do
    echo "$DATA_MARK-$i" | dd of="$T/sparse" bs=1024 seek=$((i * 8)) conv=notrunc 2> /dev/null
  done
  dbg "write $T/sparse /sparse" "$1" || return 1
  debugfs -R "stat /sparse" "$1" 2> /dev/null | grep -q "(ETB0)" || { echo "/sparse has no leaf node"; return 1; }
}
# The root's depth field says DEPTH: e2fsck still reads the node below.
too_deep() { add_sparse "$2" && dbg "sif /sparse block[1] $((($1 << 16) | 4))" "$2"; }
for depth in 5 6 255; do
  ok "extent tree depth $depth over one leaf node: the node is kept, not the data" damaged \
    too-deep-$depth "inode [0-9]+: extent" -t ext4 -- too_deep $depth
done

journal_bad_magic() { zero_block "$(block_size "$1")" "$(debugfs -R "bmap <8> 0" "$1" 2> /dev/null)" "$1"; }
ok "journal superblock with a bad magic" damaged journal-bad-magic "" -t ext4 -- journal_bad_magic
ok "journal inode with a directory's mode, has_journal clear" damaged journal-bad-mode "" \
  -t ext4 -- dbg "feature -has_journal" "sif <8> mode 040755"
# Two transactions in a 64-bit journal, not replayed: descriptor blocks
# (64-bit tags), the blocks they log, a commit block each.
journal_transactions() {
  bs=$(block_size "$1"); free=$(first_free 4 12000 "$1")
  pseudo_random $((3 * bs)) 3 > "$T/logged"
  printf 'jo\njw -b %s,%s,%s %s\njc\njo\njw -b %s %s\njc\n' $free $((free + 1)) $((free + 2)) \
    "$T/logged" $((free + 3)) "$T/logged" > "$T/journal.cmds"
  debugfs -w -f "$T/journal.cmds" "$1" > /dev/null 2>&1 || return 1
  dumpe2fs -h "$1" 2> /dev/null | grep -q "needs_recovery" || { echo "nothing logged"; return 1; }
  dbg "feature -has_journal" "$1" || return 1
  e2fsck -fn "$1" 2>&1 | grep -q "has_journal flag is clear, but a journal is present" ||
    { echo "e2fsck does not see the journal"; return 1; }
}
FSCK_MAY_PASS=1 ok "64-bit journal holding transactions not replayed, has_journal clear" damaged \
  journal-transactions "" -t ext4 -O 64bit -- journal_transactions

ok "deleted root directory: its blocks, named by '..' entries, are kept" damaged deleted-root \
  "inode 2: deleted directory" -t ext4 -- dbg "sif <2> links_count 0" "sif <2> dtime 1700000000"
ok "cleared root inode" damaged cleared-root "" -t ext4 -- dbg "clri <2>"
ok "deleted subdirectory named by its subdirectory's '..' (ext2)" damaged deleted-subdir \
  "inode [0-9]+: deleted directory" -t ext2 -- dbg "sif /sub links_count 0" "sif /sub dtime 1700000000"

# /big's ".." names /sub, and /sub is cut off into the unused part of its
# group's inode table: e2fsck still reads /sub's blocks for /big's path.
parent_unused() {
  bs=$(block_size "$1")
  ipg=$(dumpe2fs -h "$1" 2> /dev/null | awk '/^Inodes per group/ {print $4}')
  sub=$(debugfs -R "stat /sub" "$1" 2> /dev/null | sed -n 's/^Inode: \([0-9]*\).*/\1/p')
  big_block=$(debugfs -R "bmap /big 0" "$1" 2> /dev/null)
  poke32 $((big_block * bs + 12)) "$sub" "$1"
  dbg "set_bg $(((sub - 1) / ipg)) itable_unused $((ipg - (sub - 1) % ipg))" \
    "set_bg $(((sub - 1) / ipg)) checksum calc" "$1"
}
ok "a '..' naming a directory in the unused part of an inode table: its blocks are kept" \
  damaged parent-unused "inode [0-9]+: directory in the unused part" -t ext4 -N 512 -- parent_unused

# /sparse's leaf node moved by a resize that did not finish: copied to
# block TO (past the end: a grown device whose superblock still has the
# old size), the inode pointing there.
moved_tree() {
  add_sparse "$2" || return 1
  bs=$(block_size "$2"); count=$(dumpe2fs -h "$2" 2> /dev/null | awk '/^Block count/ {print $3}')
  node=$(debugfs -R "stat /sparse" "$2" 2> /dev/null | sed -n 's/.*(ETB0):\([0-9]*\).*/\1/p')
  case $1 in past-end) to=$((count + 10)); truncate -s $(((count + 64) * bs)) "$2" ;;
    *) to=$(first_free 1 12000 "$2") ;; esac
  dd if="$2" of="$2" bs="$bs" skip="$node" seek="$to" count=1 conv=notrunc 2> /dev/null
  dbg "sif /sparse block[4] $to" "$2"
}
ok "extent tree node moved mid-resize to a block marked free" damaged moved-tree-free "" \
  -t ext4 -- moved_tree free
ok "extent tree node moved mid-resize past the end of the filesystem" damaged moved-tree-past-end \
  "inode [0-9]+: extent tree block" -t ext4 -- moved_tree past-end
mark_unclaimed() { dbg "setb $(first_free 1 12000 "$1") 40" "$1"; }
ok "blocks marked in use that no inode claims" damaged unclaimed-blocks "" -t ext4 -- mark_unclaimed

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

# The measuring tool itself: a byte e2fsck reads that differs is found
# and named by its block.
measure_catches() {
  make_fs "$T/t.img" 16M -t ext4 -b 1024 || return 1
  "$E2IMAGE" -r "$T/t.img" "$T/t.raw" || return 1
  perl "$FSCK_READS" -b 1024 "$T/t.img" "$T/t.raw" || return 1
  blk=$(debugfs -R "bmap / 0" "$T/t.img" 2> /dev/null)
  # The first byte of the name of the root directory's ".." entry.
  printf 'Z' | dd of="$T/t.raw" bs=1 seek=$((blk * 1024 + 20)) conv=notrunc 2> /dev/null
  ! perl "$FSCK_READS" -b 1024 "$T/t.img" "$T/t.raw" > "$T/t.out" || return 1
  cat "$T/t.out"
  grep -q "^  block $blk\$" "$T/t.out"
}
[ -z "${MEASURE_READS:-}" ] ||
  ok "fsck_reads.pl finds a byte e2fsck reads changed in the image" measure_catches

done_testing
