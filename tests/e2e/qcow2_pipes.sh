#!/bin/bash
# qcow2 images through pipes: `e2image -Q ... -` writes the image to
# standard output front to back (a pipe cannot seek), and it must be the
# same image as one written to a file: qemu-img finds it clean and equal,
# and it converts back to the same raw bytes.
. "$TESTLIB"
: "${IOFAULT_SO:?IOFAULT_SO must point at the built tests/faults/iofault.so}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

make_fs "$T/fs.img" 32M -t ext4 -b 1024 || exit 1
"$E2IMAGE" -r "$T/fs.img" "$T/fs.raw" || exit 1
"$E2IMAGE" -ra "$T/fs.img" "$T/fs.all.raw" || exit 1

# streamed NAME OPTIONS...: -Q OPTIONS into a pipe and into a file.
streamed() {
  name=$1; shift
  "$E2IMAGE" -Q "$@" "$T/fs.img" - 2> "$T/$name.err" | cat > "$T/$name.pipe.qcow2" || return 1
  [ "${PIPESTATUS[0]}" = 0 ] || { cat "$T/$name.err"; return 1; }
  "$E2IMAGE" -Q "$@" "$T/fs.img" "$T/$name.file.qcow2" 2> /dev/null || return 1
  qcow2_clean "$T/$name.pipe.qcow2" || return 1
  qemu-img compare "$T/$name.pipe.qcow2" "$T/$name.file.qcow2" || return 1
  raw=$T/fs.raw; case " $* " in *" -a "*) raw=$T/fs.all.raw ;; esac
  case " $* " in *" -s "*) raw=$T/$name.file.raw; "$E2IMAGE" -r "$T/$name.file.qcow2" "$raw" ;; esac
  "$E2IMAGE" -r "$T/$name.pipe.qcow2" "$T/$name.back.raw" || return 1
  same_bytes "$raw" "$T/$name.back.raw" || return 1
  qemu-img convert -O raw "$T/$name.pipe.qcow2" "$T/$name.qemu.raw" || return 1
  same_bytes "$raw" "$T/$name.qemu.raw" || return 1
  # Every table before the data it maps: the layout a pipe's reader needs.
  tables_first "$T/$name.pipe.qcow2"
}

# Every L2 table comes before the first data cluster, the L1 table before
# the L2 tables: the layout a reader of a pipe needs.
tables_first() {
  perl -e '
    open(my $f, "<", $ARGV[0]) or die; binmode $f; local $/; my $d = <$f>;
    my $be = sub { unpack("Q>", substr($d, $_[0], 8)) };
    my $cb = unpack("N", substr($d, 20, 4)); my $l1n = unpack("N", substr($d, 36, 4));
    my $l1 = $be->(40); my ($last_table, $first_data) = ($l1, ~0);
    for my $i (0 .. $l1n - 1) {
      my $l2 = $be->($l1 + 8 * $i) & 0x00fffffffffffe00 or next;
      $last_table = $l2 if $l2 > $last_table;
      for my $j (0 .. (1 << ($cb - 3)) - 1) {
        my $e = $be->($l2 + 8 * $j);
        my $host = ($e >> 62) & 1 ? $e & ((1 << (70 - $cb)) - 1) : $e & 0x00fffffffffffe00;
        $first_data = $host if $host && $host < $first_data;
      }
    }
    print "last table at $last_table, first data at $first_data\n";
    exit !($last_table < $first_data && $first_data != ~0)' "$1"
}

ok "-Q - into a pipe: clean, equal to the file image, converts back" streamed plain
ok "-Q --qcow2-version=3 --cluster-size=65536 -" streamed v3 --qcow2-version=3 --cluster-size=65536
ok "-Q --compress -: zlib, packed" streamed zlib --compress
ok "-Q --compress=zstd --threads=2 -" streamed zstd --compress=zstd --qcow2-version=3 --threads=2
ok "-Q -s - (scrambled, two passes)" streamed scrambled -s --scramble-seed=7
ok "-Q -a --compress -" streamed alldata -a --compress

