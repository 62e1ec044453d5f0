#!/bin/bash
# A 16 TiB filesystem (sparse file) through e2image -Q: the cluster size grows
# until the L1 table fits qemu's 32 MiB limit (and e2image says so), the image
# passes qemu-img check, and peak memory stays bounded.
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"
MAX_RSS_KB=200000
# AddressSanitizer's shadow memory and quarantine about double the footprint.
[ "${SANITIZED:-no}" = yes ] && MAX_RSS_KB=500000

# ext4 hosts cap files just under 16 TiB: fall back to tmpfs, where the
# filesystem's few hundred MiB of written metadata live in memory.
BIG=$T/big
if ! truncate -s 16T "$T/big.probe" 2> /dev/null; then
  BIG=$(mktemp -d /dev/shm/e2image-ng-16tib.XXXXXX) || exit 1
  trap 'rm -rf "$T" "$BIG"' EXIT
fi
rm -f "$T/big.probe"
mkdir -p "$BIG"
truncate -s 16T "$BIG/fs.img" || exit 1
mke2fs -q -F -t ext4 -E lazy_itable_init=1,nodiscard "$BIG/fs.img" > "$T/mke2fs.log" 2>&1 ||
  { cat "$T/mke2fs.log"; exit 1; }

capture_16tib() {  # capture_16tib NAME EXPECTED-CLUSTER-SIZE E2IMAGE-OPTIONS...
  name=$1; expected_cs=$2; shift 2
  /usr/bin/time -f "%M" -o "$T/$name.rss" "$E2IMAGE" -Q "$@" "$BIG/fs.img" "$T/$name.qcow2" \
    2> "$T/$name.err" || { cat "$T/$name.err"; return 1; }
  cat "$T/$name.err"
  rss=$(tail -n 1 "$T/$name.rss")
  echo "peak RSS: $rss KiB"
  [ "$rss" -lt $MAX_RSS_KB ] || { echo "peak RSS over $MAX_RSS_KB KiB"; return 1; }
  qemu-img info --output=json "$T/$name.qcow2" > "$T/$name.json" || return 1
  jq -e ".\"virtual-size\" == $((16 << 40)) and .\"cluster-size\" == $expected_cs" "$T/$name.json" ||
    return 1
  qcow2_clean "$T/$name.qcow2" || return 1
  "$QCOW2_INSPECT" check "$T/$name.qcow2" || return 1
  ls -l "$T/$name.qcow2"
}
says_cluster_size() {
  grep -q "using 8192-byte qcow2 clusters: with 4096-byte clusters (the block size) the L1 table would be over qemu's 32 MiB limit" "$T/auto.err"
}
ok "16 TiB, default options: 8 KiB clusters, clean, bounded memory" capture_16tib auto 8192
ok "16 TiB: e2image says why the cluster size is not the block size" says_cluster_size
# Compressed: 64 KiB clusters (the compressed default) would need 480 MiB of
# L2 tables for the thin metadata, so smaller clusters are chosen, and said.
ok "16 TiB --qcow2-version=3 --compress=zstd: 8 KiB clusters, as the L2 tables need" \
  capture_16tib zstd 8192 --qcow2-version=3 --compress=zstd
says_compressed_cluster_size() {
  grep -q "using 8192-byte qcow2 clusters: the metadata is spread so thin that 64 KiB clusters would make a larger image (estimated: [0-9]* MiB, [0-9]* MiB of it L2 tables, against [0-9]* MiB)$" "$T/zstd.err"
}
ok "16 TiB compressed: e2image says why the clusters are not 64 KiB" says_compressed_cluster_size
compressed_is_smaller_than_uncompressed() {
  [ "$(stat -c %s "$T/zstd.qcow2")" -lt "$(stat -c %s "$T/auto.qcow2")" ]
}
ok "16 TiB compressed: smaller than the uncompressed image" compressed_is_smaller_than_uncompressed
forced_64k_still_works() {
  capture_16tib zstd64k 65536 --compress=zstd --cluster-size=65536 || return 1
  ! grep -q "spread so thin" "$T/zstd64k.err"
}
ok "16 TiB --compress=zstd --cluster-size=65536: as asked, silently" forced_64k_still_works

