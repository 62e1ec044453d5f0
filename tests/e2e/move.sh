#!/bin/bash
# -ra copies and moves: a filesystem moved within one file, forwards and
# backwards, by overlapping distances, is e2fsck-clean and has the same
# files; -c writes only what differs; -n writes nothing.
. "$TESTLIB"

MiB=1048576

# A tree whose data spans many copy chunks, so that a move in the wrong
# direction would read blocks it already overwrote.
make_tree "$T/tree"
head -c $((10 * MiB)) /dev/urandom > "$T/tree/big.bin"

# files_of IMAGE DIR: the whole tree, through debugfs.
files_of() { mkdir -p "$2" && debugfs -R "rdump / $2" "$1" > /dev/null 2>&1; }

# extract FILE OFFSET SIZE OUT: the filesystem at OFFSET.
extract() { dd if="$1" of="$4" bs=4096 skip=$(($2 / 4096)) count=$(($3 / 4096)) 2>/dev/null; }

# move_test FROM TO SIZE MKE2FS-ARGS...: a filesystem at byte FROM of a
# file is moved to byte TO of the same file.
move_test() {
  from=$1; to=$2; size=$3; shift 3
  make_fs "$T/orig.img" "$size" "$@" || return 1
  bytes=$(stat -c %s "$T/orig.img")
  rm -rf "$T/want" "$T/got"; files_of "$T/orig.img" "$T/want"
  # Fill the file with a pattern so that stale bytes would show.
  yes "OLD-BYTES" | head -c $((bytes + 2 * MiB)) > "$T/disk"
  dd if="$T/orig.img" of="$T/disk" bs=512 seek=$((from / 512)) conv=notrunc 2>/dev/null
  args=(); [ "$from" != 0 ] && args+=(-o "$from"); [ "$to" != 0 ] && args+=(-O "$to")
  "$E2IMAGE" -ra "${args[@]}" "$T/disk" || return 1
  dd if="$T/disk" of="$T/moved.img" bs=512 skip=$((to / 512)) count=$((bytes / 512)) 2>/dev/null
  e2fsck -fn "$T/moved.img" || return 1
  files_of "$T/moved.img" "$T/got"
  diff -r --no-dereference "$T/want" "$T/got" || return 1
  rm -f "$T/disk" "$T/moved.img" "$T/orig.img"
}

ok "move forwards by 1 MiB (ext4 4k)" move_test 0 $MiB 24M -t ext4
ok "move backwards by 1 MiB (ext4 4k)" move_test $MiB 0 24M -t ext4
ok "move forwards by one block, overlapping almost all (ext4 1k)" move_test 0 1024 16M -t ext4 -b 1024
ok "move backwards by one block (ext4 1k)" move_test 1024 0 16M -t ext4 -b 1024
ok "move forwards by half a block (ext2 1k, 512 bytes)" move_test 0 512 16M -t ext2 -b 1024
ok "move backwards by 1.5 blocks of 4k (6144 bytes)" move_test 8192 2048 24M -t ext3

copy_compare() {
  make_fs "$T/src.img" 24M -t ext4 || return 1
  "$E2IMAGE" -ra "$T/src.img" "$T/copy.img" || return 1
  e2fsck -fn "$T/copy.img" || return 1
  rm -rf "$T/a" "$T/b"; files_of "$T/src.img" "$T/a"; files_of "$T/copy.img" "$T/b"
  diff -r --no-dereference "$T/a" "$T/b" || return 1
  # Again with -c: nothing differs, nothing is written.
  cp "$T/copy.img" "$T/copy.before"
  "$E2IMAGE" -rac "$T/src.img" "$T/copy.img" > "$T/out" || return 1
  cat "$T/out"
  grep -Eq "^[0-9]+ blocks already contained the data to be copied$" "$T/out" || return 1
  cmp "$T/copy.img" "$T/copy.before" || return 1
  # Change one file in the source: -c writes a few blocks only.
  echo "changed content" > "$T/new.txt"
  debugfs -w -R "write $T/new.txt /new.txt" "$T/src.img" > /dev/null 2>&1 || return 1
  "$E2IMAGE" -racn "$T/src.img" "$T/copy.img" > "$T/would" 2>/dev/null || return 1
  written=$(grep -c "^Writing block" "$T/would")
  [ "$written" -gt 0 ] && [ "$written" -lt 20 ] || { echo "would write $written blocks"; return 1; }
  cmp "$T/copy.img" "$T/copy.before" || return 1   # -n wrote nothing
  "$E2IMAGE" -rac "$T/src.img" "$T/copy.img" 2>/dev/null || return 1
  e2fsck -fn "$T/copy.img" && debugfs -R "cat /new.txt" "$T/copy.img" 2>/dev/null | grep -q changed
}
ok "-ra copy, then -rac skips every block, -racn lists only the changed ones" copy_compare

nop_capture() {
  make_fs "$T/fs.img" 16M -t ext4 || return 1
  "$E2IMAGE" -rn "$T/fs.img" "$T/never.raw" > "$T/list" || return 1
  [ ! -e "$T/never.raw" ] || return 1
  "$E2IMAGE" -r "$T/fs.img" "$T/real.raw" || return 1
  # The listed blocks are exactly the non-hole blocks of the real image (ext4: 4k blocks).
  n=$(grep -c "^Writing block" "$T/list")
  [ "$n" -gt 10 ] || return 1
  for b in $(awk '{print $3}' "$T/list" | shuf -n 5 --random-source=/dev/zero); do
    cmp -s -n 4096 <(dd if="$T/fs.img" bs=4096 skip=$b count=1 2>/dev/null) \
                   <(dd if="$T/real.raw" bs=4096 skip=$b count=1 2>/dev/null) || return 1
  done
}
ok "-n lists the blocks and writes no file" nop_capture

offsets_vs_oracle() {
  make_fs "$T/o.img" 16M -t ext4 || return 1
  yes "OTHER" | head -c $((20 * MiB)) > "$T/disk"
  dd if="$T/o.img" of="$T/disk" bs=4096 seek=256 conv=notrunc 2>/dev/null
  "$E2IMAGE" -r -o $MiB -O 65536 "$T/disk" "$T/ours.raw" || return 1
  "$ORACLE_E2IMAGE" -r -o $MiB -O 65536 "$T/disk" "$T/oracle.raw" 2>/dev/null || return 1
  same_bytes "$T/ours.raw" "$T/oracle.raw" &&
    e2fsck -fn "$T/ours.raw?offset=65536" > /dev/null 2>&1
}
ok "-r -o SRC_OFFSET -O DEST_OFFSET: the same bytes as Debian e2image's" offsets_vs_oracle

same_offset() {
  make_fs "$T/fs.img" 16M -t ext4 || return 1
  cp "$T/fs.img" "$T/keep"
  ! "$E2IMAGE" -ra "$T/fs.img" "$T/fs.img" 2> "$T/err" && grep -q "source itself" "$T/err" &&
    cmp "$T/fs.img" "$T/keep"
}
ok "-ra onto itself at the same offset is refused" same_offset

done_testing
