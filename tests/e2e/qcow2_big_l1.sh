#!/bin/bash
# e2fsprogs' e2image -Q of a filesystem over 8 TiB (4 KiB blocks) writes an
# L1 table over qemu's 32 MiB limit: qemu-img refuses the image, e2fsprogs'
# e2image -r converts it. Ours bounds tables by the file instead: -r gives
# the same bytes as e2fsprogs', and qcow2-inspect check, map, info and dump
# read it, in bounded memory.
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"
Q=$QCOW2_INSPECT
MAX_RSS_KB=120000
[ "${SANITIZED:-no}" = yes ] && MAX_RSS_KB=400000

# same_sparse A B: same size and bytes, read only where either file has data
# (the raw images are 9 TiB of mostly holes).
same_sparse() {
  [ "$(stat -c %s "$1")" = "$(stat -c %s "$2")" ] || { echo "sizes differ"; return 1; }
  perl -e '
    my ($a, $b) = @ARGV;
    open(my $A, "<:raw", $a) or die "$a: $!"; open(my $B, "<:raw", $b) or die "$b: $!";
    my $size = -s $A;
    sub extents {  # [start, end) of each data run, from SEEK_DATA (3) and SEEK_HOLE (4)
      my ($h) = @_; my @e; my $pos = 0;
      while ($pos < $size) {
        my $d = sysseek($h, $pos, 3); last unless defined $d;
        my $o = sysseek($h, $d, 4); push @e, [$d + 0, $o + 0]; $pos = $o + 0;
      }
      return @e;
    }
    my $n = 0;
    for my $e (extents($A), extents($B)) {
      for (my $at = $e->[0]; $at < $e->[1]; $at += 1 << 20) {
        my $len = $e->[1] - $at; $len = 1 << 20 if $len > 1 << 20;
        my ($x, $y) = ("", "");
        sysseek($A, $at, 0); sysread($A, $x, $len); sysseek($B, $at, 0); sysread($B, $y, $len);
        $x eq $y or die "bytes differ in [$at, " . ($at + $len) . ")\n";
        $n += $len;
      }
    }
    print "compared $n bytes of data\n";
    $n > 0 or die "no data compared\n";' "$1" "$2"
}

# 9 TiB, 4 KiB blocks; bigalloc keeps the group count, and the time, small.
truncate -s 9T "$T/fs.img" || exit 1
mke2fs -q -F -t ext4 -O ^has_journal,^resize_inode,bigalloc -C 65536 -N 4096 \
  -E lazy_itable_init=1,nodiscard "$T/fs.img" > "$T/mke2fs.log" 2>&1 || { cat "$T/mke2fs.log"; exit 1; }
"$ORACLE_E2IMAGE" -Q "$T/fs.img" "$T/big.qcow2" 2> /dev/null || exit 1

l1_over_qemus_limit() {
  l1_size=$((16#$(od -An -tx1 -j36 -N4 "$T/big.qcow2" | tr -d ' \n')))
  echo "L1 table: $l1_size entries, $((l1_size * 8)) bytes"
  [ $((l1_size * 8)) -gt $((32 << 20)) ] || return 1
  ! qemu-img info "$T/big.qcow2" > "$T/qi.err" 2>&1 && cat "$T/qi.err" && grep -q "too large" "$T/qi.err"
}
ok "e2fsprogs' image of 9 TiB has an L1 table over 32 MiB, refused by qemu-img" l1_over_qemus_limit

converts_as_e2fsprogs() {
  "$ORACLE_E2IMAGE" -r "$T/big.qcow2" "$T/theirs.raw" 2> /dev/null || return 1
  /usr/bin/time -f "%M" -o "$T/r.rss" "$E2IMAGE" -r "$T/big.qcow2" "$T/ours.raw" || return 1
  echo "peak RSS: $(tail -n 1 "$T/r.rss") KiB"
  [ "$(tail -n 1 "$T/r.rss")" -lt $MAX_RSS_KB ] && same_sparse "$T/theirs.raw" "$T/ours.raw"
}
ok "e2image -r converts it, byte for byte as e2fsprogs' e2image -r, in bounded memory" \
  converts_as_e2fsprogs

inspect_reads_it() {
  for cmd in info check map dump; do
    /usr/bin/time -f "%M" -o "$T/$cmd.rss" "$Q" $cmd "$T/big.qcow2" > "$T/$cmd.out" 2> "$T/$cmd.err"
    rc=$?
    echo "$cmd: exit $rc, peak RSS $(tail -n 1 "$T/$cmd.rss") KiB"
    # e2fsprogs' e2image leaks clusters: check says so with exit 3.
    [ $rc = 0 ] || { [ $cmd = check ] && [ $rc = 3 ]; } || { cat "$T/$cmd.err"; return 1; }
    [ "$(tail -n 1 "$T/$cmd.rss")" -lt $MAX_RSS_KB ] || return 1
  done
  grep -q "No errors\|leaked clusters were found" "$T/check.out" &&
    ! grep -q "^ERROR" "$T/check.err" &&
    grep -q "^0x0  *0x[0-9a-f]*  *0x[0-9a-f]*  *0  *data" "$T/map.out"
}
ok "qcow2-inspect info, check, map and dump read it, in bounded memory" inspect_reads_it

done_testing
