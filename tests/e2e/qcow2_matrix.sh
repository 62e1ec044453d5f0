#!/bin/bash
# Every writer option combination: qcow2 version 2/3 x cluster sizes 512 B
# to 2 MiB x no compression, zlib, zstd, on filesystems of 4 KiB and 1 KiB
# blocks. qemu-img check must find each image clean, qemu-img compare must
# find it equal to the raw image, and qcow2-inspect check must agree.
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"

one_combination() {  # one_combination FS-NAME E2IMAGE-OPTIONS...
  fs=$1; shift
  rm -f "$T/m.qcow2"
  "$E2IMAGE" -Q "$@" "$T/$fs.img" "$T/m.qcow2" || return 1
  qcow2_clean "$T/m.qcow2" || return 1
  qemu-img compare -q -f qcow2 -F raw "$T/m.qcow2" "$T/$fs.raw" || { echo "content differs"; return 1; }
  "$QCOW2_INSPECT" check "$T/m.qcow2"
}

all_sizes="512 1024 2048 4096 8192 16384 32768 65536 131072 262144 524288 1048576 2097152"
# 4 KiB blocks: from 8 clusters per block to 512 blocks per cluster.
make_fs "$T/fs4k.img" 24M -t ext4 -b 4096 || exit 1
"$E2IMAGE" -r "$T/fs4k.img" "$T/fs4k.raw" || exit 1
# 1 KiB blocks (a bigger share of metadata), a selection of cluster sizes.
make_fs "$T/fs1k.img" 16M -t ext4 -b 1024 || exit 1
"$E2IMAGE" -r "$T/fs1k.img" "$T/fs1k.raw" || exit 1

for fs in fs4k fs1k; do
  sizes=$all_sizes
  [ $fs = fs1k ] && sizes="512 1024 8192 2097152"
  for cs in $sizes; do
    for opts in "--qcow2-version=2" "--qcow2-version=2 --compress=zlib" "--qcow2-version=3" \
        "--qcow2-version=3 --compress=zlib" "--qcow2-version=3 --compress=zstd"; do
      ok "$fs --cluster-size=$cs $opts" one_combination $fs --cluster-size=$cs $opts
    done
  done
done

default_is_block_size() {
  "$E2IMAGE" -Q "$T/fs1k.img" "$T/d.qcow2" 2> "$T/d.err" || return 1
  [ ! -s "$T/d.err" ] || { cat "$T/d.err"; return 1; }
  qemu-img info --output=json "$T/d.qcow2" | jq -e '."cluster-size" == 1024'
}
ok "without --cluster-size, clusters are the block size, silently" default_is_block_size
versions() {
  "$E2IMAGE" -Q "$T/fs1k.img" "$T/v.qcow2" && "$E2IMAGE" -Q --compress "$T/fs1k.img" "$T/vc.qcow2" &&
    "$E2IMAGE" -Q --qcow2-version=3 "$T/fs1k.img" "$T/v3.qcow2" || return 1
  for f in v vc v3; do qemu-img info --output=json "$T/$f.qcow2" | jq -c '."format-specific".data'; done
  qemu-img info --output=json "$T/v.qcow2" | jq -e '."format-specific".data.compat == "0.10"' &&
    qemu-img info --output=json "$T/vc.qcow2" |
    jq -e '."format-specific".data | .compat == "0.10" and ."compression-type" == "zlib"' &&
    qemu-img info --output=json "$T/v3.qcow2" | jq -e '."format-specific".data.compat == "1.1"'
}
ok "version 2 by default (also with --compress), version 3 with --qcow2-version=3" versions
v2_zstd_upgrades() {
  "$E2IMAGE" -Q --compress=zstd "$T/fs1k.img" "$T/z.qcow2" || return 1
  qemu-img info --output=json "$T/z.qcow2" |
    jq -e '."format-specific".data | .compat == "1.1" and ."compression-type" == "zstd"'
}
ok "--compress=zstd alone writes a version 3 image with zstd compression" v2_zstd_upgrades

stores_plain_when_no_gain() {
  head -c 4194304 /dev/urandom > "$T/random.bin"
  mkdir -p "$T/rtree" && cp "$T/random.bin" "$T/rtree/"
  mke2fs -q -F -t ext4 -d "$T/rtree" "$T/r.img" 16M || return 1
  "$E2IMAGE" -Qa --compress --cluster-size=4096 "$T/r.img" "$T/r.qcow2" || return 1
  qcow2_clean "$T/r.qcow2" || return 1
  # The random file's clusters cannot shrink: they are stored plain, with an offset.
  "$QCOW2_INSPECT" map --json "$T/r.qcow2" |
    jq -e '[.[] | select(.data and (.compressed | not)) | .length] | add >= 4194304'
}
ok "--compress stores clusters that do not shrink plain" stores_plain_when_no_gain

done_testing
