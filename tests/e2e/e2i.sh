#!/bin/bash
# Normal mode (the classic e2i image) and -I: dumpe2fs -i reads our e2i
# image as dumpe2fs reads the device, our image has the content of Debian
# e2image's, and -I puts the metadata back onto a damaged device.
. "$TESTLIB"
. "$(dirname "$TESTLIB")/fslib.sh"

# dumpe2fs output without the journal lines (the e2i format holds no journal).
dump_no_journal() {
  grep -v -E '^(Journal (features|sequence|start|checksum|checksum type):|Total journal|Max transaction|Fast commit)' "$1"
}

e2i_reads_back() {
  name=$1; size=$2; shift 2
  make_fs "$T/$name.img" "$size" "$@" || return 1
  [ -z "${ENRICH:-}" ] || enrich "$T/$name.img" || return 1
  "$E2IMAGE" "$T/$name.img" "$T/$name.e2i" || return 1
  "$ORACLE_E2IMAGE" "$T/$name.img" "$T/$name.oracle.e2i" 2>/dev/null || return 1
  dumpe2fs "$T/$name.img" > "$T/dev.txt" 2>&1 || return 1
  dumpe2fs -i "$T/$name.e2i" > "$T/ours.txt" 2>&1 || { cat "$T/ours.txt"; return 1; }
  dumpe2fs -i "$T/$name.oracle.e2i" > "$T/oracle.txt" 2>&1 || return 1
  diff <(dump_no_journal "$T/dev.txt") "$T/ours.txt" || return 1
  diff "$T/oracle.txt" "$T/ours.txt" || return 1
  # Past the header block (host, time, image inode), the same bytes as Debian's.
  bs=$(dumpe2fs -h "$T/$name.img" 2>/dev/null | awk '/^Block size/ {print $3}')
  cmp <(tail -c +$((bs + 1)) "$T/$name.e2i") <(tail -c +$((bs + 1)) "$T/$name.oracle.e2i") || return 1
  for ino in 2 7 11 12; do
    diff <(debugfs -i -R "stat <$ino>" "$T/$name.oracle.e2i" 2>&1) \
         <(debugfs -i -R "stat <$ino>" "$T/$name.e2i" 2>&1) || return 1
  done
  rm -f "$T/$name".*
}

for spec in "ext2-1k 8M -t ext2 -b 1024" "ext3-2k 16M -t ext3 -b 2048" \
            "ext4-4k 32M -t ext4" "ext4-64bit-csum 16M -t ext4 -O 64bit,metadata_csum -b 1024" \
            "ext4-bigalloc 64M -t ext4 -O bigalloc -C 16384"; do
  set -- $spec
  ok "e2i image of $1: dumpe2fs -i = dumpe2fs, same content as Debian e2image's" e2i_reads_back "$@"
done

# The feature matrix, with fslib.sh's content (xattrs, ea_inode, casefolded
# and encrypted directories, hash-tree directories). Not mmp: the e2i format
# has no room for the MMP block, and dumpe2fs -i fails on its images as on
# Debian e2image's.
ENRICH=1
for spec in "ext4-64k 128M -t ext4 -b 65536 -N 4096" "ext4-16k 64M -t ext4 -b 16384 -N 4096" \
            "64bit-meta_bg 32M -t ext4 -O 64bit,meta_bg,^resize_inode" \
            "sparse_super2 32M -t ext4 -O sparse_super2" "inline_data 16M -t ext4 -O inline_data" \
            "ea_inode 16M -t ext4 -O ea_inode" "casefold 16M -t ext4 -O casefold" \
            "encrypt 16M -t ext4 -O encrypt" "quota 16M -t ext4 -O quota,project -I 256" \
            "orphan_file 32M -t ext4 -O orphan_file" "no-journal 16M -t ext4 -O ^has_journal"; do
  set -- $spec
  ok "e2i image of $1 (with content): dumpe2fs -i = dumpe2fs, same content as Debian e2image's" \
    e2i_reads_back "$@"
done
ENRICH=

