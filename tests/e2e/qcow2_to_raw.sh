#!/bin/bash
# `e2image -r IMAGE.qcow2 OUT.raw` against `qemu-img convert -O raw` on
# images made by qemu-img and qemu-io: same size, same bytes.
. "$TESTLIB"

# A raw disk with recognisable content at scattered places.
make_source() {
  size=$(numfmt --from=iec "$1")
  rm -f "$T/src.raw"
  truncate -s "$size" "$T/src.raw"
  for off in 0 70000 1048576 3000000; do
    [ $off -lt $((size - 4096)) ] || continue
    head -c 4096 /dev/urandom | dd of="$T/src.raw" bs=1 seek=$off conv=notrunc status=none
  done
  printf 'LASTBYTE' | dd of="$T/src.raw" bs=1 seek=$((size - 8)) conv=notrunc status=none
}

convert_matches() {
  img=$1
  qemu-img convert -O raw "$img" "$T/qemu.raw" || return 1
  "$E2IMAGE" -r "$img" "$T/ours.raw" || return 1
  same_bytes "$T/qemu.raw" "$T/ours.raw"
}

from_raw() {  # from_raw SIZE QEMU-IMG-CONVERT-OPTIONS...
  size=$1; shift
  make_source "$size"
  qemu-img convert -f raw -O qcow2 "$@" "$T/src.raw" "$T/img.qcow2" || return 1
  convert_matches "$T/img.qcow2"
}

ok "v2 (compat=0.10), 64k clusters" from_raw 5M -o compat=0.10
ok "v3, 4k clusters" from_raw 5M -o compat=1.1,cluster_size=4096
ok "virtual size not a multiple of the cluster size, last byte kept" from_raw 5000003 -o cluster_size=65536
ok "512-byte clusters" from_raw 3M -o cluster_size=512
ok "2 MiB clusters" from_raw 9M -o cluster_size=2097152
ok "zlib-compressed clusters" from_raw 5M -c -o compression_type=zlib
ok "zstd-compressed clusters" from_raw 5M -c -o compression_type=zstd
ok "preallocation=metadata" from_raw 5M -o preallocation=metadata
ok "preallocation=full" from_raw 5M -o preallocation=full
ok "refcount_bits=1" from_raw 5M -o refcount_bits=1
ok "refcount_bits=64" from_raw 5M -o refcount_bits=64
ok "lazy_refcounts" from_raw 5M -o lazy_refcounts=on

zero_clusters() {
  qemu-img create -q -f qcow2 "$T/z.qcow2" 8M || return 1
  qemu-io -f qcow2 -c "write -P 0xab 0 1M" -c "write -z 256k 128k" -c "discard 512k 64k" \
    -c "write -z -u 2M 1M" "$T/z.qcow2" > /dev/null || return 1
  convert_matches "$T/z.qcow2" || return 1
  # 832 KiB of data; the zero, discarded and unallocated ranges are holes.
  echo "allocated: $(allocated "$T/ours.raw")"
  [ "$(allocated "$T/ours.raw")" -le $((896 * 1024)) ]
}
ok "zero clusters (plain and preallocated) and discards; holes in the raw file" zero_clusters

# On a block device nothing is a hole: a device full of 0xee must end up
# holding exactly qemu's bytes, zeros included.
block_device() {
  qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/dev.qcow2" 6M &&
    qemu-io -f qcow2 -c "write -P 0xab 0 1M" -c "write -z 256k 128k" -c "discard 512k 64k" \
      -c "write -z -u 2M 1M" -c "write -c -P 0xcd 4M 64k" "$T/dev.qcow2" > /dev/null &&
    qemu-img convert -O raw "$T/dev.qcow2" "$T/qemu.raw" || return 1
  head -c 6291456 /dev/zero | tr '\0' '\356' > "$T/disk"
  dev=$(losetup -f --show "$T/disk") || { echo "no loop device"; return 1; }
  "$E2IMAGE" -r "$T/dev.qcow2" "$dev"; rc=$?
  cmp "$dev" "$T/qemu.raw"; same=$?
  losetup -d "$dev"
  [ $rc = 0 ] && [ $same = 0 ]
}
ok "onto a block device (loop) full of stale bytes: zeros are written, exactly qemu's bytes" block_device

empty_image() {
  qemu-img create -q -f qcow2 "$T/empty.qcow2" 100M || return 1
  convert_matches "$T/empty.qcow2" && [ "$(allocated "$T/ours.raw")" -lt 65536 ]
}
ok "an empty image converts to a sparse file" empty_image

raw_to_stdout() {
  from_raw 3M -o cluster_size=4096 || return 1
  "$E2IMAGE" -r "$T/img.qcow2" - > "$T/stdout.raw" && same_bytes "$T/qemu.raw" "$T/stdout.raw"
}
ok "conversion to stdout" raw_to_stdout

truncated() {
  from_raw 5M -o cluster_size=4096 || return 1
  size=$(stat -c %s "$T/img.qcow2")
  head -c $((size - 8192)) "$T/img.qcow2" > "$T/trunc.qcow2"
  rm -f "$T/t.raw"
  out=$("$E2IMAGE" -r "$T/trunc.qcow2" "$T/t.raw" 2>&1); rc=$?
  echo "$out"
  [ $rc = 1 ] && [ "$(echo "$out" | wc -l)" = 1 ] && [ ! -e "$T/t.raw" ]
}
ok "a truncated image: one error line, exit 1, no output" truncated

done_testing
