#!/bin/bash
# A drop-in for the programs and scripts that run e2image, each checked
# beside /usr/sbin/e2image: GParted's parse of -p, fstests' metadump and
# mdrestore helpers, exit statuses, the option parser, and the behaviours
# that once differed.
. "$TESTLIB"

# Two block groups: a backup superblock for -b.
make_fs "$T/fs.img" 8M -t ext4 -g 4096 || exit 1
BS=$(dumpe2fs -h "$T/fs.img" 2> /dev/null | sed -n 's/^Block size: *//p')
SB=$(dumpe2fs "$T/fs.img" 2> /dev/null | sed -n 's/.*Backup superblock at \([0-9]*\).*/\1/p' | head -n 1)

# ---------------------------------------------------------------------------
# GParted (src/ext2.cc, ext2::copy_progress) reads e2image's stderr through
# its PipeCapture, which applies backspaces and carriage returns as a
# terminal would, takes the text after the last newline and scans it with
# sscanf("Copying %lld / %lld blocks"); it ends the bar when the text holds
# "\nCopied ". gparted_parse replays that on a captured stderr, evaluating
# at each backspace, carriage return and newline (where a redraw starts):
# one "P T" line per new reading, "copied N M" for the final line, "end".
gparted_parse() {
  perl -e '
    local $/; my $in = <STDIN>;
    my ($buf, $back, $len, @seen) = ("", 0, 0);
    my $scan = sub {
      my $line = $buf =~ /\n([^\n]*)\z/ ? $1 : $buf;
      return unless $line =~ /^Copying\s*(\d+)\s*\/\s*(\d+)\s*blocks/;
      push @seen, "$1 $2" unless @seen && $seen[-1] eq "$1 $2";
    };
    for my $c (split //, $in) {
      if ($c eq "\b") { $scan->() unless $back; $back++ }
      elsif ($c eq "\r") { $scan->(); $back = $len }
      elsif ($c eq "\n") { $scan->(); $buf .= "\n"; ($len, $back) = (0, 0) }
      else {
        if ($back) { substr($buf, -$back) = ""; $len -= $back; $back = 0 }
        $buf .= $c; $len++;
      }
    }
    $scan->();
    print "$_\n" for @seen;
    print "copied $1 $2\n" if $buf =~ /\nCopied (\d+) \/ (\d+) blocks/;
    print "end\n" if index($buf, "\nCopied ") >= 0;' < "$1"
}

# parse_agrees OURS-ERR ORACLE-ERR: both parses end, on one "Copied N / N"
# line with the same N, and every reading of ours is out of that total.
parse_agrees() {
  gparted_parse "$1" > "$1.parse"; gparted_parse "$2" > "$2.parse"
  echo "ours:"; cat "$1.parse"; echo "e2fsprogs:"; cat "$2.parse"
  grep -qx end "$1.parse" && grep -qx end "$2.parse" || return 1
  final=$(grep '^copied ' "$2.parse")
  [ -n "$final" ] && [ "$(grep '^copied ' "$1.parse")" = "$final" ] || return 1
  set -- $final
  [ "$2" = "$3" ] || return 1
  total=$3
  grep -E '^[0-9]+ [0-9]+$' "$1.parse" | while read -r p t; do
    [ "$t" = "$total" ] && [ "$p" -le "$t" ] || { echo "reading $p / $t"; exit 1; }
  done
}

# with_loops FILE... -- SCRIPT: runs SCRIPT with $L1, $L2... loop devices over the files.
with_loops() {
  local loops=() f rc
  while [ "$1" != -- ]; do
    f=$(losetup -f --show "$1") || { echo "no loop device"; losetup -d "${loops[@]}"; return 1; }
    loops+=("$f"); shift
  done
  shift
  L1=${loops[0]}; L2=${loops[1]:-}; L3=${loops[2]:-}; L4=${loops[3]:-}
  eval "$1"; rc=$?
  for f in "${loops[@]}"; do losetup -d "$f"; done
  return $rc
}