fifo() {
  mkfifo "$T/fifo" || return 1
  "$E2IMAGE" -Q --compress "$T/fs.img" "$T/fifo" & writer=$!
  cat "$T/fifo" > "$T/fifo.qcow2"
  wait $writer || return 1
  qcow2_clean "$T/fifo.qcow2" && qemu-img compare "$T/fifo.qcow2" "$T/zlib.file.qcow2"
}
ok "-Q --compress into a FIFO" fifo

spool_left_nothing() {
  mkdir -p "$T/tmpdir"
  TMPDIR=$T/tmpdir "$E2IMAGE" -Q "$T/fs.img" - > "$T/spooled.qcow2" || return 1
  qcow2_clean "$T/spooled.qcow2" && [ -z "$(ls -A "$T/tmpdir")" ]
}
ok "the spool in \$TMPDIR leaves nothing behind" spool_left_nothing

spool_refused() {
  TMPDIR=$T/missing "$E2IMAGE" -Q "$T/fs.img" - > "$T/none.qcow2" 2> "$T/err" && return 1
  cat "$T/err"
  [ "$(wc -l < "$T/err")" = 1 ] && grep -q "missing: cannot create a temporary file" "$T/err" &&
    [ ! -s "$T/none.qcow2" ]
}
ok "no spool directory: one line saying so, nothing written" spool_refused

# The clusters of a healthy source go out as it holds them: read again
# after the scan, not spooled. So do those the copy fills in part (clusters
# larger than a block), read again with the rest zeroed. Only those the
# copy changed (stale tails zeroed) are spooled: under a tenth of the image
# here, whatever the cluster size, where a scrambled capture spools most of it.
# spooled_bytes OPTIONS...: the bytes -Q OPTIONS - writes to its spool.
spooled_bytes() {
  mkdir -p "$T/spooldir"
  TMPDIR=$T/spooldir LD_PRELOAD="$IOFAULT_SO" IOFAULT_OP=write IOFAULT_PATH="$T/spooldir" \
    IOFAULT_NTH=0 IOFAULT_BYTES="$T/spooled" "$E2IMAGE" -Q "$@" "$T/fs.img" - |
    cat > "$T/counted-spool.qcow2" || return 1
  cat "$T/spooled"
}
not_spooled() {
  size=$(stat -c %s "$T/plain.file.qcow2")
  referred=$(spooled_bytes) && larger=$(spooled_bytes --cluster-size=4096) &&
    larger_size=$(stat -c %s "$T/counted-spool.qcow2") &&
    largest=$(spooled_bytes --cluster-size=65536) &&
    largest_size=$(stat -c %s "$T/counted-spool.qcow2") &&
    scrambled=$(spooled_bytes -s --scramble-seed=7) || return 1
  echo "spooled: $referred bytes of $size (1 KiB clusters), $larger of $larger_size (4 KiB)," \
    "$largest of $largest_size (64 KiB), $scrambled (-s)"
  [ "$((referred * 10))" -lt "$size" ] && [ "$((larger * 10))" -lt "$larger_size" ] &&
    [ "$((largest * 10))" -lt "$largest_size" ] && [ "$((scrambled * 2))" -gt "$size" ]
}
ok "a healthy source's clusters are read again, not spooled" not_spooled

# Where the kernel will not splice from the source, its clusters are read
# and written instead: the same image.
splice_refused() {
  LD_PRELOAD="$IOFAULT_SO" IOFAULT_OP=splice IOFAULT_PATH=fs.img IOFAULT_NTH=1 \
    IOFAULT_LOG="$T/splice.log" "$E2IMAGE" -Q "$T/fs.img" - | cat > "$T/unspliced.qcow2" || return 1
  [ -s "$T/splice.log" ] || { echo "no splice from the source was refused"; return 1; }
  qcow2_clean "$T/unspliced.qcow2" && qemu-img compare "$T/unspliced.qcow2" "$T/plain.file.qcow2"
}
ok "-Q - when splice from the source fails: read and written instead" splice_refused