e2i_stdout() {
  make_fs "$T/fs.img" 8M -t ext4 || return 1
  "$E2IMAGE" "$T/fs.img" - > "$T/stdout.e2i" || return 1
  "$E2IMAGE" "$T/fs.img" "$T/file.e2i" || return 1
  cmp <(tail -c +1025 "$T/stdout.e2i") <(tail -c +1025 "$T/file.e2i") &&
    dumpe2fs -i "$T/stdout.e2i" > /dev/null 2>&1
}
ok "e2i to standard output" e2i_stdout

e2i_damaged() {
  make_fs "$T/bad.img" 16M -t ext4 -O ^flex_bg || return 1
  debugfs -w -R "set_bg 1 inode_table 0" "$T/bad.img" > /dev/null 2>&1 || return 1
  "$E2IMAGE" "$T/bad.img" "$T/bad.e2i" 2> "$T/err"; rc=$?
  cat "$T/err"
  [ $rc = 0 ] && grep -q "inode table" "$T/err" && dumpe2fs -i "$T/bad.e2i" > /dev/null 2>&1
}
ok "e2i of a filesystem with a missing inode table: written, with a warning" e2i_damaged

install_back() {
  make_fs "$T/fs.img" 16M -t ext4 || return 1
  mkdir -p "$T/before" "$T/after"
  debugfs -R "rdump /sub $T/before" "$T/fs.img" > /dev/null 2>&1
  "$E2IMAGE" "$T/fs.img" "$T/fs.e2i" || return 1
  # Wreck the inode table of group 0 and the free counts, then install.
  itable=$(dumpe2fs "$T/fs.img" 2>/dev/null | awk '/Inode table at/ {split($4, r, "-"); print r[1]; exit}')
  dd if=/dev/zero of="$T/fs.img" bs=1024 seek="$itable" count=8 conv=notrunc 2>/dev/null
  ! e2fsck -fn "$T/fs.img" > /dev/null 2>&1 || { echo "damage not seen by e2fsck"; return 1; }
  "$E2IMAGE" -I "$T/fs.img" "$T/fs.e2i" || return 1
  e2fsck -fn "$T/fs.img" || return 1
  debugfs -R "rdump /sub $T/after" "$T/fs.img" > /dev/null 2>&1
  diff -r "$T/before" "$T/after"
}
ok "-I installs the metadata back: e2fsck clean, same files" install_back

install_not_e2i() {
  cp "$T/fs.img" "$T/dev.img"
  ! "$E2IMAGE" -I "$T/dev.img" "$T/fs.img" 2> "$T/err" && grep -q "not an e2i image" "$T/err" &&
    cmp "$T/fs.img" "$T/dev.img"
}
ok "-I with a file that is not an e2i image is refused, the device untouched" install_not_e2i

# An e2i image whose descriptors put an inode table past the filesystem's
# end (a damaged filesystem's image) cannot be installed, even with -f:
# libext2fs's bitmap reader corrupts memory on it (e2fsprogs' -I aborts with
# "double free"), and writing it would grow a file to the bogus block.
install_tables_outside() {
  make_fs "$T/far.img" 8M -t ext4 -O ^metadata_csum || return 1
  debugfs -w -R "set_bg 0 inode_table 99999999" "$T/far.img" > /dev/null 2>&1 || return 1
  "$E2IMAGE" "$T/far.img" "$T/far.e2i" 2> /dev/null || return 1
  truncate -s 8M "$T/target.img" && cp "$T/target.img" "$T/target.before"
  for force in "" -f; do
    "$E2IMAGE" $force -I "$T/target.img" "$T/far.e2i" 2> "$T/err"; rc=$?
    cat "$T/err"
    [ $rc = 1 ] && [ "$(wc -l < "$T/err")" = 1 ] &&
      grep -q "group 0: inode table at block 99999999 is outside the filesystem" "$T/err" &&
      cmp "$T/target.img" "$T/target.before" || return 1
  done
}
ok "-I refuses an image whose inode table lies outside the filesystem, -f too" \
  install_tables_outside

done_testing
