#!/bin/bash
# `e2image -r` against `qemu-img convert -O raw` over a matrix of qcow2
# layouts (version, cluster size, compression, extended L2, refcount width,
# preallocation, lazy refcounts), each image shaped by the same qemu-io
# workload: plain, compressed, unaligned and subcluster writes, zero writes
# with and without unmap (zero clusters that keep their host cluster, and
# plain ones), discards, and a write at the very end.
. "$TESTLIB"

# convert_matches IMAGE: both converters give the same bytes.
convert_matches() {
  qemu-img convert -O raw "$1" "$T/qemu.raw" || return 1
  rm -f "$T/ours.raw"
  "$E2IMAGE" -r "$1" "$T/ours.raw" || return 1
  same_bytes "$T/qemu.raw" "$T/ours.raw"
}

# workload IMAGE CLUSTER_SIZE VIRTUAL_SIZE COMPRESS(yes/no) [qemu-io options]
# (qemu cannot write compressed clusters over preallocated ones.)
workload() {
  img=$1; cs=$2; size=$3; compress=$4; shift 4
  c=-c; [ "$compress" = yes ] || c=
  qemu-io -f qcow2 "$@" \
    -c "write -P 0x11 0 $((2 * cs))" \
    -c "write -z $cs $cs" \
    -c "write $c -P 0x22 $((4 * cs)) $cs" \
    -c "write -P 0x33 $((5 * cs + 512)) 3000" \
    -c "write -P 0x44 $((6 * cs)) $((cs / 2))" \
    -c "write -z $((7 * cs)) $cs" \
    -c "write -P 0x55 $((8 * cs)) $((2 * cs))" \
    -c "write -z -u $((8 * cs)) $cs" \
    -c "discard $((9 * cs)) $((cs / 4))" \
    -c "write -P 0x66 $((size - 4096)) 4096" \
    "$img" > "$T/qemu-io.log" 2>&1 || { cat "$T/qemu-io.log"; return 1; }
}

# case CLUSTER_SIZE CREATE-OPTIONS [qemu-io options]
case_matches() {
  cs=$1; opts=$2; shift 2
  size=$(( (12 * cs > 6291456 ? 12 * cs : 6291456) + 1536 ))
  rm -f "$T/img.qcow2"
  qemu-img create -q -f qcow2 -o "cluster_size=$cs,$opts" "$T/img.qcow2" "$size" || return 1
  compress=yes
  case $opts in *preallocation*) compress=no ;; esac
  workload "$T/img.qcow2" "$cs" "$size" "$compress" "$@" || return 1
  convert_matches "$T/img.qcow2"
}

ok "v2, 64 KiB clusters" case_matches 65536 compat=0.10
ok "v2, 512-byte clusters" case_matches 512 compat=0.10
ok "v2, 2 MiB clusters" case_matches 2097152 compat=0.10
ok "v2, refcount_bits=16, preallocation=metadata" case_matches 4096 compat=0.10,preallocation=metadata
ok "v3, 512-byte clusters" case_matches 512 compat=1.1
ok "v3, 1 KiB clusters, zstd" case_matches 1024 compression_type=zstd
ok "v3, 4 KiB clusters" case_matches 4096 compat=1.1
# The cluster sizes not covered elsewhere in this list, so that all 13 are.
ok "v3, 2 KiB clusters" case_matches 2048 compat=1.1
ok "v2, 8 KiB clusters" case_matches 8192 compat=0.10
ok "v2, 32 KiB clusters" case_matches 32768 compat=0.10
ok "v3, 256 KiB clusters, zlib" case_matches 262144 compression_type=zlib
ok "extended L2, 512 KiB clusters, zlib" case_matches 524288 extended_l2=on
ok "v3, 1 MiB clusters, refcount_bits=16, zstd" case_matches 1048576 refcount_bits=16,compression_type=zstd
ok "v3, 64 KiB clusters, zlib" case_matches 65536 compression_type=zlib
ok "v3, 64 KiB clusters, zstd" case_matches 65536 compression_type=zstd
ok "v3, 2 MiB clusters, zstd" case_matches 2097152 compression_type=zstd
ok "extended L2, 16 KiB clusters" case_matches 16384 extended_l2=on
ok "extended L2, 64 KiB clusters, zstd" case_matches 65536 extended_l2=on,compression_type=zstd
ok "extended L2, 2 MiB clusters" case_matches 2097152 extended_l2=on
ok "extended L2, preallocation=metadata" case_matches 32768 extended_l2=on,preallocation=metadata
ok "extended L2, lazy refcounts, refcount_bits=2" case_matches 65536 extended_l2=on,lazy_refcounts=on,refcount_bits=2
ok "refcount_bits=1" case_matches 4096 refcount_bits=1
ok "refcount_bits=2, 512-byte clusters" case_matches 512 refcount_bits=2
ok "refcount_bits=4" case_matches 8192 refcount_bits=4
ok "refcount_bits=8, zstd" case_matches 65536 refcount_bits=8,compression_type=zstd
ok "refcount_bits=32" case_matches 131072 refcount_bits=32
ok "refcount_bits=64, 512-byte clusters" case_matches 512 refcount_bits=64
ok "refcount_bits=64, 2 MiB clusters" case_matches 2097152 refcount_bits=64
ok "preallocation=metadata" case_matches 65536 preallocation=metadata
ok "preallocation=falloc" case_matches 4096 preallocation=falloc
ok "preallocation=full, refcount_bits=1" case_matches 65536 preallocation=full,refcount_bits=1
ok "lazy refcounts" case_matches 65536 lazy_refcounts=on