# A source that fails when read again after the scan (standard output a
# file: no splice, every read a pread): one line naming the source and the
# offset, exit 1, and the image cut short, which no reader takes.
read_again_fails() {
  LD_PRELOAD="$IOFAULT_SO" IOFAULT_OP=read IOFAULT_PATH=fs.img IOFAULT_NTH=0 \
    IOFAULT_COUNT="$T/reads" "$E2IMAGE" -Q "$T/fs.img" - > "$T/counted.qcow2" || return 1
  last=$(cat "$T/reads")
  LD_PRELOAD="$IOFAULT_SO" IOFAULT_OP=read IOFAULT_PATH=fs.img IOFAULT_NTH="$last" \
    "$E2IMAGE" -Q "$T/fs.img" - > "$T/cut.qcow2" 2> "$T/cut.err"
  status=$?
  cat "$T/cut.err"
  [ "$status" = 1 ] && [ "$(wc -l < "$T/cut.err")" = 1 ] &&
    grep -q "fs\.img: read error: Input/output error at offset [0-9]* (reading the source again for the streamed image, which is cut short)$" "$T/cut.err" || return 1
  [ "$(stat -c %s "$T/cut.qcow2")" -lt "$(stat -c %s "$T/counted.qcow2")" ] || return 1
  ! "$E2IMAGE" -r "$T/cut.qcow2" "$T/cut.raw" 2> /dev/null
}
ok "-Q - when the source fails a second read: one line, exit 1, cut short" read_again_fails

# ---- reading a qcow2 image from a pipe: e2image -r - OUT ----

# piped_restore IMAGE RAW [file-only]: `cat IMAGE | e2image -r - out` and
# `-r - -` give RAW's bytes; prints what e2image said.
piped_restore() {
  rm -f "$T/restored.raw"
  cat "$1" | "$E2IMAGE" -r - "$T/restored.raw" 2> "$T/restore.err" || { cat "$T/restore.err"; return 1; }
  cat "$T/restore.err"
  same_bytes "$2" "$T/restored.raw" || return 1
  [ "${3:-}" = file-only ] && return 0
  cat "$1" | "$E2IMAGE" -r - - 2> /dev/null > "$T/restored-stdout.raw" || return 1
  same_bytes "$2" "$T/restored-stdout.raw"
}
one_pass_restore() { piped_restore "$@" && [ ! -s "$T/restore.err" ]; }

ok "cat streamed image | -r - out, in one pass" one_pass_restore "$T/plain.pipe.qcow2" "$T/fs.raw"
ok "cat streamed zlib image | -r - out" one_pass_restore "$T/zlib.pipe.qcow2" "$T/fs.raw"
ok "cat streamed zstd image | -r - out" one_pass_restore "$T/zstd.pipe.qcow2" "$T/fs.raw"

# to_pipes IMAGE [one-pass|spooled]: `cat IMAGE | e2image -r - -` and `-r -
# FIFO` (outputs written in guest order only) give the bytes qemu-img
# converts IMAGE to; one-pass: nothing said; spooled: one line saying it
# reads through the spool; neither: nothing or that line.
to_pipes() {
  qemu-img convert -O raw "$1" "$T/qemu-ref.raw" || return 1
  cat "$1" | "$E2IMAGE" -r - - 2> "$T/pipe.err" | cmp - "$T/qemu-ref.raw" || return 1
  [ "${PIPESTATUS[1]}" = 0 ] || { cat "$T/pipe.err"; return 1; }
  cat "$T/pipe.err"
  case ${2:-} in
    one-pass) [ ! -s "$T/pipe.err" ] || return 1 ;;
    spooled) [ -s "$T/pipe.err" ] || return 1 ;;
  esac
  [ ! -s "$T/pipe.err" ] ||
    { [ "$(wc -l < "$T/pipe.err")" = 1 ] && grep -q "temporary spool file" "$T/pipe.err"; } ||
    return 1
  rm -f "$T/out.fifo"; mkfifo "$T/out.fifo" || return 1
  cmp "$T/out.fifo" "$T/qemu-ref.raw" & reader=$!
  cat "$1" | "$E2IMAGE" -r - "$T/out.fifo" 2> /dev/null || { kill $reader; return 1; }
  wait $reader
}

