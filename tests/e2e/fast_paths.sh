#!/bin/bash
# The fast paths give the same images as the slow ones: extent
# trees walked node by node (deep trees, -a), holes of a sparse source
# skipped, compression on a worker pool, and qcow2 images whose L1 table is
# mostly empty converted without visiting every cluster.
. "$TESTLIB"

# A file of 400 one-block islands: 400 extents, a tree of depth 2 with 1 KiB blocks.
make_fragmented_fs() {
  mkdir -p "$T/frag-tree/dir"
  perl -e 'open(my $f, ">", $ARGV[0]) or die; for my $i (0 .. 399) {
             seek($f, $i * 2048, 0); print $f chr(65 + $i % 26) x 1024; }' "$T/frag-tree/frag"
  echo small > "$T/frag-tree/dir/small"
  mke2fs -q -F -t ext4 -b 1024 -d "$T/frag-tree" "$T/frag.img" 16M > "$T/mke2fs.log" 2>&1 ||
    { cat "$T/mke2fs.log"; return 1; }
  # The test means something only if the tree is that deep.
  debugfs -R "ex /frag" "$T/frag.img" 2> /dev/null | grep -q " 2/ 2 "
}
ok "a filesystem with a depth-2 extent tree" make_fragmented_fs

same_as_oracle() {
  mode=$1
  rm -f "$T/ours.raw" "$T/oracle.raw"
  "$E2IMAGE" "$mode" "$T/frag.img" "$T/ours.raw" || return 1
  "$ORACLE_E2IMAGE" "$mode" "$T/frag.img" "$T/oracle.raw" 2> /dev/null || return 1
  same_bytes "$T/ours.raw" "$T/oracle.raw"
}
ok "-r of deep extent trees is byte-identical to Debian e2image's" same_as_oracle -r
ok "-ra (whole extents) is byte-identical to Debian e2image's" same_as_oracle -ra

source_is_sparse_and_skipped() {
  # A journal never written (lazy_journal_init) is a hole in the source file:
  # it is read as zeros without reading, and the image is still exact.
  mke2fs -q -F -t ext4 -E lazy_journal_init=1 -d "$T/frag-tree" "$T/lazy.img" 64M || return 1
  [ "$(allocated "$T/lazy.img")" -lt $((8 << 20)) ] || return 1
  rm -f "$T/ours.raw" "$T/oracle.raw"
  "$E2IMAGE" -r "$T/lazy.img" "$T/ours.raw" || return 1
  "$ORACLE_E2IMAGE" -r "$T/lazy.img" "$T/oracle.raw" 2> /dev/null || return 1
  same_bytes "$T/ours.raw" "$T/oracle.raw"
}
ok "a sparse source (journal never written): holes skipped, image exact" source_is_sparse_and_skipped

# A compressed capture leaves the source's holes out of its map before it
# sizes the image (no L2 table is reserved for them): the guest contents are
# those of -r, and of the capture of a copy of the source with no holes.
compressed_sparse_source() {
  [ -f "$T/lazy.img" ] || return 1
  cp --sparse=never "$T/lazy.img" "$T/dense.img" || return 1
  rm -f "$T/lazy.raw" "$T/zs.qcow2" "$T/zd.qcow2"
  "$E2IMAGE" -r "$T/lazy.img" "$T/lazy.raw" || return 1
  "$E2IMAGE" -Q --compress=zstd "$T/lazy.img" "$T/zs.qcow2" || return 1
  "$E2IMAGE" -Q --compress=zstd "$T/dense.img" "$T/zd.qcow2" || return 1
  qcow2_clean "$T/zs.qcow2" || return 1
  qemu-img compare -F raw "$T/zs.qcow2" "$T/lazy.raw" > /dev/null || return 1
  qemu-img compare "$T/zs.qcow2" "$T/zd.qcow2" > /dev/null
}
ok "--compress of a sparse source: same contents as -r and as of a copy without holes" \
  compressed_sparse_source

compressed_with_threads() {
  threads=$1
  rm -f "$T/z.qcow2"
  "$E2IMAGE" -r "$T/frag.img" "$T/meta.raw" 2> /dev/null || true
  "$E2IMAGE" -Q --compress=zstd --cluster-size=65536 --threads="$threads" \
    "$T/frag.img" "$T/z.qcow2" || return 1
  qcow2_clean "$T/z.qcow2" || return 1
  qemu-img info "$T/z.qcow2" | grep -q "cluster_size: 65536" || return 1
  qemu-img compare -F raw "$T/z.qcow2" "$T/meta.raw"
}
ok "--compress=zstd --threads=1: clean, 64 KiB clusters, same content as -r" compressed_with_threads 1
ok "--compress=zstd --threads=3: the same" compressed_with_threads 3

