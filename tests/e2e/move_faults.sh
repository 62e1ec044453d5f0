#!/bin/bash
# -ra moves and copies, and -I, interrupted by an injected write error
# (tests/faults/iofault.so): one error line naming the offset, what is done
# and how to finish. The test checks each claim against the bytes (the
# blocks said done are at the destination, the others still intact at the
# source), then finishes as the message says and runs e2fsck -fn.
. "$TESTLIB"
: "${IOFAULT_SO:?IOFAULT_SO must point at the built tests/faults/iofault.so}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

MiB=1048576
make_tree "$T/tree"
head -c 3000000 /dev/urandom > "$T/tree/random.bin"
make_fs "$T/orig.img" 8M -t ext4 -b 1024
BS=1024
SIZE=$(stat -c %s "$T/orig.img")
files_of() { rm -rf "$2" && mkdir -p "$2" && debugfs -R "rdump / $2" "$1" > /dev/null 2>&1; }
files_of "$T/orig.img" "$T/want"

faulty() { env LD_PRELOAD="$IOFAULT_SO" "$@"; }

# one_error_line COMMAND...: exit 1 and exactly one line on stderr ($T/err).
one_error_line() {
  "$@" 2> "$T/err"; rc=$?
  cat "$T/err"
  [ $rc = 1 ] || { echo "exit status $rc, expected 1"; return 1; }
  [ "$(wc -l < "$T/err")" = 1 ] || { echo "expected one error line"; return 1; }
}

# range_bytes TEXT: "blocks A..B", "block A" or "bytes X..Y of the
# filesystem" as "LO HI" (filesystem bytes [LO, HI)); "" gives "0 0".
range_bytes() {
  case $1 in
    "bytes "*) r=${1#bytes }; r=${r%% *}; echo "${r%..*} $((${r#*..} + 1))" ;;
    "blocks "*) r=${1#blocks }; echo "$((${r%..*} * BS)) $(((${r#*..} + 1) * BS))" ;;
    "block "*) r=${1#block }; echo "$((r * BS)) $(((r + 1) * BS))" ;;
    *) echo "0 0" ;;
  esac
}

# check_blocks FILE OFFSET LO HI: every copied block's bytes within
# filesystem bytes [LO, HI) are, at OFFSET of FILE, those of orig.img.
check_blocks() {
  perl -e '
    my ($file, $off, $lo, $hi, $bs, $orig, $list) = @ARGV;
    sub slurp { local $/; open(my $f, "<", $_[0]) or die "$_[0]: $!"; binmode $f; <$f> }
    my ($d, $o) = (slurp($file), slurp($orig));
    my ($bad, $n) = (0, 0);
    for my $b (split /\s+/, slurp($list)) {
      my ($s, $e) = ($b * $bs, ($b + 1) * $bs);
      $s = $lo if $s < $lo; $e = $hi if $e > $hi;
      next if $s >= $e;
      $n++;
      if (substr($d, $off + $s, $e - $s) ne substr($o, $s, $e - $s)) {
        print "block $b differs (bytes $s..$e at offset $off)\n" if $bad++ < 5;
      }
    }
    print "$n blocks checked, $bad differ\n";
    exit($bad ? 1 : 0);' "$1" "$2" "$3" "$4" "$BS" "$T/orig.img" "$T/copied"
}

# The blocks a -ra copy writes (the move with -n lists them).
yes OLD | head -c $((SIZE + 2 * MiB)) > "$T/disk"
dd if="$T/orig.img" of="$T/disk" conv=notrunc 2> /dev/null
"$E2IMAGE" -ran -O $MiB "$T/disk" | awk '/^Writing block/ {print $3}' > "$T/copied"

# moved_fs_ok OFFSET: the filesystem at OFFSET of disk is clean and whole.
moved_fs_ok() {
  dd if="$T/disk" of="$T/moved.img" bs=512 skip=$(($1 / 512)) count=$((SIZE / 512)) 2> /dev/null
  e2fsck -fn "$T/moved.img" || return 1
  files_of "$T/moved.img" "$T/got" && diff -r --no-dereference "$T/want" "$T/got"
}