# A crash (qemu-io abort) with lazy refcounts leaves the dirty bit set.
dirty_image() {
  qemu-img create -q -f qcow2 -o lazy_refcounts=on,cluster_size=4096 "$T/d.qcow2" 3M || return 1
  qemu-io -c "write -P 0x77 8k 100k" -c "write -z 200k 8k" -c abort "$T/d.qcow2" > /dev/null 2>&1
  qemu-img info "$T/d.qcow2" | grep -q "cleanly shut down: no" || return 1
  qemu-img convert -O raw "$T/d.qcow2" "$T/qemu.raw" || return 1
  "$E2IMAGE" -r "$T/d.qcow2" "$T/ours.raw" 2> "$T/err" || return 1
  cat "$T/err"
  grep -q "marked dirty" "$T/err" && same_bytes "$T/qemu.raw" "$T/ours.raw"
}
ok "a dirty image (lazy refcounts, crashed) converts with a warning" dirty_image

# The corrupt bit, set by hand: read anyway, say so.
corrupt_bit() {
  qemu-img create -q -f qcow2 "$T/c.qcow2" 2M || return 1
  qemu-io -c "write -P 0x78 0 300k" "$T/c.qcow2" > /dev/null || return 1
  printf '\002' | dd of="$T/c.qcow2" bs=1 seek=79 conv=notrunc status=none
  qemu-img convert -O raw "$T/c.qcow2" "$T/qemu.raw" 2> /dev/null || return 1
  "$E2IMAGE" -r "$T/c.qcow2" "$T/ours.raw" 2> "$T/err" || return 1
  cat "$T/err"
  grep -q "marked corrupt" "$T/err" && same_bytes "$T/qemu.raw" "$T/ours.raw"
}
ok "an image with the corrupt bit converts with a warning" corrupt_bit

# Every compressed cluster is decompressed once, and the output holds holes.
compressed_to_stdout() {
  head -c 3145728 /dev/urandom | od -An -tx1 | head -c 3145728 > "$T/text.raw"
  qemu-img convert -q -f raw -O qcow2 -c -o cluster_size=4096,compression_type=zstd \
    "$T/text.raw" "$T/z.qcow2" || return 1
  "$E2IMAGE" -r "$T/z.qcow2" - > "$T/stdout.raw" || return 1
  same_bytes "$T/text.raw" "$T/stdout.raw"
}
ok "zstd-compressed image to stdout" compressed_to_stdout

# Debian's e2image writes version 2 images whose refcounts leak clusters.
oracle_qcow2() {
  make_fs "$T/fs.img" 32M -t ext4 || return 1
  "$ORACLE_E2IMAGE" -Q "$T/fs.img" "$T/oracle.qcow2" 2> /dev/null || return 1
  convert_matches "$T/oracle.qcow2"
}
ok "an image made by Debian's e2image -Q" oracle_qcow2

done_testing