# 2 MiB clusters, as asked: 32 L2 tables of 2 MiB map the 16 TiB. The L2
# cache keeps at most 8 MiB of them, so the peak stays within half as much
# again as the default run's (8 KiB clusters), compared with that run so that
# a sanitizer's overhead counts on both.
two_mib_clusters_keep_memory_bounded() {
  capture_16tib zstd2m 2097152 --compress=zstd --cluster-size=2097152 || return 1
  base=$(tail -n 1 "$T/zstd.rss") rss=$(tail -n 1 "$T/zstd2m.rss")
  echo "peak RSS: $rss KiB with 2 MiB clusters, $base KiB with the default's 8 KiB"
  [ "$rss" -le $((base * 3 / 2)) ]
}
ok "16 TiB --compress=zstd --cluster-size=2097152: clean, an L2 cache of 8 MiB" \
  two_mib_clusters_keep_memory_bounded
# 2 MiB clusters uncompressed: each holds a few metadata blocks among zeros,
# which are left as holes, not written. The image takes no more disk than
# the default one of 8 KiB clusters, and holds the same bytes.
two_mib_clusters_leave_holes() {
  capture_16tib plain2m 2097152 --cluster-size=2097152 || return 1
  used_2m=$(allocated "$T/plain2m.qcow2") used_8k=$(allocated "$T/auto.qcow2")
  echo "disk used: $used_2m bytes with 2 MiB clusters, $used_8k with 8 KiB clusters"
  [ "$used_2m" -le "$used_8k" ] || return 1
  qemu-img compare "$T/plain2m.qcow2" "$T/auto.qcow2"
}
ok "16 TiB --cluster-size=2097152: the clusters' zeros are holes, the same bytes as the default" \
  two_mib_clusters_leave_holes
# Back to raw, the holes of those clusters are not read, only the image's
# data. The raw image is the one the default image gives.
two_mib_clusters_to_raw_read_no_holes() {
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -e trace=read,pread64 -e signal=none -o "$T/reads" \
    "$E2IMAGE" -r "$T/plain2m.qcow2" "$BIG/plain2m.raw" || return 1
  read_bytes=$(awk '$NF ~ /^[0-9]+$/ { sum += $NF } END { print sum + 0 }' "$T/reads")
  used=$(allocated "$T/plain2m.qcow2")
  echo "read $read_bytes bytes of an image using $used bytes of disk"
  [ "$read_bytes" -le $((used * 2 + (16 << 20))) ] || return 1
  "$E2IMAGE" -r "$T/auto.qcow2" "$BIG/auto.raw" || return 1
  qemu-img compare -f raw -F raw "$BIG/plain2m.raw" "$BIG/auto.raw"
}
ok "16 TiB, 2 MiB clusters back to raw: the image's holes are not read, the same raw image" \
  two_mib_clusters_to_raw_read_no_holes
rm -f "$BIG"/*.raw
same_map_as_qemu() {  # same_map_as_qemu IMAGE
  qemu-img map --output=json "$1" | jq -c '.[]' > "$T/qm" || return 1
  "$QCOW2_INSPECT" map --json "$1" | jq -c '.[] | del(.compressed)' > "$T/om" || return 1
  cmp "$T/qm" "$T/om"
}
ok "16 TiB: qcow2-inspect map equals qemu-img map" same_map_as_qemu "$T/auto.qcow2"
# The holes in the 2 MiB clusters are zeros under data to both.
ok "16 TiB, 2 MiB clusters with holes: qcow2-inspect map equals qemu-img map" \
  same_map_as_qemu "$T/plain2m.qcow2"
rm -f "$T"/*.qcow2
too_small_cluster() {
  ! "$E2IMAGE" -Q --cluster-size=4096 "$BIG/fs.img" "$T/small.qcow2" 2> "$T/small.err" &&
    [ ! -e "$T/small.qcow2" ] && [ "$(wc -l < "$T/small.err")" = 1 ] &&
    grep -q "32 MiB limit" "$T/small.err"
}
ok "16 TiB --cluster-size=4096: one error line, no output" too_small_cluster
rm -f "$BIG/fs.img"

done_testing