# qemu_made OPTIONS...: qemu-img convert's image of the -a raw image, from a
# pipe, to a file and to standard output. qemu_compressed: qemu-img convert
# -c stores the clusters that do not shrink uncompressed, ahead of the
# packed frames of earlier guest clusters: to a file the output rewinds; a
# pipe takes them in guest order, through the spool.
qemu_made() {
  rm -f "$T/qemu.qcow2"
  qemu-img convert -O qcow2 "$@" "$T/fs.all.raw" "$T/qemu.qcow2" || return 1
  piped_restore "$T/qemu.qcow2" "$T/fs.all.raw"
}
qemu_compressed() {
  mode=$1; shift
  rm -f "$T/qemu.qcow2"
  qemu-img convert -O qcow2 -c "$@" "$T/fs.all.raw" "$T/qemu.qcow2" || return 1
  piped_restore "$T/qemu.qcow2" "$T/fs.all.raw" && to_pipes "$T/qemu.qcow2" "$mode"
}
qemu_one_pass() { qemu_made && [ ! -s "$T/restore.err" ]; }
ok "qemu-img convert's image, from a pipe in one pass" qemu_one_pass
# Whether qemu-img's parallel writes leave the data in guest order depends
# on timing: only the layouts that always need the spool ask for it.
ok "qemu-img convert -c (zlib), from a pipe" qemu_compressed any
ok "qemu-img convert -c zstd, from a pipe" qemu_compressed any -o compression_type=zstd
ok "qemu-img convert -c with 2 MiB clusters, from a pipe" qemu_compressed any -o cluster_size=2M
ok "qemu-img convert -c with 4 KiB clusters, from a pipe" qemu_compressed any -o cluster_size=4096
ok "streamed -Q image into -r - - and a FIFO: one pass" to_pipes "$T/plain.pipe.qcow2" one-pass
ok "streamed -Q --compress image into -r - -: one pass" to_pipes "$T/zlib.pipe.qcow2" one-pass
# Its last frames moved into reserved L2 tables given up: tables after data.
ok "our compressed file image into -r - -" to_pipes "$T/zlib.file.qcow2" spooled
ok "our plain file image into -r - -" to_pipes "$T/plain.file.qcow2"
# qemu-io allocates clusters in the order it writes them.
out_of_order() {
  qemu-img create -q -f qcow2 "$T/ooo.qcow2" 4M || return 1
  qemu-io -f qcow2 -c 'write -q -P 0x11 1M 64k' -c 'write -q -P 0x22 0 64k' \
    -c 'write -q -P 0x33 3M 4k' -c 'write -q -P 0x44 192k 64k' "$T/ooo.qcow2" > /dev/null || return 1
  to_pipes "$T/ooo.qcow2" spooled
}
ok "qemu-io writes out of guest order: -r - - exact, through the spool" out_of_order
qemu_extended_l2() {
  qemu_made -o extended_l2=on && [ "$(grep -c "spool file" "$T/restore.err")" = 1 ]
}
ok "qemu-img extended L2 entries: spooled, said in one line" qemu_extended_l2
# Its last frames moved into reserved L2 tables given up: data before its table.
ok "our compressed file image, from a pipe to a file" \
  piped_restore "$T/zlib.file.qcow2" "$T/fs.raw" file-only

