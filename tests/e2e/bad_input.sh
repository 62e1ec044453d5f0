#!/bin/bash
# Malformed input: a corpus of damaged filesystems (debugfs -w and dd) and
# hand-made hostile qcow2 images. Every run ends with an image or one error
# line and exit 1; never a crash or a sanitizer report. Outside sanitizer
# builds the runs happen under `ulimit -v`, so an input that made the
# program allocate for tables it has not checked against the file size
# fails here (with sanitizers the same bound is ASan's hard_rss_limit_mb).
. "$TESTLIB"

# Address-space limits in KiB. A conversion needs about 12 MiB, a capture
# a little more (plus 8 MiB per thread); a naive reader of the qcow2 inputs
# below would allocate 32 MiB for an L1 table or 200 MiB for L2 copies. The
# damaged filesystems run under a looser bound that still stops runaway
# allocations from corrupt counts.
QCOW2_LIMIT_KB=32768
FS_LIMIT_KB=262144
LIMIT_KB=$FS_LIMIT_KB
if ldd "$E2IMAGE" | grep -q libasan; then
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}hard_rss_limit_mb=300:quarantine_size_mb=8"
  bounded() { "$@"; }
else
  bounded() { (ulimit -v "$LIMIT_KB" && exec "$@"); }
fi

# survives COMMAND...: exit 0, or exit 1 with exactly one "e2image:" line on
# stderr; no signal, no sanitizer report, no temporary file.
survives() {
  bounded "$@" > /dev/null 2> "$T/err"; rc=$?
  cat "$T/err"
  if grep -Eq 'Sanitizer|runtime error|out of memory' "$T/err"; then return 1; fi
  case $rc in
    0) ;;
    1) [ "$(grep -c . "$T/err")" = 1 ] && grep -q '^e2image: ' "$T/err" || return 1 ;;
    *) echo "exit status $rc"; return 1 ;;
  esac
  ! ls -A "$T" | grep -q 'e2image-'
}

# --- damaged filesystems -------------------------------------------------------
debugfs_w() { debugfs -w -R "$1" "$2" > /dev/null 2>&1; }  # debugfs_w REQUEST IMG
ok "base ext2 filesystem" make_fs "$T/base2.img" 8M -t ext2 -b 1024 -N 1024
ok "base ext4 filesystem" make_fs "$T/base4.img" 8M -t ext4 -b 1024 -N 1024 -O ^has_journal
mkdir -p "$T/bad"
damage() {  # damage NAME BASE COMMAND...: runs COMMAND... IMG on a copy of BASE
  img="$T/bad/$1.img"
  cp "$T/$2.img" "$img"
  echo "$2" > "$T/bad/$1.base"
  shift 2
  "$@" "$img"
}
garbage_at() {  # garbage_at BLOCK COUNT IMG: random bytes over 1 KiB blocks
  head -c $(( $2 * 1024 )) /dev/urandom | dd of="$3" bs=1024 seek="$1" conv=notrunc status=none
}
garbage_itable() {  # garbage_itable COUNT IMG: random bytes over group 0's inode table
  b=$(debugfs -R stats "$2" 2>/dev/null | sed -n 's/.*inode table at \([0-9]*\).*/\1/p' | head -n 1)
  garbage_at "$b" "$1" "$2"
}
garbage_dir() {  # garbage_dir PATH IMG: random bytes over a directory's first block
  garbage_at "$(debugfs -R "bmap $1 0" "$2" 2>/dev/null)" 1 "$2"
}
damage clri-root base4 debugfs_w "clri <2>"
damage clri-dir base2 debugfs_w "clri /sub"
damage itable-garbage base4 garbage_itable 8
damage itable-garbage2 base2 garbage_itable 16
damage dir-garbage base4 garbage_dir /big
damage extent-header base4 debugfs_w "sif /sub/random.bin block[0] 0xdeadbeef"
damage extent-leaf base4 debugfs_w "sif /sub/random.bin block[5] 0xffffffff"
damage ind-past-end base2 debugfs_w "sif /sub/random.bin block[IND] 99999999"
damage dind-past-end base2 debugfs_w "sif /sub/random.bin block[DIND] 4000000000"
damage xattr-past-end base4 debugfs_w "sif /sub file_acl 123456789"
damage itable-past-end base4 debugfs_w "set_bg 0 inode_table 99999999"
damage bitmap-past-end base2 debugfs_w "set_bg 0 block_bitmap 4000000000"
damage blocks-count-huge base2 debugfs_w "ssv blocks_count 1000000000"
damage inodes-count-odd base4 debugfs_w "ssv inodes_count 7"
damage journal-bogus base4 debugfs_w "ssv journal_inum 12"
damage symlink-bogus base2 debugfs_w "sif /slowlink size 4000000000"
damage truncated base4 truncate -s 1M
damage superblock-garbage base2 garbage_at 1 1
damage desc-garbage base2 garbage_at 2 1