# Our compressed image is smaller than qemu-img's of the same
# metadata (qemu-img convert -c of the -r image), zstd and zlib alike. The
# 3 GiB filesystem has metadata in several L1 ranges (backup superblocks in
# groups 9 and 25): qemu-img cuts its packing of compressed data for each
# new L2 table and ends the file with one; ours reserves the tables first.
compressed_no_larger_than_qemu_img() {
  codec=$1
  if [ ! -e "$T/wide.img" ]; then
    mke2fs -q -F -t ext4 -d "$T/frag-tree" "$T/wide.img" 3G || return 1
  fi
  rm -f "$T/wide-meta.raw" "$T/ours-$codec.qcow2" "$T/qemu-$codec.qcow2"
  "$E2IMAGE" -r "$T/wide.img" "$T/wide-meta.raw" || return 1
  qemu-img convert -c -O qcow2 -o "compat=1.1,compression_type=$codec" \
    "$T/wide-meta.raw" "$T/qemu-$codec.qcow2" || return 1
  "$E2IMAGE" -Q --qcow2-version=3 --compress="$codec" "$T/wide.img" "$T/ours-$codec.qcow2" ||
    return 1
  qcow2_clean "$T/ours-$codec.qcow2" || return 1
  qemu-img compare -F raw "$T/ours-$codec.qcow2" "$T/wide-meta.raw" || return 1
  ours=$(stat -c %s "$T/ours-$codec.qcow2")
  theirs=$(stat -c %s "$T/qemu-$codec.qcow2")
  echo "$codec: ours $ours bytes, qemu-img's $theirs bytes"
  [ "$ours" -lt "$theirs" ]
}
ok "--compress=zstd: smaller than qemu-img convert -c's image of the -r image" \
  compressed_no_larger_than_qemu_img zstd
ok "--compress=zlib: the same" compressed_no_larger_than_qemu_img zlib

# --compress-level: a higher level gives a smaller image of the same
# contents, the same whatever the number of threads. The load is text that
# the levels pack differently (2.7 MB of words, in 64 KiB clusters, -a):
# metadata alone is mostly zeros and checksums, small at any level.
make_text_fs() {
  mkdir -p "$T/text-tree"
  perl -e 'srand(7); my @w = map { join "", map { chr(97 + int(rand(26))) } 1 .. 3 + $_ % 7 } 1 .. 500;
           for (1 .. 400000) { print $w[int(rand(@w) * rand())], ($_ % 12 ? " " : "\n") }' \
    > "$T/text-tree/words" || return 1
  mke2fs -q -F -t ext4 -d "$T/text-tree" "$T/text.img" 32M || return 1
  "$E2IMAGE" -ra "$T/text.img" "$T/text.raw"
}
ok "a filesystem of text" make_text_fs

compress_level_shrinks() {
  codec=$1 low=$2 high=$3
  for level in "$low" "$high"; do
    rm -f "$T/level-$level.qcow2"
    "$E2IMAGE" -Qa --cluster-size=65536 --compress="$codec" --compress-level="$level" \
      "$T/text.img" "$T/level-$level.qcow2" || return 1
    qcow2_clean "$T/level-$level.qcow2" || return 1
    qemu-img compare -F raw "$T/level-$level.qcow2" "$T/text.raw" > /dev/null || return 1
  done
  rm -f "$T/level-t1.qcow2"
  "$E2IMAGE" -Qa --cluster-size=65536 --compress="$codec" --compress-level="$high" --threads=1 \
    "$T/text.img" "$T/level-t1.qcow2" || return 1
  same_bytes "$T/level-$high.qcow2" "$T/level-t1.qcow2" || return 1
  low_b=$(stat -c %s "$T/level-$low.qcow2")
  high_b=$(stat -c %s "$T/level-$high.qcow2")
  echo "$codec: level $low $low_b bytes, level $high $high_b bytes"
  [ "$high_b" -lt "$low_b" ]
}
ok "--compress=zstd --compress-level=19: smaller than level 1, same contents, any threads" \
  compress_level_shrinks zstd 1 19
ok "--compress=zlib --compress-level=9: smaller than level 1, the same" \
  compress_level_shrinks zlib 1 9