# An image grown by qemu-img resize: its L1 table moves after the data.
resized() {
  qemu-img create -q -f qcow2 -o cluster_size=512 "$T/grown.qcow2" 1M || return 1
  qemu-io -c "write -q -P 0x55 0 64k" "$T/grown.qcow2" > /dev/null || return 1
  qemu-img resize -q "$T/grown.qcow2" 64M || return 1
  qemu-io -c "write -q -P 0x66 48M 4k" "$T/grown.qcow2" > /dev/null || return 1
  qemu-img convert -O raw "$T/grown.qcow2" "$T/grown.raw" || return 1
  rm -f "$T/restored.raw"
  cat "$T/grown.qcow2" | "$E2IMAGE" -r - "$T/restored.raw" 2> "$T/restore.err" || return 1
  cat "$T/restore.err"
  [ "$(wc -l < "$T/restore.err")" = 1 ] && grep -q "spool file" "$T/restore.err" &&
    cmp "$T/grown.raw" "$T/restored.raw"
}
ok "L1 table after the data (qemu-img resize): through the spool, exact" resized
ok "the resized image into -r - - and a FIFO" to_pipes "$T/grown.qcow2" spooled

# fails_cleanly PATTERN CMD...: one line on stderr matching PATTERN, a non-zero
# exit, and no output file left.
fails_cleanly() {
  pattern=$1; shift
  rm -f "$T/out.raw"
  "$@" 2> "$T/err" && return 1
  cat "$T/err"
  [ "$(wc -l < "$T/err")" = 1 ] && grep -q "$pattern" "$T/err" && [ ! -e "$T/out.raw" ] &&
    [ -z "$(ls "$T" | grep '^out\.raw')" ]
}
restore_head() { head -c "$1" "$2" | "$E2IMAGE" -r - "$T/out.raw"; }
ok "a truncated stream: one line, nothing left" fails_cleanly "stream ends inside.*truncated" \
  restore_head 20000 "$T/plain.pipe.qcow2"
ok "a stream cut in its header: one line" fails_cleanly "header cluster: truncated" \
  restore_head 300 "$T/plain.pipe.qcow2"
# truncated_to_pipe BYTES IMAGE: the first BYTES of IMAGE into -r - -: a
# non-zero exit and one error line (after the note of the spool, if any).
truncated_to_pipe() {
  head -c "$1" "$2" | "$E2IMAGE" -r - - 2> "$T/err" > /dev/null
  status=${PIPESTATUS[1]}
  cat "$T/err"
  grep -v "reading it through a temporary spool file" "$T/err" > "$T/errors"
  [ "$status" != 0 ] && [ "$(wc -l < "$T/errors")" = 1 ] &&
    grep -q "stream ends inside.*truncated" "$T/errors"
}
ok "a truncated stream into -r - -: one line, non-zero exit" truncated_to_pipe 20000 \
  "$T/plain.pipe.qcow2"
ok "a truncated stream into -r - - while data is held" truncated_to_pipe \
  "$(($(stat -c %s "$T/ooo.qcow2") - 1000))" "$T/ooo.qcow2"
no_guest_order_spool() { cat "$T/ooo.qcow2" | TMPDIR="$T/missing" "$E2IMAGE" -r - - > /dev/null; }
ok "data out of guest order into -r - - without a spool: one line" fails_cleanly \
  "not in guest order.*no spool file" no_guest_order_spool
no_spool() { cat "$T/grown.qcow2" | TMPDIR="$T/missing" "$E2IMAGE" -r - "$T/out.raw"; }
ok "a table after its data without a spool: one line" fails_cleanly "passed.*no spool file" no_spool
ok "not a qcow2 image on stdin: one line" fails_cleanly "not a qcow2 image" \
  restore_head 1000000 "$T/fs.img"
with_backing() {
  qemu-img create -q -f qcow2 -b "$T/plain.file.qcow2" -F qcow2 "$T/over.qcow2" &&
    cat "$T/over.qcow2" | "$E2IMAGE" -r - "$T/out.raw"
}
ok "a backing file cannot be reached from a pipe: one line" fails_cleanly "backing file" with_backing
# The name comes from the image: a newline in it is escaped, not a second line.
with_odd_backing() {
  qemu-img create -q -f qcow2 -u -b "$T/back
ing.qcow2" -F qcow2 "$T/odd.qcow2" 1M && cat "$T/odd.qcow2" | "$E2IMAGE" -r - "$T/out.raw"
}
ok "a backing file name with a newline, from a pipe: one line, the name escaped" fails_cleanly \
  'back\\x0aing\.qcow2' with_odd_backing