# interrupted_move FROM TO NTH: the move of orig.img from byte FROM to byte
# TO of disk fails on its NTH write; checks the message's claims, then
# finishes as it says.
interrupted_move() {
  from=$1 to=$2 nth=$3
  yes OLD | head -c $((SIZE + 2 * MiB)) > "$T/disk"
  dd if="$T/orig.img" of="$T/disk" bs=512 seek=$((from / 512)) conv=notrunc 2> /dev/null
  one_error_line faulty IOFAULT_PATH=disk IOFAULT_NTH="$nth" IOFAULT_ERRNO=EIO \
    "$E2IMAGE" -ra -o "$from" -O "$to" "$T/disk" || return 1
  if [ "$to" -gt "$from" ]; then order="backwards: highest"; else order="forwards: lowest"; fi
  grep -Eq "^e2image: .*/disk: write error: Input/output error at offset [0-9]+; moving the filesystem in .*/disk from offset $from to offset $to stopped part way \($order blocks first, blocks [0-9]+\.\.[0-9]+\): " "$T/err" ||
    { echo "unexpected message"; return 1; }
  done_text=$(sed -nE 's/.*\): (.*) are done at offset .*/\1/p' "$T/err")
  rest_text=$(sed -nE 's/.*are done at offset [0-9]+, (.*) are not.*/\1/p' "$T/err")
  [ -n "$done_text" ] && [ -n "$rest_text" ] || { echo "no ranges in the message"; return 1; }
  read -r dlo dhi <<< "$(range_bytes "$done_text")"
  read -r rlo rhi <<< "$(range_bytes "$rest_text")"
  echo "done [$dlo, $dhi) at $to, not done [$rlo, $rhi) at $from"
  [ "$dhi" -gt "$dlo" ] && [ "$rhi" -gt "$rlo" ] || { echo "expected a partial move"; return 1; }
  # The ranges meet and together cover the copy.
  if [ "$to" -gt "$from" ]; then [ "$rhi" = "$dlo" ]; else [ "$dhi" = "$rlo" ]; fi ||
    { echo "the ranges do not meet"; return 1; }
  check_blocks "$T/disk" "$to" "$dlo" "$dhi" || { echo "a block said done is not"; return 1; }
  check_blocks "$T/disk" "$from" "$rlo" "$rhi" || { echo "a block not done is not intact"; return 1; }
  # This move overwrote part of its source: the message must say so.
  grep -q "so do NOT rerun this command; finish with: dd " "$T/err" || return 1
  finish=$(sed -E 's/.*finish with: //; s/ \([0-9]+ bytes of temporary space\)$//; s|/var/tmp/e2image-rest|$T/rest|g' "$T/err")
  echo "finishing: $finish"
  eval "$finish" 2> /dev/null || { echo "the finishing command failed"; return 1; }
  [ ! -e "$T/rest" ] || return 1
  moved_fs_ok "$to"
}
ok "move to a higher offset (backwards, highest blocks first) by 1 MiB, EIO on the 3rd write: claims hold, the dd commands finish it" \
  interrupted_move 0 $MiB 3
ok "move to a lower offset (forwards, lowest blocks first) by 1 MiB, EIO on the 4th write: claims hold, dd finishes it" \
  interrupted_move $MiB 0 4
ok "move by half a block towards higher offsets, EIO on the 3000th write (a cut block)" \
  interrupted_move 0 512 3000
ok "move by 1.5 blocks towards lower offsets, EIO on the 3000th write" \
  interrupted_move 1536 0 3000

# A move whose first write fails touched nothing: a rerun finishes it.
first_write_fails() {
  yes OLD | head -c $((SIZE + 2 * MiB)) > "$T/disk"
  dd if="$T/orig.img" of="$T/disk" conv=notrunc 2> /dev/null
  cp "$T/disk" "$T/disk.before"
  one_error_line faulty IOFAULT_PATH=disk IOFAULT_NTH=1 "$E2IMAGE" -ra -O $MiB "$T/disk" || return 1
  grep -Eq "nothing is done at offset $MiB, blocks [0-9]+\.\.[0-9]+ are not; the source is untouched: rerun the same command to finish$" "$T/err" ||
    return 1
  cmp "$T/disk" "$T/disk.before" || return 1
  "$E2IMAGE" -ra -O $MiB "$T/disk" && moved_fs_ok $MiB
}
ok "move failing on its first write: says the source is untouched; the rerun completes, e2fsck-clean" \
  first_write_fails

# The final fsync of a finished overlapping move fails: every block was
# written, but a rerun would read the overwritten source.
final_sync_fails() {
  yes OLD | head -c $((SIZE + 2 * MiB)) > "$T/disk"
  dd if="$T/orig.img" of="$T/disk" conv=notrunc 2> /dev/null
  one_error_line faulty IOFAULT_OP=fsync IOFAULT_PATH=disk IOFAULT_NTH=1 \
    "$E2IMAGE" -ra -O $MiB "$T/disk" || return 1
  grep -Eq "/disk: fsync failed: Input/output error; every block was written at offset $MiB but may not all be on the disk; the source is partly overwritten, so do NOT rerun this command; check the filesystem at offset $MiB with e2fsck -fn$" "$T/err" &&
    moved_fs_ok $MiB
}
ok "move whose final fsync fails: says every block is written, not to rerun; e2fsck-clean" \
  final_sync_fails