# The compression's memory is bounded whatever --threads asks: at zstd level
# 19 with 2 MiB clusters one codec takes 35 MiB, so --threads=8 compresses
# on the caller's thread alone, says so, and makes the same image as
# --threads=1, with a peak close to its. Peaks are compared
# with each other, so that a sanitizer's overhead counts on both sides.
big_codec_threads_are_cut() {
  for threads in 1 8; do
    rm -f "$T/big-codec-$threads.qcow2"
    /usr/bin/time -f "%M" -o "$T/big-codec-$threads.rss" "$E2IMAGE" -Qa --cluster-size=2097152 \
      --compress=zstd --compress-level=19 --threads="$threads" "$T/text.img" \
      "$T/big-codec-$threads.qcow2" 2> "$T/big-codec-$threads.err" ||
      { cat "$T/big-codec-$threads.err"; return 1; }
    cat "$T/big-codec-$threads.err"
  done
  one=$(tail -n 1 "$T/big-codec-1.rss") eight=$(tail -n 1 "$T/big-codec-8.rss")
  echo "peak RSS: $one KiB on one thread, $eight KiB with --threads=8"
  [ "$eight" -le $((one * 3 / 2)) ] || return 1
  [ ! -s "$T/big-codec-1.err" ] || return 1
  [ "$(wc -l < "$T/big-codec-8.err")" = 1 ] || return 1
  grep -q "^e2image: compressing on 1 thread, not 8: a zstd codec at level 19 for 2 MiB clusters takes [0-9]* MiB, and the compression holds 48 MiB at most$" \
    "$T/big-codec-8.err" || return 1
  same_bytes "$T/big-codec-1.qcow2" "$T/big-codec-8.qcow2"
}
ok "--threads=8 at zstd level 19, 2 MiB clusters: one thread, said, the same image, bounded memory" \
  big_codec_threads_are_cut

# A level out of the codec's range, or without --compress: one error line
# naming the option, exit 1, no image.
bad_compress_level() {
  expected=$1
  shift
  rm -f "$T/bad-level.qcow2"
  out=$("$E2IMAGE" -Q "$@" "$T/frag.img" "$T/bad-level.qcow2" 2>&1); rc=$?
  echo "$out"
  [ $rc = 1 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q -- "$expected" &&
    [ ! -e "$T/bad-level.qcow2" ]
}
ok "--compress=zstd --compress-level=0 is refused" \
  bad_compress_level "from 1 to 22 for zstd" --compress=zstd --compress-level=0
ok "--compress=zstd --compress-level=23 is refused" \
  bad_compress_level "from 1 to 22 for zstd" --compress=zstd --compress-level=23
ok "--compress=zlib --compress-level=10 is refused" \
  bad_compress_level "from 1 to 9 for zlib" --compress=zlib --compress-level=10
ok "--compress-level=-1 is refused" \
  bad_compress_level "invalid compression level: '-1'" --compress --compress-level=-1
ok "--compress-level=fast is refused" \
  bad_compress_level "invalid compression level: 'fast'" --compress --compress-level=fast
ok "--compress-level without --compress is refused" \
  bad_compress_level "--compress-level needs --compress" --compress-level=5

threads_zero_is_refused() {
  out=$("$E2IMAGE" -Q --compress --threads=0 "$T/frag.img" "$T/t0.qcow2" 2>&1); rc=$?
  echo "$out"
  [ $rc = 1 ] && echo "$out" | grep -q -- "--threads" && [ ! -e "$T/t0.qcow2" ]
}
ok "--threads=0: one error line, exit 1" threads_zero_is_refused

sparse_l1_converts_fast() {
  # 7 TiB with 4 KiB clusters: 1.9 billion clusters, two of them written.
  qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/wide.qcow2" 7T || return 1
  qemu-io -c "write -P 0x5a 0 4096" -c "write -P 0xa5 6T 4096" "$T/wide.qcow2" > /dev/null || return 1
  timeout 20 "$E2IMAGE" -r "$T/wide.qcow2" "$T/wide.raw" || return 1
  [ "$(stat -c %s "$T/wide.raw")" = $((7 << 40)) ] || return 1
  [ "$(allocated "$T/wide.raw")" -lt $((1 << 20)) ] || return 1
  [ "$(head -c 4096 "$T/wide.raw" | tr -d '\132' | wc -c)" = 0 ] || return 1
  [ "$(dd if="$T/wide.raw" bs=4096 skip=$(((6 << 40) / 4096)) count=1 2> /dev/null |
       tr -d '\245' | wc -c)" = 0 ] || return 1
  [ "$(dd if="$T/wide.raw" bs=4096 skip=1 count=1 2> /dev/null | tr -d '\000' | wc -c)" = 0 ]
}
ok "a 7 TiB qcow2 with two clusters converts at once, exactly" sparse_l1_converts_fast

done_testing