# Two L1 entries pointing at one L2 table (which qemu never writes).
shared_table() {
  perl -e '
    open(my $f, "<", $ARGV[0]) or die; binmode $f; local $/; my $d = <$f>;
    my $l1 = unpack("Q>", substr($d, 40, 8));
    substr($d, $l1 + 40, 8) = substr($d, $l1, 8);
    print $d' "$T/plain.pipe.qcow2" | "$E2IMAGE" -r - "$T/out.raw"
}
ok "two L1 entries sharing an L2 table: one line" fails_cleanly "share the L2 table" shared_table

# An image read whole into the spool (its L2 entries are extended) and
# found bad there: the error names standard input, at the image's offsets,
# never the spool's descriptor (/proc/self/fd/N).
qemu-img create -q -f qcow2 -o extended_l2=on "$T/xl2.qcow2" 4M &&
  qemu-io -f qcow2 -c 'write -q -P 0x11 0 64k' -c 'write -q -P 0x22 1M 64k' "$T/xl2.qcow2" \
    > /dev/null || exit 1
xl2_l1=$(od -An -tu8 --endian=big -j 40 -N 8 "$T/xl2.qcow2" | tr -d ' ')
xl2_l2=$(od -An -tu8 --endian=big -j "$xl2_l1" -N 8 "$T/xl2.qcow2" | tr -d ' ')
xl2_l2=$((xl2_l2 & 0x00fffffffffffe00))
# spooled_error PATTERN CMD...: CMD fails, says once that it reads through
# the spool, then one error line: "standard input: " and PATTERN.
spooled_error() {
  pattern=$1; shift
  rm -f "$T/out.raw"
  "$@" 2> "$T/err" && return 1
  cat "$T/err"
  grep -v "reading it through a temporary spool file" "$T/err" > "$T/errors"
  [ "$(grep -c "temporary spool file" "$T/err")" = 1 ] && [ "$(wc -l < "$T/errors")" = 1 ] &&
    grep -q "^e2image: standard input: $pattern" "$T/errors" && ! grep -q /proc "$T/err" &&
    [ ! -e "$T/out.raw" ]
}
cut=$((xl2_l2 + 1000))
ok "an extended-L2 stream cut in its L2 table: one line naming standard input" spooled_error \
  "L1 table entry 0: L2 table $(printf 0x%x "$xl2_l2") .* runs past the end of the file (size $cut) at offset $xl2_l1\$" \
  restore_head "$cut" "$T/xl2.qcow2"
# A reserved bit set in the first L1 entry (bit 8, below the table's offset).
xl2_reserved() {
  perl -e '
    open(my $f, "<", $ARGV[0]) or die; binmode $f; local $/; my $d = <$f>;
    substr($d, $ARGV[1] + 6, 1) = chr(ord(substr($d, $ARGV[1] + 6, 1)) | 1);
    print $d' "$T/xl2.qcow2" "$xl2_l1" | "$E2IMAGE" -r - "$T/out.raw"
}
ok "an extended-L2 stream with a bad L1 entry: one line naming standard input" spooled_error \
  "L1 table entry 0: reserved bits set in .* at offset $xl2_l1\$" xl2_reserved

# A terminal on standard input would make -r - wait for typing.
terminal_input() {
  rm -f "$T/tty.raw"
  timeout 10 script -qec "'$E2IMAGE' -r - '$T/tty.raw'" /dev/null < /dev/null > "$T/tty.out" 2>&1
  rc=$?
  cat "$T/tty.out"
  [ $rc = 1 ] && [ "$(grep -c . "$T/tty.out")" = 1 ] && [ ! -e "$T/tty.raw" ] &&
    grep -q "^e2image: standard input is a terminal: pipe the image into it" "$T/tty.out"
}
ok "-r - with a terminal on standard input: refused in one line, no output" terminal_input

done_testing