# -ra copy, device to device, as GParted runs it.
gparted_copy() {
  for p in ours oracle; do truncate -s 8M "$T/dst-$p.img"; done
  with_loops "$T/fs.img" "$T/dst-ours.img" "$T/dst-oracle.img" -- '
    "$E2IMAGE" -ra -p "$L1" "$L2" 2> "$T/copy.ours" &&
      "$ORACLE_E2IMAGE" -ra -p "$L1" "$L3" 2> "$T/copy.oracle"' || return 1
  parse_agrees "$T/copy.ours" "$T/copy.oracle" && e2fsck -fn "$T/dst-ours.img" > /dev/null
}
ok "-ra -p copy between devices: GParted reads the same total and end from both" gparted_copy

# -ra move on one device, 1 MiB to the right, as GParted moves a partition.
gparted_move() {
  for p in ours oracle; do
    truncate -s 9M "$T/mv-$p.img"; dd if="$T/fs.img" of="$T/mv-$p.img" conv=notrunc status=none
  done
  with_loops "$T/mv-ours.img" "$T/mv-oracle.img" -- '
    "$E2IMAGE" -ra -p -O 1048576 "$L1" 2> "$T/move.ours" &&
      "$ORACLE_E2IMAGE" -ra -p -O 1048576 "$L2" 2> "$T/move.oracle"' || return 1
  parse_agrees "$T/move.ours" "$T/move.oracle" &&
    e2fsck -fn "$T/mv-ours.img?offset=1048576" > /dev/null
}
ok "-ra -p move on a device: GParted reads the same total and end from both" gparted_move

# And back to the left with both offsets, as GParted gives them.
gparted_move_left() {
  with_loops "$T/mv-ours.img" "$T/mv-oracle.img" -- '
    "$E2IMAGE" -ra -p -o 1048576 -O 0 "$L1" 2> "$T/left.ours" &&
      "$ORACLE_E2IMAGE" -ra -p -o 1048576 -O 0 "$L2" 2> "$T/left.oracle"' || return 1
  parse_agrees "$T/left.ours" "$T/left.oracle" && e2fsck -fn "$T/mv-ours.img" > /dev/null
}
ok "-ra -p -o -O move to the left on a device: the same total and end from both" gparted_move_left

gparted_raw() {
  "$E2IMAGE" -r -p "$T/fs.img" "$T/p.ours.raw" 2> "$T/raw.ours" &&
    "$ORACLE_E2IMAGE" -r -p "$T/fs.img" "$T/p.oracle.raw" 2> "$T/raw.oracle" &&
    parse_agrees "$T/raw.ours" "$T/raw.oracle"
}
ok "-r -p: GParted reads the same total and end from both" gparted_raw

# e2fsprogs' e2image refuses -p with -Q; ours reports the -Q copy in the
# same words, with e2fsprogs' -r total (one metadata map for both).
gparted_qcow2() {
  ! "$ORACLE_E2IMAGE" -Q -p "$T/fs.img" "$T/p.oracle.qcow2" 2> "$T/q.oracle" &&
    grep -q "The -p option only supported in raw mode" "$T/q.oracle" || return 1
  "$E2IMAGE" -Q -p "$T/fs.img" "$T/p.ours.qcow2" 2> "$T/q.ours" &&
    parse_agrees "$T/q.ours" "$T/raw.oracle"
}
ok "-Q -p: GParted reads e2fsprogs' -r total and an end (e2fsprogs refuses -p here)" gparted_qcow2

# A copy that waits on its reader: the bar moves before it ends, in both.
gparted_moves() {
  { "$E2IMAGE" -r -p "$T/fs.img" - 2> "$T/slow.ours" | (sleep 2; cat > /dev/null); } &&
    { "$ORACLE_E2IMAGE" -r -p "$T/fs.img" - 2> "$T/slow.oracle" | (sleep 2; cat > /dev/null); } &&
    parse_agrees "$T/slow.ours" "$T/slow.oracle" || return 1
  for p in ours oracle; do
    grep -Eq '^[1-9][0-9]* [0-9]+$' "$T/slow.$p.parse" || { echo "$p: no reading between 0 and the end"; return 1; }
  done
}
ok "-r -p to a slow reader: GParted's bar moves before the end, with both" gparted_moves