# -rac onto an existing file writes in place: the blocks said copied are
# there, and the rerun the message asks for completes the copy.
interrupted_copy() {
  yes OLD | head -c "$SIZE" > "$T/copy.img"
  cp "$T/copy.img" "$T/copy.before"
  faulty IOFAULT_PATH=copy.before IOFAULT_COUNT="$T/writes" "$E2IMAGE" -rac "$T/orig.img" "$T/copy.before" 2> /dev/null
  [ "$(cat "$T/writes")" -ge 2 ] || { echo "expected 2 writes or more"; return 1; }
  one_error_line faulty IOFAULT_PATH=copy.img IOFAULT_NTH="$(cat "$T/writes")" IOFAULT_ERRNO=ENOSPC \
    "$E2IMAGE" -rac "$T/orig.img" "$T/copy.img" || return 1
  grep -Eq "^e2image: .*/copy\.img: write error: No space left on device at offset [0-9]+; copying the filesystem in .*/orig\.img to .*/copy\.img stopped part way \(forwards: lowest blocks first, blocks [0-9]+\.\.[0-9]+\): .* are done in .*/copy\.img, .* are not; the source is untouched: rerun the same command to finish$" "$T/err" ||
    return 1
  read -r dlo dhi <<< "$(range_bytes "$(sed -nE 's/.*\): (.*) are done in .*/\1/p' "$T/err")")"
  [ "$dhi" -gt "$dlo" ] || { echo "expected blocks done"; return 1; }
  check_blocks "$T/copy.img" 0 "$dlo" "$dhi" || return 1
  # The first block not done is not there yet (the message is not too modest).
  ! check_blocks "$T/copy.img" 0 "$dhi" "$((dhi + BS))" || return 1
  "$E2IMAGE" -rac "$T/orig.img" "$T/copy.img" 2> /dev/null || return 1
  e2fsck -fn "$T/copy.img" && files_of "$T/copy.img" "$T/got" && diff -r --no-dereference "$T/want" "$T/got"
}
ok "-rac copy, ENOSPC on the last write: the copied blocks are there, the rerun completes" interrupted_copy

# -ra SRC DST goes through a temporary file: DST is left as it was.
interrupted_new_copy() {
  echo precious > "$T/new.img"
  one_error_line faulty IOFAULT_PATH=new.img IOFAULT_NTH=3 "$E2IMAGE" -ra "$T/orig.img" "$T/new.img" ||
    return 1
  grep -Eq "new\.img: write error: Input/output error at offset [0-9]+" "$T/err" &&
    [ "$(cat "$T/new.img")" = precious ] && "$E2IMAGE" -ra "$T/orig.img" "$T/new.img" &&
    e2fsck -fn "$T/new.img"
}
ok "-ra SRC DST, EIO on the 3rd write: DST untouched, the rerun completes" interrupted_new_copy

# -I onto a device whose superblock and first inode table block were
# wiped: interrupted, it says what is written; the rerun repairs it.
"$E2IMAGE" "$T/orig.img" "$T/orig.e2i"
itable=$(dumpe2fs "$T/orig.img" 2> /dev/null | sed -nE 's/^ *Inode table at ([0-9]+)-.*/\1/p' | head -1)
interrupted_install() {
  nth=$1 part=$2
  cp "$T/orig.img" "$T/dev.img"
  dd if=/dev/zero of="$T/dev.img" bs=$BS seek=1 count=1 conv=notrunc 2> /dev/null
  dd if=/dev/zero of="$T/dev.img" bs=$BS seek="$itable" count=1 conv=notrunc 2> /dev/null
  one_error_line faulty IOFAULT_PATH=dev.img IOFAULT_NTH="$nth" "$E2IMAGE" -I "$T/dev.img" "$T/orig.e2i" ||
    return 1
  grep -Eq "dev\.img: cannot write $part: Input/output error at offset [0-9]+; -I stopped part way: .* written to .*dev\.img, .*; the image is untouched: rerun the same command to finish$" "$T/err" ||
    return 1
  ! e2fsck -fn "$T/dev.img" > /dev/null 2>&1 || { echo "e2fsck clean before the rerun"; return 1; }
  "$E2IMAGE" -I "$T/dev.img" "$T/orig.e2i" && e2fsck -fn "$T/dev.img" &&
    files_of "$T/dev.img" "$T/got" && diff -r --no-dereference "$T/want" "$T/got"
}
ok "-I, EIO on the 1st write (inode tables): says so; the rerun completes, e2fsck-clean" \
  interrupted_install 1 "the inode tables"
faulty IOFAULT_PATH=dev.img IOFAULT_COUNT="$T/writes" "$E2IMAGE" -I "$T/dev.img" "$T/orig.e2i"
ok "-I, EIO on the last write (superblock and bitmaps): says so; the rerun completes" \
  interrupted_install "$(cat "$T/writes")" "the superblock and bitmaps"

done_testing