for img in "$T"/bad/*.img; do
  name=$(basename "$img" .img)
  ok "damaged fs $name: the damage is there" sh -c '! cmp -s "$1" "$2"' sh "$img" "$T/$(cat "$T/bad/$name.base").img"
  ok "damaged fs $name: -r survives" survives "$E2IMAGE" -r "$img" "$T/out.raw"
  ok "damaged fs $name: -Q survives" survives "$E2IMAGE" -Q "$img" "$T/out.qcow2"
  if [ -f "$T/out.qcow2" ]; then
    ok "damaged fs $name: the qcow2 image is consistent" qcow2_clean "$T/out.qcow2"
  fi
  rm -f "$T/out.raw" "$T/out.qcow2"
done

# A source cut short under several groups' tables (a partial copy of a
# failing disk): said once, up front, with both sizes, not once for each
# read past its end (a compressed capture reads a batch of clusters at a
# time) nor for each pass over the blocks.
ok "wide filesystem cut to 1 MiB" make_fs "$T/cut.img" 64M -t ext4 -b 1024 -O ^has_journal
truncate -s 1M "$T/cut.img"
one_end_warning() {  # one_end_warning ARGS...: e2image ARGS says once the source is short
  "$E2IMAGE" "$@" 2> "$T/err" || return 1
  cat "$T/err"
  [ "$(grep -c 'cut.img: 1048576 bytes, shorter than its filesystem (65536 blocks of 1024 bytes): blocks 1024 and on are missing' "$T/err")" = 1 ] &&
    ! grep -q 'source ends before block' "$T/err"
}
ok "cut source, -Q: said once" one_end_warning -Q "$T/cut.img" "$T/out.qcow2"
rm -f "$T/out.qcow2"
ok "cut source, compressed -Q: said once" \
  one_end_warning -Q --compress=zstd --threads=2 "$T/cut.img" "$T/out.qcow2"
ok "cut source, -r: said once" one_end_warning -r "$T/cut.img" "$T/out.raw"
ok "cut source, e2i image: said once" one_end_warning "$T/cut.img" "$T/out.e2i"
rm -f "$T/out.raw" "$T/out.qcow2" "$T/out.e2i"

# --- hostile qcow2 images ------------------------------------------------------
LIMIT_KB=$QCOW2_LIMIT_KB
put() {  # put FILE OFFSET HEX: writes bytes at offset
  printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
be32() { printf '%08x' "$1"; }
be64() { printf '%016x' "$1"; }
qcow2_v2() {  # qcow2_v2 FILE CLUSTER_BITS SIZE L1_SIZE L1_OFFSET
  rm -f "$1"; : > "$1"
  put "$1" 0 "514649fb$(be32 2)$(be64 0)$(be32 0)$(be32 "$2")$(be64 "$3")$(be32 0)$(be32 "$4")$(be64 "$5")$(be64 0)$(be32 0)$(be32 0)$(be64 0)"
}

# An L1 table claimed at the 32 MiB maximum in a file of a few KiB.
qcow2_v2 "$T/l1-huge.qcow2" 16 $(( 4194304 * 8192 * 65536 )) 4194304 65536
truncate -s 70000 "$T/l1-huge.qcow2"
l1_huge() {
  survives "$E2IMAGE" -r "$T/l1-huge.qcow2" "$T/o.raw" && grep -q 'runs past the end of the file' "$T/err"
}
ok "a 32 MiB L1 table in a tiny file is refused before it is allocated" l1_huge

# 200 L1 entries that all point at one 1 MiB L2 table (and no refcount
# table): refused as it is read, before any table is cached; were it read,
# at most as many tables are cached as the file holds, and the raw image
# (25 TiB, sparse) would meet RLIMIT_FSIZE. One clear error either way.
qcow2_v2 "$T/l2-alias.qcow2" 20 $(( 200 << 37 )) 200 $(( 1 << 20 ))
entries=""
for _ in $(seq 1 200); do entries="$entries$(be64 $(( 2 << 20 )))"; done
put "$T/l2-alias.qcow2" $(( 1 << 20 )) "$entries"
truncate -s $(( 3 << 20 )) "$T/l2-alias.qcow2"
l2_alias() {
  survives bash -c 'ulimit -f 1024; exec "$0" -r "$1" "$2"' "$E2IMAGE" "$T/l2-alias.qcow2" "$T/o.raw" &&
    grep -Eq "l2-alias.qcow2: .*(refcount table|L2 table)|File too large" "$T/err"
}
ok "200 L1 entries aliasing one L2 table: memory bounded by the file size" l2_alias

# Compressed clusters whose data runs past the end of the file, and
# garbage in place of deflate data.
"$E2IMAGE" -Q --qcow2-version=3 --compress "$T/base4.img" "$T/comp.qcow2"
cp "$T/comp.qcow2" "$T/comp-cut.qcow2"
truncate -s $(( $(stat -c %s "$T/comp.qcow2") / 2 )) "$T/comp-cut.qcow2"
ok "a truncated compressed image: one error, no output" survives "$E2IMAGE" -r "$T/comp-cut.qcow2" "$T/o.raw"
cp "$T/comp.qcow2" "$T/comp-garbage.qcow2"
size=$(stat -c %s "$T/comp.qcow2")
head -c $(( size / 2 )) /dev/urandom | dd of="$T/comp-garbage.qcow2" bs=1 seek=$(( size / 2 )) conv=notrunc status=none
ok "garbage compressed data: one error, no output" survives "$E2IMAGE" -r "$T/comp-garbage.qcow2" "$T/o.raw"

# Random bytes after a valid header, every few bytes of the header flipped.
"$E2IMAGE" -Q "$T/base2.img" "$T/good.qcow2"
flips_survive() {
  for off in 4 11 20 27 35 39 47 55 59; do
    cp "$T/good.qcow2" "$T/flip.qcow2"
    printf '\xff' | dd of="$T/flip.qcow2" bs=1 seek=$off conv=notrunc status=none
    survives "$E2IMAGE" -r "$T/flip.qcow2" "$T/o.raw" || { echo "byte $off"; return 1; }
    rm -f "$T/o.raw"
  done
}
ok "0xff in each header field: every run survives" flips_survive

done_testing