# The same total with and without --compress and -s, on a sparse 1 GiB
# filesystem whose inode tables are mostly holes (they once said 160 against
# 8351), and e2fsprogs' -r total; no rate after less than a second.
same_totals() {
  # Holes both in the group tables and in what the inode scan finds.
  mkdir -p "$T/sparse-tree" && pseudo_random 3000000 > "$T/sparse-tree/data.bin" || return 1
  for i in $(seq 1 300); do echo "$i" > "$T/sparse-tree/f$i"; done
  mke2fs -q -F -t ext4 -d "$T/sparse-tree" "$T/sparse.img" 1G > /dev/null 2>&1 || return 1
  # e2fsprogs' e2image reads a copy: after its run on a file, fewer of the
  # file's holes show (the late ones this checks).
  cp "$T/sparse.img" "$T/sparse.copy.img" &&
    "$ORACLE_E2IMAGE" -r -p "$T/sparse.copy.img" "$T/s.oracle.raw" 2> "$T/s.oracle" || return 1
  want=$(gparted_parse "$T/s.oracle" | grep '^copied ')
  echo "e2fsprogs: $want"
  for args in "-Q --compress" "-Q --compress=zstd" "-Q -s --compress" "-r" "-Q" "-r -s"; do
    rm -f "$T/s.out"
    "$E2IMAGE" -p $args "$T/sparse.img" "$T/s.out" 2> "$T/s.ours" || return 1
    got=$(gparted_parse "$T/s.ours" | grep '^copied ')
    echo "$args: $got"; [ "$got" = "$want" ] || return 1
    grep -c . "$T/s.ours" | grep -qx 2 || { cat "$T/s.ours"; return 1; }
  done
}
ok "-p: one total with -r, -Q, --compress and -s, e2fsprogs' -r total; nothing else said" same_totals

no_rate_when_fast() {
  "$E2IMAGE" -r -p "$T/fs.img" "$T/fast.raw" 2> "$T/fast.err" || return 1
  cat -A "$T/fast.err"
  tr '\r' '\n' < "$T/fast.err" | tail -n 1 | grep -Eq '^Copied ([0-9]+) / \1 blocks \(100%\) in 00:00:00$'
}
ok "-p: a copy under a second says no rate" no_rate_when_fast

# ---------------------------------------------------------------------------
# fstests' common/ext4 helpers, written out with $E2IMAGE_PROG, $DUMP_COMPRESSOR
# and $SCRATCH_DEV as fstests sets them.
_ext4_metadump() {
  local device="$1" dumpfile="$2" compressopt="$3"
  $E2IMAGE_PROG -Q "$device" "$dumpfile" || return 1
  [ "$compressopt" = "compress" ] && [ -n "$DUMP_COMPRESSOR" ] &&
    $DUMP_COMPRESSOR -f "$dumpfile" >> "$T/seqres.full" 2>&1
}
_ext4_mdrestore() {
  local metadump="$1" device="$2"
  shift; shift
  local options="$@"
  if [ ! -e "$metadump" ] && [ -n "$DUMP_COMPRESSOR" ]; then
    for compr in "$metadump".*; do
      [ -e "$compr" ] && $DUMP_COMPRESSOR -d -f -k "$compr" && break
    done
  fi
  test -r "$metadump" || return 1
  $E2IMAGE_PROG $options -r "${metadump}" "${SCRATCH_DEV}"
}

# metadump_restore COMPRESSOR: captures with each program, restores with
# each onto a loop device and onto a file; e2fsck -fn is clean on every
# restored filesystem and dumpe2fs says what it says of the original.
metadump_restore() {
  comp=$1
  dumpe2fs "$T/fs.img" 2> /dev/null > "$T/fs.dumpe2fs"
  for cap in "$E2IMAGE" "$ORACLE_E2IMAGE"; do
    for res in "$E2IMAGE" "$ORACLE_E2IMAGE"; do
      rm -rf "$T/md"; mkdir "$T/md"
      DUMP_COMPRESSOR=$comp E2IMAGE_PROG=$cap _ext4_metadump "$T/fs.img" "$T/md/dump" compress ||
        { echo "$cap: metadump with $comp failed"; return 1; }
      [ ! -e "$T/md/dump" ] && ls "$T/md"/dump.* > /dev/null || return 1
      truncate -s 8M "$T/md/scratch.img"
      with_loops "$T/md/scratch.img" -- '
        SCRATCH_DEV=$L1 DUMP_COMPRESSOR=$comp E2IMAGE_PROG=$res _ext4_mdrestore "$T/md/dump" "$L1"' ||
        { echo "$res: mdrestore onto a device failed"; return 1; }
      SCRATCH_DEV=$T/md/restored.img DUMP_COMPRESSOR=$comp E2IMAGE_PROG=$res \
        _ext4_mdrestore "$T/md/dump" "$T/md/restored.img" 2> /dev/null ||
        { echo "$res: mdrestore onto a file failed"; return 1; }
      for img in "$T/md/scratch.img" "$T/md/restored.img"; do
        e2fsck -fn "$img" > /dev/null 2>&1 || { echo "$cap | $res: $img not clean"; return 1; }
        dumpe2fs "$img" 2> /dev/null | diff "$T/fs.dumpe2fs" - ||
          { echo "$cap | $res: $img differs"; return 1; }
      done
    done
  done
}
for compressor in xz bzip2 gzip; do
  ok "fstests _ext4_metadump/_ext4_mdrestore with $compressor, either program at each end" \
    metadump_restore $compressor
done

# ---------------------------------------------------------------------------
# Exit statuses: each case run by both programs in a directory of its own.
# In the arguments, @FS is the filesystem, @RAW an existing raw image of it
# (a copy for each run), @E2I an e2i image of it, @Q a qcow2 image of it,
# @ZEROS a MiB of zeros, @BS its block size and @SB its first backup superblock.
"$ORACLE_E2IMAGE" -r "$T/fs.img" "$T/fs.raw" 2> /dev/null
"$ORACLE_E2IMAGE" "$T/fs.img" "$T/fs.e2i" 2> /dev/null
"$ORACLE_E2IMAGE" -Q "$T/fs.img" "$T/fs.qcow2" 2> /dev/null
head -c 1M /dev/zero > "$T/zeros.img"
# exit_status PROGRAM ARGS...: prints the program's exit status in a fresh directory.
exit_status() {
  local prog=$1; shift
  rm -rf "$T/run"; mkdir "$T/run"; cp "$T/fs.raw" "$T/run/existing.raw"
  local args=() a
  for a in "$@"; do
    a=${a//@FS/$T/fs.img}; a=${a//@RAW/$T/run/existing.raw}; a=${a//@E2I/$T/fs.e2i}
    a=${a//@Q/$T/fs.qcow2}; a=${a//@ZEROS/$T/zeros.img}; a=${a//@BS/$BS}; a=${a//@SB/$SB}
    args+=("$a")
  done
  (cd "$T/run" && timeout 60 "$prog" "${args[@]}" > /dev/null 2> "$T/run.err"); echo $?
}
# same_status ARGS...: both programs exit with the same status.
same_status() {
  ours=$(exit_status "$E2IMAGE" "$@"); oracle=$(exit_status "$ORACLE_E2IMAGE" "$@")
  echo "ours $ours, e2fsprogs $oracle"
  [ "$ours" = "$oracle" ]
}
while IFS= read -r line; do
  [ -n "$line" ] || continue
  # shellcheck disable=SC2086
  ok "exit status as e2fsprogs': e2image $line" same_status $line
done << 'EOF'
@FS out.e2i
-r @FS out.raw
-Q @FS out.qcow2
-ra @FS copy.img
-r @Q out.raw
-rc @FS @RAW
-r -B @BS @FS out.raw
-r -b @SB -B @BS @FS out.raw
-I @RAW @E2I

-r -B 3000 @FS out.raw
-B 2048 @FS out.e2i
-r @FS
-r @FS a b
-x @FS out
-r -Q @FS out
-a @FS out.e2i
-b @SB @FS out.e2i
-Q -o 1024 @FS out.qcow2
-Q -O 4096 @FS
-r -O 4096 @FS
-rn -O 4096 @FS
-ra -o 1024 @FS
-Qc @FS out.qcow2
-c @FS out.e2i
-rac @FS -
-r missing.img out.raw
-r @ZEROS out.raw
-Q @ZEROS out.qcow2
-r @FS nodir/out.raw
-I @FS missing.e2i
-I -r @FS out
EOF

# Deliberate differences (the man page's COMPATIBILITY section): e2fsprogs'
# status, then ours.
differs() {
  want_oracle=$1; want_ours=$2; shift 2
  ours=$(exit_status "$E2IMAGE" "$@"); oracle=$(exit_status "$ORACLE_E2IMAGE" "$@")
  echo "ours $ours, e2fsprogs $oracle"
  [ "$ours" = "$want_ours" ] && [ "$oracle" = "$want_oracle" ]
}
ok "on purpose: -p with -Q is accepted (e2fsprogs: 1)" differs 1 0 -Q -p @FS out.qcow2
ok "on purpose: -p with an e2i image is accepted (e2fsprogs: 1)" differs 1 0 -p @FS out.e2i
ok "on purpose: -b without -B finds the block size (e2fsprogs: 1)" differs 1 0 -r -b @SB @FS out.raw
ok "on purpose: a qcow2 image to standard output (e2fsprogs: 1)" differs 1 0 -Q @FS -
ok "on purpose: a number that is not one is refused (e2fsprogs reads 0)" \
  differs 0 1 -r -o abc @FS out.raw
ra_into_fifo() {
  rm -f "$T/ra.fifo" && mkfifo "$T/ra.fifo" || return 1
  # e2fsprogs fails on its first seek, whether a reader is there or not.
  cat "$T/ra.fifo" > /dev/null &
  timeout 20 "$ORACLE_E2IMAGE" -ra "$T/fs.img" "$T/ra.fifo" 2> "$T/ra.err" && return 1
  wait
  grep -q "Illegal seek" "$T/ra.err" || { cat "$T/ra.err"; return 1; }
  cat "$T/ra.fifo" > "$T/ra.got" &
  timeout 20 "$E2IMAGE" -ra "$T/fs.img" "$T/ra.fifo" || return 1
  wait
  rm -f "$T/ra.file" && "$E2IMAGE" -ra "$T/fs.img" "$T/ra.file" || return 1
  same_bytes "$T/ra.file" "$T/ra.got"
}
ok "on purpose: -ra into a FIFO writes the filesystem in order (e2fsprogs: Illegal seek)" \
  ra_into_fifo
ok "on purpose: -h and -V answer (e2fsprogs: 1)" sh -c '
  "$0" -h > /dev/null && "$0" -V > /dev/null && ! "$1" -h 2> /dev/null && ! "$1" -V 2> /dev/null' \
  "$E2IMAGE" "$ORACLE_E2IMAGE"

# ---------------------------------------------------------------------------
# The option parser: clustered flags, attached values, options after the
# operands (getopt permutes), "--"; the same image from both programs.
same_image() {
  rm -f "$T/po.ours" "$T/po.oracle"
  "$E2IMAGE" "${@/@OUT/$T/po.ours}" > /dev/null 2>&1 || { echo "ours failed"; return 1; }
  "$ORACLE_E2IMAGE" "${@/@OUT/$T/po.oracle}" > /dev/null 2>&1 || { echo "e2fsprogs failed"; return 1; }
  same_bytes "$T/po.ours" "$T/po.oracle"
}
ok "-rp clustered" same_image -rp "$T/fs.img" @OUT
ok "-pr with the options after the operands" same_image "$T/fs.img" @OUT -pr
ok "-r after the operands, -p between them" same_image "$T/fs.img" -p @OUT -r
ok "-o and -O with attached values" same_image -r -o0 -O4096 "$T/fs.img" @OUT
ok "-rap clustered copies the filesystem" same_image -rap "$T/fs.img" @OUT
ok "-- ends the options" same_image -r -- "$T/fs.img" @OUT
posixly_correct() {
  # With POSIXLY_CORRECT getopt stops at the first operand: three operands, a usage error.
  for prog in "$E2IMAGE" "$ORACLE_E2IMAGE"; do
    POSIXLY_CORRECT=1 "$prog" "$T/fs.img" "$T/posix.raw" -r 2> "$T/posix.err" && return 1
    grep -q "^Usage:" "$T/posix.err" || { cat "$T/posix.err"; return 1; }
  done
}
ok "POSIXLY_CORRECT: options after the operands are operands in both" posixly_correct

# ---------------------------------------------------------------------------
# Behaviours that differed from e2fsprogs' e2image.
move_needs_all_data() {
  for prog in "$E2IMAGE" "$ORACLE_E2IMAGE"; do
    cp "$T/fs.img" "$T/mv.img"
    "$prog" -r -O 4096 "$T/mv.img" 2> "$T/mv.err" && return 1
    grep -q "Move mode requires all data mode\.$" "$T/mv.err" || { cat "$T/mv.err"; return 1; }
    cmp "$T/fs.img" "$T/mv.img" || return 1
  done
}
ok "-r -O N with one file: 'Move mode requires all data mode.' from both" move_needs_all_data

update_in_place() {
  cp "$T/fs.img" "$T/upd.img"
  "$E2IMAGE" -r "$T/upd.img" "$T/upd.ours" && cp "$T/upd.ours" "$T/upd.oracle" || return 1
  echo "new content" > "$T/new.txt"
  debugfs -w -R "write $T/new.txt new.txt" "$T/upd.img" > /dev/null 2>&1 &&
    debugfs -w -R "mkdir newdir" "$T/upd.img" > /dev/null 2>&1 || return 1
  "$E2IMAGE" -rc "$T/upd.img" "$T/upd.ours" > "$T/upd.out.ours" || return 1
  "$ORACLE_E2IMAGE" -rc "$T/upd.img" "$T/upd.oracle" > "$T/upd.out.oracle" 2> /dev/null || return 1
  cat "$T/upd.out.ours" "$T/upd.out.oracle"
  same_bytes "$T/upd.ours" "$T/upd.oracle" && diff "$T/upd.out.ours" "$T/upd.out.oracle" &&
    "$E2IMAGE" -r "$T/upd.img" "$T/upd.fresh" && same_bytes "$T/upd.ours" "$T/upd.fresh"
}
ok "-rc without -a updates an existing image: e2fsprogs' bytes and count of skipped blocks" \
  update_in_place

# e2fsprogs' e2image loops forever on this one (it reads past the end of
# the new file to compare): not run with it.
compare_onto_new_file() {
  rm -f "$T/new.raw"
  "$E2IMAGE" -rc "$T/fs.img" "$T/new.raw" && "$E2IMAGE" -r "$T/fs.img" "$T/fresh.raw" && same_bytes "$T/new.raw" "$T/fresh.raw"
}
ok "-rc onto an image file that does not exist: written, as -r writes it" compare_onto_new_file

zstd_needs_v3() {
  rm -f "$T/z.qcow2"
  "$E2IMAGE" -Q --qcow2-version=2 --compress=zstd "$T/fs.img" "$T/z.qcow2" 2> "$T/z.err" && return 1
  cat "$T/z.err"
  [ "$(wc -l < "$T/z.err")" = 1 ] && grep -q "qcow2-version=3" "$T/z.err" && [ ! -e "$T/z.qcow2" ] &&
    "$E2IMAGE" -Q --compress=zstd "$T/fs.img" "$T/z.qcow2" &&
    qemu-img info "$T/z.qcow2" | grep -q "compression type: zstd"
}
ok "--qcow2-version=2 --compress=zstd is refused in one line; --compress=zstd alone is v3" \
  zstd_needs_v3

blocksize_alone() {
  for prog in "$E2IMAGE" "$ORACLE_E2IMAGE"; do
    rm -f "$T/b.raw"
    "$prog" -r -B $((BS * 2)) "$T/fs.img" "$T/b.raw" 2> "$T/b.err" && return 1
    "$prog" -r -B "$BS" "$T/fs.img" "$T/b.raw" 2> /dev/null || return 1
  done
  cat "$T/b.err"
}
ok "-B without -b: the filesystem's block size is accepted, another refused, by both" blocksize_alone

quiet_compress() {
  "$E2IMAGE" -Q --compress "$T/fs.img" "$T/quiet.qcow2" 2> "$T/quiet.err" || return 1
  cat "$T/quiet.err"; [ ! -s "$T/quiet.err" ]
}
ok "-Q --compress on a small filesystem says nothing" quiet_compress

inspect_version() {
  "$QCOW2_INSPECT" --version > "$T/iv" && cat "$T/iv" &&
    [ "$(sed 's/^qcow2-inspect //' "$T/iv")" = "$("$E2IMAGE" --version | sed 's/^e2image //')" ] &&
    "$QCOW2_INSPECT" -V | cmp - "$T/iv"
}
ok "qcow2-inspect --version and -V: the package's version" inspect_version

done_testing
